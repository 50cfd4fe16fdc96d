"""Model features that need no reference implementation: gathered MLM positions,
dtypes, logical axis annotations, dropout, input checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import flax.linen as nn
from flax.core import meta

from bert_jax import losses
from bert_jax.config import BertConfig
from bert_jax.modeling import LOGICAL_AXES, BertForPreTraining, BertForPreTrainingModule, BertLMHeadModel
from bert_jax.modeling.modules import dummy_inputs


@pytest.fixture(scope="module")
def model(tiny_kwargs):
    return BertForPreTraining(BertConfig(**tiny_kwargs), seed=0)


def test_masked_lm_positions_gather_before_the_head(model, make_batch):
    ids, mask, token_types = make_batch()
    positions = np.array([[1, 4, 0], [2, 3, 5], [0, 1, 2]])
    full = model(ids, mask, token_types)
    gathered = model(ids, mask, token_types, masked_lm_positions=positions)
    assert gathered.prediction_logits.shape == (3, 3, model.config.vocab_size)
    expected = np.take_along_axis(np.asarray(full.prediction_logits), positions[..., None], axis=1)
    np.testing.assert_allclose(gathered.prediction_logits, expected, atol=1e-6)

    # Weighted loss over gathered positions equals the -100 form over the full sequence.
    labels = np.array([[5, 6, 7], [8, 9, 10], [11, 12, 0]])
    weights = np.array([[1, 1, 0], [1, 1, 1], [1, 1, 1]], np.float32)
    nsp = np.array([0, 1, 0])
    got = model(ids, mask, token_types, masked_lm_positions=positions, masked_lm_weights=weights,
                labels=labels, next_sentence_label=nsp).loss
    full_labels = np.full(ids.shape, -100)
    for b in range(3):
        for p, l, w in zip(positions[b], labels[b], weights[b]):
            if w:
                full_labels[b, p] = l
    want = model(ids, mask, token_types, labels=full_labels, next_sentence_label=nsp).loss
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_bfloat16_compute_and_params(tiny_kwargs, make_batch, model, bf16_bound):
    """bf16 compute stays within the rounding bound of ``conftest.bf16_logit_bound`` (derived from
    the unit roundoff 2^-8 and the number of roundings along the path; ~2.6x above the measured error)."""
    ids, mask, token_types = make_batch()
    config = BertConfig(**tiny_kwargs)
    half = BertForPreTraining(config, dtype=jnp.bfloat16, params=model.params)
    out = half(ids, mask, token_types)
    assert out.prediction_logits.dtype == jnp.bfloat16
    reference = np.asarray(model(ids, mask, token_types).prediction_logits)
    bound = bf16_bound(config.num_hidden_layers, reference)
    diff = float(np.abs(np.asarray(out.prediction_logits, np.float32) - reference).max())
    assert diff <= bound, f"bf16 logits differ from float32 by {diff:.3g} > rounding bound {bound:.3g}"
    stored = BertForPreTraining(config, param_dtype=jnp.bfloat16)
    assert {x.dtype for x in jax.tree_util.tree_leaves(stored.params)} == {jnp.dtype(jnp.bfloat16)}


def test_every_parameter_has_logical_axes_from_the_vocabulary(tiny_kwargs):
    config = BertConfig(**tiny_kwargs)
    module = BertForPreTrainingModule(config)
    boxed = jax.eval_shape(lambda r: module.init({"params": r}, **dummy_inputs(config, "BertForPreTraining")),
                           jax.random.key(0))["params"]
    flat = jax.tree_util.tree_flatten_with_path(boxed, is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))[0]
    names = {}
    for path, leaf in flat:
        assert isinstance(leaf, nn.LogicallyPartitioned), f"{path} has no logical axis names"
        key = "/".join(p.key for p in path)
        names[key] = leaf.names
        assert len(leaf.names) == leaf.value.ndim, key
        assert set(leaf.names) - {None} <= set(LOGICAL_AXES), (key, leaf.names)
    assert names["bert/embeddings/word_embeddings/embedding"] == ("vocab", "embed")
    assert names["bert/embeddings/position_embeddings/embedding"] == (None, "embed")
    assert names["bert/encoder/layer/0/attention/self/query/kernel"] == ("embed", "heads")
    assert names["bert/encoder/layer/0/attention/self/query/bias"] == ("heads",)
    assert names["bert/encoder/layer/0/attention/output/dense/kernel"] == ("heads", "embed")
    assert names["bert/encoder/layer/1/intermediate/dense/kernel"] == ("embed", "mlp")
    assert names["bert/encoder/layer/1/output/dense/kernel"] == ("mlp", "embed")
    assert names["bert/encoder/layer/1/output/LayerNorm/scale"] == ("embed",)
    assert names["cls/predictions/bias"] == ("vocab",)
    # The annotations turn into partition specs through a rule set.
    rules = (("vocab", "model"), ("embed", None), ("heads", "model"), ("mlp", "model"))
    specs = nn.get_partition_spec(boxed)
    spec = nn.logical_to_mesh_axes(specs["bert"]["encoder"]["layer"]["0"]["intermediate"]["dense"]["kernel"], rules)
    assert tuple(spec) == (None, "model")
    assert meta.unbox(boxed)["cls"]["predictions"]["bias"].shape == (config.vocab_size,)


def test_dropout_is_on_only_in_training(model, make_batch):
    ids, mask, token_types = make_batch()
    eval_a = model(ids, mask, token_types).prediction_logits
    train_a = model(ids, mask, token_types, train=True, dropout_rng=jax.random.key(1)).prediction_logits
    train_b = model(ids, mask, token_types, train=True, dropout_rng=jax.random.key(1)).prediction_logits
    train_c = model(ids, mask, token_types, train=True, dropout_rng=jax.random.key(2)).prediction_logits
    np.testing.assert_array_equal(train_a, train_b)
    assert not np.allclose(train_a, eval_a)
    assert not np.allclose(train_a, train_c)
    with pytest.raises(ValueError, match="dropout_rng"):
        model(ids, train=True)


@pytest.mark.parametrize("rate,shape", [(0.1, (64, 33, 129)), (0.5, (4, 1000)), (0.013, (300, 257))])
def test_dropout_drops_at_its_rate_and_keeps_the_expectation(rate, shape):
    """The packed 16-bit mask: the dropped fraction is the rate within 4 binomial standard
    deviations, every element is independent of its neighbours (odd last axes included),
    survivors are scaled so the mean is unchanged, and eval mode is the identity."""
    from bert_jax.modeling.layers import Dropout
    x = jnp.ones(shape, jnp.float32)
    layer = Dropout(rate)
    y = np.asarray(layer.apply({}, x, deterministic=False, rngs={"dropout": jax.random.key(0)}))
    n = y.size
    dropped = float((y == 0).mean())
    assert abs(dropped - rate) < 4 * np.sqrt(rate * (1 - rate) / n), dropped
    kept = y[y != 0]
    assert np.allclose(kept, kept[0]) and abs(kept[0] * (1 - rate) - 1) < 1e-4
    # the two halves of each 32-bit word are independent draws: P(both dropped) = rate^2
    pairs = (y.reshape(-1)[: n // 2 * 2].reshape(-1, 2) == 0)
    both = float(pairs.all(axis=1).mean())
    assert abs(both - rate ** 2) < 4 * np.sqrt(rate ** 2 * (1 - rate ** 2) / len(pairs)) + 1e-9, both
    assert abs(float(np.mean(np.asarray(layer.apply({}, x * 3.0, deterministic=False,
                                                     rngs={"dropout": jax.random.key(1)})))) - 3.0) \
        < 4 * 3.0 * np.sqrt(rate / (1 - rate) / n)
    other = np.asarray(layer.apply({}, x, deterministic=False, rngs={"dropout": jax.random.key(1)}))
    assert not np.array_equal(other == 0, y == 0)
    np.testing.assert_array_equal(layer.apply({}, x, deterministic=True), x)


def test_dropout_hash_is_jax_threefry_and_draws_are_keyed_by_position():
    """The unrolled hash is bit-identical to jax.random's threefry; a [4, 6, 10] mask's draws
    are the first 10 of a [4, 6, 12] mask's (both use the same 4 x 6 x 3 position counters);
    a batch may need more than 2**32 counters, one row may not. Masks under 1 vs 8 devices:
    test_sharding."""
    from jax.extend.random import threefry_2x32
    from bert_jax.modeling.layers import threefry2x32, uniform_16bit
    key = jnp.asarray([0x12345678, 0x9ABCDEF0], jnp.uint32)
    counters = jnp.arange(1000, dtype=jnp.uint32)
    hi, lo = threefry2x32(key[0], key[1], counters, counters + 7)
    expected = threefry_2x32(key, jnp.concatenate([counters, counters + 7]))
    np.testing.assert_array_equal(np.concatenate([hi, lo]), expected)
    draws = np.asarray(uniform_16bit(jax.random.key(3), (4, 6, 10)))
    # counters cover 3 groups of four along the last axis; the last group's final two are unused
    wide = np.asarray(uniform_16bit(jax.random.key(3), (4, 6, 12)))
    np.testing.assert_array_equal(draws, wide[..., :10])
    assert len(np.unique(draws)) > 0.99 * draws.size  # 240 draws from 65,536 values
    # rows take the second counter word: two rows with the same position within them differ
    assert (draws[0] != draws[1]).mean() > 0.99
    # any number of rows (BERT-large at seq 512, global batch 4096: 2**32 counters in all) ...
    jax.eval_shape(lambda k: uniform_16bit(k, (4096, 16, 512, 512)), jax.random.key(0))
    # ... but at most 2**32 counters within one row
    with pytest.raises(ValueError, match="2\\*\\*32 random counters within one row"):
        uniform_16bit(jax.random.key(0), (2, 2 ** 16, 2 ** 18))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_vocab_bias_gradient_is_the_plain_sum(dtype):
    """add_vocab_bias's matvec bias gradient equals autodiff of ``logits + bias``."""
    from bert_jax.modeling.layers import add_vocab_bias
    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(size=(3, 5, 301)), dtype)
    bias = jnp.asarray(rng.normal(size=(301,)), dtype)
    weights = jnp.asarray(rng.normal(size=(3, 5, 301)), dtype)
    def loss(f):
        return lambda x, b: jnp.sum((f(x, b) * weights).astype(jnp.float32))
    got = jax.grad(loss(add_vocab_bias), argnums=(0, 1))(logits, bias)
    want = jax.grad(loss(lambda x, b: x + b), argnums=(0, 1))(logits, bias)
    np.testing.assert_array_equal(np.asarray(add_vocab_bias(logits, bias), np.float32),
                                  np.asarray(logits + bias, np.float32))
    np.testing.assert_array_equal(np.asarray(got[0], np.float32), np.asarray(want[0], np.float32))
    tol = 1e-5 if dtype == jnp.float32 else 2e-2
    np.testing.assert_allclose(np.asarray(got[1], np.float32), np.asarray(want[1], np.float32), rtol=tol, atol=tol)


def test_lm_head_model_requires_a_decoder_config(tiny_kwargs):
    with pytest.raises(ValueError, match="is_decoder=True"):
        BertLMHeadModel(BertConfig(**tiny_kwargs))


def test_loss_pairs_match_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 5, 7)).astype(np.float32)
    labels = rng.integers(0, 7, size=(4, 5))
    labels[0, :2] = -100
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_probs, np.clip(labels, 0, None)[..., None], -1)[..., 0]
    valid = labels != -100
    total, count = losses.cross_entropy_with_ignore(jnp.asarray(logits), jnp.asarray(labels))
    np.testing.assert_allclose(total, nll[valid].sum(), rtol=1e-5)
    assert count == valid.sum()
    weights = rng.random((4, 5)).astype(np.float32)
    total, weight = losses.masked_lm_loss(jnp.asarray(logits), jnp.asarray(np.clip(labels, 0, None)), weights)
    np.testing.assert_allclose(total, (nll * weights).sum(), rtol=1e-5)
    np.testing.assert_allclose(weight, weights.sum(), rtol=1e-6)
    correct, count = losses.accuracy_with_ignore(jnp.asarray(logits), jnp.asarray(labels))
    assert correct == ((logits.argmax(-1) == labels) & valid).sum() and count == valid.sum()
    x, y = rng.normal(size=(3, 4)), rng.integers(0, 2, (3, 4)).astype(np.float32)
    bce = (np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))).sum()
    np.testing.assert_allclose(losses.sigmoid_binary_cross_entropy(jnp.asarray(x), jnp.asarray(y))[0], bce, rtol=1e-5)
    np.testing.assert_allclose(losses.mean_squared_error(jnp.asarray(x), jnp.asarray(y))[0], ((x - y) ** 2).sum(),
                               rtol=1e-5)
    assert float(losses.mean((jnp.float32(0), jnp.float32(0)))) == 0.0


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_is_argmax_is_numpy_argmax_including_ties(dtype):
    """The train step's accuracy counts a hit exactly when numpy's argmax (first maximum) is the label."""
    rng = np.random.default_rng(0)
    logits = rng.integers(-3, 4, size=(64, 9, 11)).astype(np.float32)  # small integers: many ties
    first = logits.argmax(-1)
    tied_later = np.where(logits == logits.max(-1, keepdims=True),
                          np.arange(11), -1).max(-1)  # the last maximum
    labels = np.stack([first, tied_later, rng.integers(0, 11, (64, 9))])  # [3, 64, 9]
    for lab in labels:
        got = losses.is_argmax(jnp.asarray(logits, dtype), jnp.asarray(lab))
        np.testing.assert_array_equal(np.asarray(got), first == lab)
    assert (tied_later != first).sum() > 50  # the tie case is exercised


def test_pretraining_cross_entropy_and_hits_match_optax_and_argmax():
    import optax
    from bert_jax.tasks.pretraining import _cross_entropy_and_hits
    rng = np.random.default_rng(1)
    logits = jnp.asarray(rng.normal(size=(6, 5, 50)) * 4, jnp.float32)
    labels = jnp.asarray(rng.integers(0, 50, (6, 5)))
    xent, hits = _cross_entropy_and_hits(logits, labels)
    np.testing.assert_allclose(xent, optax.softmax_cross_entropy_with_integer_labels(logits, labels), rtol=1e-6)
    np.testing.assert_array_equal(hits, (np.asarray(logits).argmax(-1) == np.asarray(labels)).astype(np.float32))
    grad = jax.grad(lambda x: _cross_entropy_and_hits(x, labels)[0].sum())(logits)
    want = jax.grad(lambda x: optax.softmax_cross_entropy_with_integer_labels(x, labels).sum())(logits)
    np.testing.assert_allclose(grad, want, atol=1e-6)


def test_exact_gelu_matches_torch_in_value_and_gradient():
    torch = pytest.importorskip("torch")
    from bert_jax.modeling.layers import ACTIVATIONS
    xs = np.linspace(-12, 12, 20001, dtype=np.float32)
    tx = torch.tensor(xs, requires_grad=True)
    want = torch.nn.functional.gelu(tx)  # approximate="none": the erf formula
    want.sum().backward()
    gelu = ACTIVATIONS["gelu"]
    np.testing.assert_allclose(gelu(jnp.asarray(xs)), want.detach().numpy(), rtol=0, atol=2e-6)
    np.testing.assert_allclose(jax.vmap(jax.grad(gelu))(jnp.asarray(xs)), tx.grad.numpy(), rtol=0, atol=1e-6)


def test_remat_layer_loop_gives_the_same_outputs(model, make_batch):
    # Gradients under remat (with dropout) are checked by the slow test in test_modeling_grads.
    ids, mask, token_types = make_batch()
    remat = BertForPreTraining(model.config, params=model.params, remat_policy="dots_saveable")
    a = model(ids, mask, token_types, output_attentions=True)
    b = remat(ids, mask, token_types, output_attentions=True)
    jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, atol=1e-6), a, b)


def test_too_long_input_is_an_error(model):
    with pytest.raises(ValueError, match="input length 65 exceeds max_position_embeddings=64"):
        model(np.ones((1, 65), np.int32))


def test_every_remat_policy_either_builds_or_is_refused_up_front():
    """A policy that needs arguments passed the name check (offload_dot_with_no_batch_dims) and
    failed inside the model with a TypeError; each name JAX has is now a policy or refused."""
    from bert_jax.modeling.layers import remat_policy_fn
    for name in (n for n in dir(jax.checkpoint_policies) if not n.startswith("_")):
        try:
            use, policy = remat_policy_fn(name)
        except ValueError as e:
            assert "needs arguments" in str(e), (name, e)
            continue
        x = jnp.ones((2, 3))
        # the policy is called the way jax.checkpoint calls it (a primitive and its params)
        grad = jax.grad(lambda v: jnp.sum(jax.checkpoint(lambda u: jnp.sin(u @ u.T), policy=policy)(v)))(x)
        assert use and grad.shape == x.shape, name
