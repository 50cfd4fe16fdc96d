"""AdamW and LAMB against plain numpy implementations of their update rules,
including the bias/LayerNorm exclusions from decay and from the trust ratio."""

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

from bert_jax import optim  # noqa: E402

LR, B1, B2, EPS, WD, CLIP = 1e-2, 0.9, 0.999, 1e-6, 0.1, 0.5
RTOL, ATOL = 1e-5, 1e-6  # float32 against the float64 reference
MARGIN = 100  # how far (in tolerances) the result without exclusions must be


def _tree(rng):
    return {
        "dense": {"kernel": rng.normal(size=(3, 4)), "bias": rng.normal(size=(4,))},
        "LayerNorm": {"scale": 1 + 0.1 * rng.normal(size=(4,)), "bias": rng.normal(size=(4,))},
        "word_embeddings": {"embedding": rng.normal(size=(5, 3))},
    }


DECAYED = {"dense/kernel", "word_embeddings/embedding"}


def _flat(tree, prefix=""):
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flat(v, prefix + k + "/"))
        else:
            out[prefix + k] = np.asarray(v, np.float64)
    return out


def numpy_reference(name, params, grads_seq, lr_fn, decayed=DECAYED):
    """The update rule in float64; ``decayed`` names the parameters that get weight decay
    (and, for LAMB, the trust ratio)."""
    p = _flat(params)
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v2 = {k: np.zeros_like(v) for k, v in p.items()}
    for t, grads in enumerate(grads_seq):
        g = _flat(grads)
        norm = np.sqrt(sum(np.sum(x ** 2) for x in g.values()))
        g = {k: x * min(1.0, CLIP / norm) for k, x in g.items()}
        lr = lr_fn(t)
        for k in p:
            m[k] = B1 * m[k] + (1 - B1) * g[k]
            v2[k] = B2 * v2[k] + (1 - B2) * g[k] ** 2
            mhat, vhat = m[k] / (1 - B1 ** (t + 1)), v2[k] / (1 - B2 ** (t + 1))
            u = mhat / (np.sqrt(vhat) + EPS)
            if k in decayed:
                u = u + WD * p[k]
                if name == "lamb":
                    pn, un = np.linalg.norm(p[k]), np.linalg.norm(u)
                    u = u * (pn / un if pn > 0 and un > 0 else 1.0)
            p[k] = p[k] - lr * u
    return p


def test_decay_mask_excludes_bias_and_layernorm():
    mask = _flat(optim.decay_mask(_tree(np.random.default_rng(0))))
    assert {k for k, v in mask.items() if v} == DECAYED
    hf_paths = {"bert": {"encoder": {"layer": {"0": {"attention": {"output": {
        "LayerNorm": {"scale": 1.0, "bias": 1.0}, "dense": {"kernel": 1.0, "bias": 1.0}}}}}}}}
    flat = _flat(optim.decay_mask(hf_paths))
    assert [k for k, v in flat.items() if v] == ["bert/encoder/layer/0/attention/output/dense/kernel"]


@pytest.mark.parametrize("name", ["adamw", "lamb"])
def test_optimizer_matches_numpy(name):
    rng = np.random.default_rng(1)
    params = _tree(rng)
    grads_seq = [jax.tree_util.tree_map(lambda x: rng.normal(size=x.shape), params) for _ in range(4)]
    cfg = dict(name=name, learning_rate=LR, total_steps=10, warmup_steps=2, b1=B1, b2=B2, eps=EPS,
               weight_decay=WD, clip_grad_norm=CLIP)
    tx, schedule = optim.make_optimizer(cfg), optim.make_schedule(cfg)
    p = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float32), params)
    state = tx.init(p)
    for g in grads_seq:
        g = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float32), g)
        updates, state = tx.update(g, state, p)
        p = optax.apply_updates(p, updates)
    lr_fn = lambda t: float(schedule(t))  # noqa: E731
    want = numpy_reference(name, params, grads_seq, lr_fn)
    got = _flat(jax.tree_util.tree_map(np.asarray, p))
    # The exclusions matter: the same rule with every parameter decayed (and, for LAMB, trust-ratio
    # scaled) lands far outside the matching tolerance on each excluded parameter, and we are not there.
    unexcluded = numpy_reference(name, params, grads_seq, lr_fn, decayed=set(want))
    for k in sorted(set(want) - DECAYED):
        tol = ATOL + RTOL * np.abs(want[k]).max()
        gap = np.abs(unexcluded[k] - want[k]).max()
        assert gap > MARGIN * tol, f"{k}: the exclusion changes the result by only {gap:.3g} (tolerance {tol:.3g})"
        off = np.abs(got[k] - unexcluded[k]).max()
        assert off > MARGIN / 2 * tol, (
            f"{k}: {name} matches the reference WITHOUT the bias/LayerNorm exclusion (max diff {off:.3g}); "
            f"it should be excluded from weight decay{' and the trust ratio' if name == 'lamb' else ''}")
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=RTOL, atol=ATOL, err_msg=k)


def test_lamb_trust_ratio_only_on_decayed():
    """With a huge ||p||, the trust ratio scales decayed params' steps but not biases'."""
    params = {"dense": {"kernel": jnp.full((2, 2), 100.0), "bias": jnp.full((2,), 100.0)}}
    grads = {"dense": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones((2,))}}
    tx = optim.lamb(1.0, weight_decay=0.0, mask=optim.decay_mask)
    updates, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(updates["dense"]["bias"], -np.ones(2), rtol=1e-5)  # ratio 1
    np.testing.assert_allclose(updates["dense"]["kernel"], -100 * np.ones((2, 2)), rtol=1e-5)  # ||p||/||u||


def test_schedules():
    lin = optim.make_schedule(dict(learning_rate=1.0, total_steps=110, warmup_steps=10))
    assert float(lin(0)) == 0.0 and abs(float(lin(5)) - 0.5) < 1e-6
    assert abs(float(lin(10)) - 1.0) < 1e-6 and abs(float(lin(60)) - 0.5) < 1e-6
    assert float(lin(110)) == 0.0 and float(lin(500)) == 0.0
    poly = optim.make_schedule(dict(learning_rate=6e-3, total_steps=7038, warmup_steps=-1,
                                    warmup_fraction=0.2843, schedule="polynomial", decay_power=0.5))
    warm = round(0.2843 * 7038)
    assert abs(float(poly(warm)) - 6e-3) < 1e-8
    mid = warm + (7038 - warm) // 2
    assert abs(float(poly(mid)) - 6e-3 * np.sqrt(1 - (mid - warm) / (7038 - warm))) < 1e-7
    with pytest.raises(ValueError, match="schedule"):
        optim.make_schedule(dict(learning_rate=1.0, total_steps=10, warmup_steps=1, schedule="cosine"))


@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_by_global_norm_matches_optax_and_keeps_its_state(max_norm):
    """The scalar-factor clip (fuses into Adam's moment updates) gives optax's result, bit-exact
    when not clipping, and the same state tree, so checkpoints restore across the change."""
    rng = np.random.default_rng(2)
    grads = jax.tree_util.tree_map(lambda x: jnp.asarray(rng.normal(size=x.shape), jnp.float32), _tree(rng))
    ours, theirs = optim.clip_by_global_norm(max_norm), optax.clip_by_global_norm(max_norm)
    got, got_state = ours.update(grads, ours.init(grads))
    want, want_state = theirs.update(grads, theirs.init(grads))
    assert jax.tree_util.tree_structure(got_state) == jax.tree_util.tree_structure(want_state)
    clipped = float(optax.global_norm(grads)) > max_norm
    assert clipped == (max_norm == 0.5)
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        if clipped:
            np.testing.assert_allclose(a, b, rtol=1e-6)
        else:
            np.testing.assert_array_equal(a, b)
    if clipped:
        np.testing.assert_allclose(float(optim.global_norm(got)), max_norm, rtol=1e-6)
