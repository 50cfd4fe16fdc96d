"""Gradients of BertForPreTraining's loss against PyTorch, and remat leaving them unchanged."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bert_jax.config import BertConfig
from bert_jax.convert.hf import params_to_hf_state_dict
from bert_jax.modeling import BertForPreTraining


def _global_norm(tree):
    return float(np.sqrt(sum(np.sum(np.square(np.asarray(x, np.float64))) for x in tree.values())))


def _batch(make_batch, vocab):
    ids, mask, token_types = make_batch(vocab=vocab)
    rng = np.random.default_rng(3)
    labels = np.where((rng.random(ids.shape) < 0.3) & (mask == 1), ids, -100)
    labels[:, 1] = ids[:, 1]  # at least one counted label per row
    return ids, mask, token_types, labels, rng.integers(0, 2, ids.shape[0])


def _loss_fn(model, ids, mask, token_types, labels, nsp):
    def loss(params):
        return model.module.apply({"params": params}, ids, mask, token_types, labels=labels,
                                  next_sentence_label=nsp).loss
    return loss


@pytest.mark.parity
def test_pretraining_gradients_match_pytorch(tiny_kwargs, make_batch, tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    reference = transformers.BertForPreTraining(
        transformers.BertConfig(**tiny_kwargs, attn_implementation="eager")).eval()
    reference.save_pretrained(tmp_path)
    model = BertForPreTraining.from_pretrained(tmp_path)
    ids, mask, token_types, labels, nsp = _batch(make_batch, tiny_kwargs["vocab_size"])

    loss, grads = jax.jit(jax.value_and_grad(_loss_fn(model, ids, mask, token_types, labels, nsp)))(model.params)
    ours = params_to_hf_state_dict(jax.device_get(grads), model.config, "BertForPreTraining")

    ref_loss = reference(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                         token_type_ids=torch.tensor(token_types), labels=torch.tensor(labels),
                         next_sentence_label=torch.tensor(nsp)).loss
    ref_loss.backward()
    # named_parameters lists each tied tensor once (word embeddings = decoder weight).
    theirs = {name: p.grad.numpy() for name, p in reference.named_parameters() if p.grad is not None}
    np.testing.assert_allclose(float(loss), float(ref_loss.detach()), rtol=1e-5)
    assert set(ours) == set(theirs), (set(ours) ^ set(theirs))
    diff = {k: ours[k] - theirs[k] for k in ours}
    relative = _global_norm(diff) / _global_norm(theirs)
    assert relative <= 1e-4, f"relative gradient difference {relative:.3g}"
    # Per-tensor check as well, so a small tensor cannot hide in the global norm.
    for k in ours:
        scale = max(np.abs(theirs[k]).max(), 1e-6)
        assert np.abs(diff[k]).max() / scale <= 1e-3, k


@pytest.mark.slow  # remat without dropout is covered in the default suite by test_scan_layers
@pytest.mark.parametrize("policy", ["full", "dots_saveable"])
def test_remat_gives_the_same_loss_and_gradients_with_dropout(tiny_kwargs, make_batch, policy):
    # Dropout on: rematerialisation must replay the same masks in the backward pass.
    config = BertConfig(**{**tiny_kwargs, "num_hidden_layers": 1})  # one layer: half the compile time
    plain = BertForPreTraining(config, seed=1)
    remat = BertForPreTraining(config, seed=1, remat_policy=policy)
    ids, mask, token_types, labels, nsp = _batch(make_batch, config.vocab_size)

    def grads(model):
        def loss(params, key):
            return model.module.apply({"params": params}, ids, mask, token_types, labels=labels,
                                      next_sentence_label=nsp, deterministic=False, rngs={"dropout": key}).loss
        return jax.jit(jax.value_and_grad(loss))(model.params, jax.random.key(7))

    value_a, grads_a = grads(plain)
    value_b, grads_b = grads(remat)
    np.testing.assert_allclose(value_a, value_b, rtol=1e-6)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), grads_a, grads_b)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree_util.tree_leaves(grads_b))


def test_unknown_remat_policy_is_an_error(tiny_kwargs):
    with pytest.raises(ValueError, match="Unknown remat_policy 'sometimes'"):
        BertForPreTraining(BertConfig(**tiny_kwargs), remat_policy="sometimes")
