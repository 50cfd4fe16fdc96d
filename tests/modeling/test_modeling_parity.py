"""Every model class against Hugging Face PyTorch BERT on the same random weights.

A random ``transformers.BertFor*`` (fp32, eval mode) is saved to disk, loaded with
our ``from_pretrained``, and every output field (loss, logits, hidden_states,
attentions, cross_attentions) is compared on a padded batch with varied lengths
and both token types. Two weight scales:

* ``init``: Hugging Face's own initialisation (std 0.02, zero biases, unit
  LayerNorm). Max abs difference <= 1e-4.
* ``scaled``: std ``SCALED_RANGE`` = 0.3 and biases / LayerNorm parameters
  perturbed by the same std. At std 0.02 the network is nearly linear (the GELU
  inputs are ~0.1, attention almost uniform), so a wrong activation or softmax
  scale moves outputs by ~1e-6 and hides below any tolerance; at 0.3 the GELU
  inputs are O(1) and attention rows are peaked. Outputs reach ~5, so the bound
  is relative: max abs difference <= 1e-4 x max(1, max |reference|). fp32
  rounding (2^-24 ~ 6e-8 per operation) accumulated over the two layers and the
  heads measures ~3e-6 relative; 1e-4 leaves ~30x headroom while a tanh
  instead of erf GELU (~1e-3 relative here) fails.

Each class is also run at the scaled weights without ``output_attentions`` /
``output_hidden_states``, which takes the fused ``dot_product_attention`` path
users get by default, and compared with the reference the same way.
"""

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from bert_jax import modeling  # noqa: E402

pytestmark = pytest.mark.parity
ATOL = 1e-4  # init scale: absolute
RTOL = 1e-4  # scaled weights: relative to the field's largest reference value
SCALED_RANGE = 0.3


def _labels(case, ids, mask, rng):
    batch, length = ids.shape[0], ids.shape[-1]
    mlm = np.where((rng.random(ids.shape) < 0.3) & (mask == 1), ids, -100)
    if case in ("BertForPreTraining",):
        return {"labels": mlm, "next_sentence_label": rng.integers(0, 2, batch)}
    if case == "BertForMaskedLM":
        return {"labels": mlm}
    if case.startswith("BertLMHeadModel"):
        return {"labels": np.where(mask == 1, ids, -100)}
    if case in ("BertForNextSentencePrediction", "BertForMultipleChoice", "BertForSequenceClassification"):
        return {"labels": rng.integers(0, 2, batch)}
    if case == "BertForSequenceClassification/regression":
        return {"labels": rng.normal(size=batch).astype(np.float32)}
    if case == "BertForSequenceClassification/multi_label":
        return {"labels": rng.integers(0, 2, (batch, 3)).astype(np.float32)}
    if case == "BertForTokenClassification":
        return {"labels": np.where(mask == 1, rng.integers(0, 2, ids.shape), -100)}
    if case == "BertForQuestionAnswering":
        # One end position beyond the sequence: ignored, as in Hugging Face.
        return {"start_positions": rng.integers(0, length, batch),
                "end_positions": np.array([1, length + 5, length - 1])[:batch]}
    return {}


CASES = {
    "BertModel": {},
    "BertForPreTraining": {},
    "BertForMaskedLM": {},
    "BertLMHeadModel": {"is_decoder": True},
    "BertLMHeadModel/cross": {"is_decoder": True, "add_cross_attention": True},
    "BertForNextSentencePrediction": {},
    "BertForSequenceClassification": {},
    "BertForSequenceClassification/regression": {"num_labels": 1},
    "BertForSequenceClassification/multi_label": {"num_labels": 3, "problem_type": "multi_label_classification"},
    "BertForMultipleChoice": {},
    "BertForTokenClassification": {},
    "BertForQuestionAnswering": {},
}
SCALES = ("init", "scaled")


def _run_both(case, scale, tiny_kwargs, make_batch, directory, full_outputs):
    """(our output, Hugging Face output) for one case at one weight scale."""
    name = case.split("/")[0]
    extra_config = {"initializer_range": SCALED_RANGE} if scale == "scaled" else {}
    config = transformers.BertConfig(**tiny_kwargs, **CASES[case], **extra_config, attn_implementation="eager")
    torch.manual_seed(0)
    reference = getattr(transformers, name)(config).eval()
    if scale == "scaled":
        # Hugging Face initialises biases to 0 and LayerNorm to (1, 0): a dropped bias would go unseen.
        generator = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for key, value in reference.named_parameters():
                if key.endswith("bias") or "LayerNorm" in key:
                    value.add_(SCALED_RANGE * torch.randn(value.shape, generator=generator))
    reference.save_pretrained(directory)
    ours = getattr(modeling, name).from_pretrained(directory)

    ids, mask, token_types = make_batch(vocab=tiny_kwargs["vocab_size"])
    rng = np.random.default_rng(1)
    if name == "BertForMultipleChoice":  # [batch, choices, length]
        ids, mask, token_types = (np.stack([x, np.roll(x, 1, axis=0)], axis=1) for x in (ids, mask, token_types))
    extras = _labels(case, ids, mask, rng)
    if case == "BertLMHeadModel/cross":
        extras["encoder_hidden_states"] = rng.normal(size=(ids.shape[0], 7, tiny_kwargs["hidden_size"])).astype(np.float32)
        extras["encoder_attention_mask"] = (np.arange(7)[None] < np.array([7, 5, 2])[:, None]).astype(np.int64)

    flags = dict(output_hidden_states=full_outputs, output_attentions=full_outputs)
    ours_out = ours(ids, mask, token_types, **flags, **extras)
    with torch.no_grad():
        ref_out = reference(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                            token_type_ids=torch.tensor(token_types), **flags,
                            **{k: torch.tensor(v) for k, v in extras.items()})
    return ours_out, ref_out


def _flat(value):
    return list(value) if isinstance(value, tuple) else [value]


def _compare_fields(case, scale, ours, ref):
    """Asserts every non-empty field of ``ours`` matches ``ref``; returns the names compared."""
    compared_fields = []
    for field in dataclasses.fields(ours):
        mine = getattr(ours, field.name)
        theirs = getattr(ref, field.name, None)
        if mine is None:
            # The reference returns () for cross-attentions when there is no encoder.
            assert theirs is None or theirs == (), f"{case}/{scale}: {field.name} missing from our output"
            continue
        assert theirs is not None, f"{case}/{scale}: {field.name} not produced by the reference"
        mine, theirs = _flat(mine), _flat(theirs)
        assert len(mine) == len(theirs), f"{case}/{scale}: {field.name} has {len(mine)} entries, reference {len(theirs)}"
        for i, (a, b) in enumerate(zip(mine, theirs)):
            a, b = np.asarray(a), b.numpy()
            assert a.shape == b.shape, f"{case}/{scale}: {field.name}[{i}] shape {a.shape} vs {b.shape}"
            diff = float(np.max(np.abs(a - b)))
            bound = ATOL if scale == "init" else RTOL * max(1.0, float(np.max(np.abs(b))))
            assert diff <= bound, f"{case}/{scale}: {field.name}[{i}] max abs diff {diff:.3g} > {bound:.3g}"
        compared_fields.append(field.name)
    return compared_fields


@pytest.fixture(scope="module", params=[(case, scale) for scale in SCALES for case in sorted(CASES)],
                ids=lambda p: f"{p[0]}-{p[1]}")
def compared(request, tiny_kwargs, make_batch, tmp_path_factory):
    """(case, scale, our output, Hugging Face output) with all hidden states and attentions."""
    case, scale = request.param
    directory = tmp_path_factory.mktemp(f"{case.replace('/', '_')}_{scale}")
    return (case, scale, *_run_both(case, scale, tiny_kwargs, make_batch, directory, full_outputs=True))


def test_every_output_field_matches_pytorch(compared):
    case, scale, ours, ref = compared
    compared_fields = _compare_fields(case, scale, ours, ref)
    # Every case must have exercised its loss, hidden states and attentions.
    expected = {"hidden_states", "attentions"} | ({"loss"} if case != "BertModel" else {"last_hidden_state"})
    if case == "BertLMHeadModel/cross":
        expected.add("cross_attentions")
    assert expected <= set(compared_fields), (case, compared_fields)


@pytest.mark.parametrize("case", sorted(CASES))
def test_default_fused_attention_path_matches_pytorch(case, tiny_kwargs, make_batch, tmp_path):
    ours, ref = _run_both(case, "scaled", tiny_kwargs, make_batch, tmp_path, full_outputs=False)
    assert ours.attentions is None and ours.hidden_states is None
    compared_fields = _compare_fields(case, "scaled", ours, ref)
    expected = {"loss"} if case != "BertModel" else {"last_hidden_state", "pooler_output"}
    assert expected <= set(compared_fields), (case, compared_fields)
