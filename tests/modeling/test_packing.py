"""Packed rows: no cross-contamination between instances, and the same loss and gradients as unpacked.

Instances are token-id rows ``[CLS] A [SEP] B [SEP]`` with random ids (the model
is what is under test, not the text), packed by ``data_pipeline.packing`` itself.
Weights are drawn with ``initializer_range=0.3`` so attention is far from
uniform and a leak between instances would move outputs by orders of magnitude
more than the 1e-5 tolerance (``test_without_segments_the_instances_leak`` shows it).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bert_jax.config import BertConfig
from bert_jax.modeling import BertForPreTrainingModule
from bert_jax.modeling.layers import unboxed
from bert_jax.tasks.pretraining import PretrainingTask
from data_pipeline import packing

SEQ, PRED, VOCAB = 32, 5, 100
CLS, SEP, PAD = 2, 3, 0
LENGTHS = (20, 14, 9, 6)  # first-fit decreasing into rows of 32: [20, 9], [14, 6]
CFG = packing.PackingConfig(max_seq_length=SEQ, max_instances_per_row=3, max_predictions_per_row=12, window_size=8)


def tiny_config(**kw) -> BertConfig:
    base = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                max_position_embeddings=64, initializer_range=0.3, hidden_dropout_prob=0.0,
                attention_probs_dropout_prob=0.0)
    return BertConfig(**{**base, **kw})


def unpacked_instances(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One instance per row ``[len(LENGTHS), SEQ]``, padded, with masked positions and NSP labels."""
    n = len(LENGTHS)
    ids = np.full((n, SEQ), PAD, np.int32)
    types = np.zeros((n, SEQ), np.int32)
    mask = np.zeros((n, SEQ), np.int32)
    positions = np.zeros((n, PRED), np.int32)
    targets = np.zeros((n, PRED), np.int32)
    weights = np.zeros((n, PRED), np.float32)
    for i, length in enumerate(LENGTHS):
        a = (length - 3) // 2
        row = np.concatenate([[CLS], rng.integers(5, VOCAB, a), [SEP], rng.integers(5, VOCAB, length - 3 - a), [SEP]])
        ids[i, :length] = row
        types[i, a + 2:length] = 1
        mask[i, :length] = 1
        ordinary = np.flatnonzero((row != CLS) & (row != SEP))
        k = min(PRED, max(1, length // 5))
        chosen = np.sort(rng.choice(ordinary, k, replace=False))
        positions[i, :k], targets[i, :k], weights[i, :k] = chosen, row[chosen], 1.0
        ids[i, chosen[: k // 2 + 1]] = 4  # [MASK] on some, as the masker does
    return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask, "masked_lm_positions": positions,
            "masked_lm_ids": targets, "masked_lm_weights": weights,
            "next_sentence_label": rng.integers(0, 2, n).astype(np.int32),
            "example_index": np.arange(n, dtype=np.int64)}


@pytest.fixture(scope="module")
def data():
    unpacked = unpacked_instances(np.random.default_rng(0))
    row, slot, num_rows = packing.first_fit(np.array(LENGTHS), (unpacked["masked_lm_weights"] > 0).sum(1), CFG)
    packed = packing.assemble_rows(unpacked, row, slot, num_rows, CFG, PAD)
    assert num_rows == 2 and (packed["next_sentence_weight"].sum(1) == 2).all()
    return unpacked, packed


@pytest.fixture(scope="module")
def model_and_params():
    module = BertForPreTrainingModule(tiny_config())
    ids = jnp.zeros((1, SEQ), jnp.int32)
    init = jax.jit(lambda key: module.init(key, ids, masked_lm_positions=jnp.zeros((1, PRED), jnp.int32)))
    params = unboxed(init(jax.random.PRNGKey(3))["params"])
    return module, params


def run(module, params, batch, packed: bool, output_attentions=False, segments=True):
    extra = {}
    if packed:
        extra = {"position_ids": batch["position_ids"], "next_sentence_positions": batch["next_sentence_positions"]}
        if segments:
            extra["segment_ids"] = batch["segment_ids"]
    apply = jax.jit(module.apply, static_argnames=("output_hidden_states", "output_attentions"))
    out = apply({"params": params}, batch["input_ids"], batch["attention_mask"], batch["token_type_ids"],
                       masked_lm_positions=batch["masked_lm_positions"], output_hidden_states=True,
                       output_attentions=output_attentions, **extra)
    return jax.tree_util.tree_map(np.asarray, out)


def where_packed(packed):
    """For every instance: (row, offset, slot) in the packed batch."""
    out = {}
    for r, s in zip(*np.nonzero(packed["next_sentence_weight"] > 0)):
        out[int(packed["example_index"][r, s])] = (r, int(packed["next_sentence_positions"][r, s]), s)
    return out


def per_instance_differences(unpacked, packed, alone, together):
    """Max |packed - alone| per output kind over all instances."""
    diffs = {"hidden": 0.0, "mlm": 0.0, "nsp": 0.0}
    placed = where_packed(packed)
    for i, length in enumerate(LENGTHS):
        r, off, s = placed[i]
        for h_alone, h_packed in zip(alone.hidden_states, together.hidden_states):
            diffs["hidden"] = max(diffs["hidden"], np.abs(h_packed[r, off:off + length] - h_alone[i, :length]).max())
        k = int(unpacked["masked_lm_weights"][i].sum())
        # The instance's predictions sit in its row at its own positions + offset, in slot order.
        prow = packed["masked_lm_positions"][r]
        mine = [j for j in range(len(prow)) if packed["masked_lm_weights"][r, j] > 0 and off <= prow[j] < off + length]
        assert len(mine) == k
        assert np.array_equal(prow[mine] - off, unpacked["masked_lm_positions"][i, :k])
        diffs["mlm"] = max(diffs["mlm"], np.abs(together.prediction_logits[r, mine] -
                                                 alone.prediction_logits[i, :k]).max())
        diffs["nsp"] = max(diffs["nsp"], np.abs(together.seq_relationship_logits[r, s] -
                                                 alone.seq_relationship_logits[i]).max())
    return diffs


@pytest.mark.parametrize("output_attentions", [False, True], ids=["fused_attention", "explicit_softmax"])
def test_each_packed_instance_equals_itself_alone(data, model_and_params, output_attentions):
    unpacked, packed = data
    module, params = model_and_params
    alone = run(module, params, unpacked, packed=False, output_attentions=output_attentions)
    together = run(module, params, packed, packed=True, output_attentions=output_attentions)
    assert together.seq_relationship_logits.shape == (2, CFG.max_instances_per_row, 2)
    scale = np.abs(alone.hidden_states[-1]).max()
    assert scale > 1.0
    diffs = per_instance_differences(unpacked, packed, alone, together)
    assert max(diffs.values()) < 1e-5, diffs
    if output_attentions:
        # No attention probability crosses an instance boundary.
        seg = packed["segment_ids"]
        across = seg[:, :, None] != seg[:, None, :]
        for probs in together.attentions:
            assert np.abs(probs * across[:, None]).max() == 0.0


def test_without_segments_the_instances_leak(data, model_and_params):
    """The check above can fail: the same packed rows without the block-diagonal mask differ a lot."""
    unpacked, packed = data
    module, params = model_and_params
    alone = run(module, params, unpacked, packed=False)
    leaky = run(module, params, packed, packed=True, segments=False)
    diffs = per_instance_differences(unpacked, packed, alone, leaky)
    assert min(diffs.values()) > 1e-2, diffs


def test_scan_layers_packed_equals_loop(data, model_and_params):
    _, packed = data
    module, params = model_and_params
    from bert_jax.convert.hf import stack_layers
    scanned = BertForPreTrainingModule(tiny_config(), scan_layers=True)
    a = run(module, params, packed, packed=True)
    b = run(scanned, stack_layers(jax.tree_util.tree_map(np.asarray, params)), packed, packed=True)
    np.testing.assert_allclose(b.prediction_logits, a.prediction_logits, atol=1e-5, rtol=0)
    np.testing.assert_allclose(b.seq_relationship_logits, a.seq_relationship_logits, atol=1e-5, rtol=0)


def test_packed_batch_gives_the_unpacked_loss_and_gradients(data, model_and_params):
    unpacked, packed = data
    module, params = model_and_params
    plain = PretrainingTask(module, SEQ, PRED)
    packed_task = PretrainingTask(module, SEQ, CFG.max_predictions_per_row, packing=True,
                                  max_instances_per_row=CFG.max_instances_per_row)
    assert set(packed_task.batch_spec) <= set(packed) and set(plain.batch_spec) <= set(unpacked)

    def loss_and_grads(task, batch):
        batch = {k: jnp.asarray(batch[k]) for k in task.batch_spec}
        denoms = task.denominators(batch)
        fn = lambda p: task.loss(p, batch, jax.random.PRNGKey(0), denoms, deterministic=True)
        (loss, sums), grads = jax.jit(jax.value_and_grad(fn, has_aux=True))(params)
        return float(loss), jax.tree_util.tree_map(np.asarray, sums), jax.tree_util.tree_map(np.asarray, grads)

    loss_u, sums_u, grads_u = loss_and_grads(plain, unpacked)
    loss_p, sums_p, grads_p = loss_and_grads(packed_task, packed)
    assert sums_p["nsp_count"] == sums_u["nsp_count"] == len(LENGTHS)
    assert sums_p["mlm_weight"] == sums_u["mlm_weight"]
    assert abs(loss_p - loss_u) <= 1e-5 * abs(loss_u), (loss_p, loss_u)
    leaves_u = jax.tree_util.tree_flatten_with_path(grads_u)[0]
    leaves_p = jax.tree_util.tree_leaves(grads_p)
    total = np.sqrt(sum(np.sum(np.square(g)) for _, g in leaves_u))
    assert total > 1e-2  # the gradients compared are not vanishing
    diff = np.sqrt(sum(np.sum(np.square(p - u)) for (_, u), p in zip(leaves_u, leaves_p)))
    assert diff <= 1e-5 * total, (diff, total)
    for (path, g_u), g_p in zip(leaves_u, leaves_p):
        # The key bias's gradient is zero in exact arithmetic (softmax ignores a per-query constant):
        # both sides hold rounding noise there, so leaves that small are covered by the global check.
        norm = np.linalg.norm(g_u)
        if norm > 1e-4 * total:
            assert np.linalg.norm(g_p - g_u) <= 1e-5 * norm, jax.tree_util.keystr(path)
