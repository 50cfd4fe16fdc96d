"""Every model class against Hugging Face PyTorch BERT on the same random weights.

A random ``transformers.BertFor*`` (fp32, eval mode) is saved to disk, loaded with
our ``from_pretrained``, and every output field (loss, logits, hidden_states,
attentions, cross_attentions) is compared on a padded batch with varied lengths
and both token types: max abs difference <= 1e-4.
"""

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from bert_jax import modeling  # noqa: E402

pytestmark = pytest.mark.parity
ATOL = 1e-4


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


@pytest.fixture(scope="module", params=sorted(CASES))
def compared(request, tiny_kwargs, make_batch, tmp_path_factory):
    """(our output, Hugging Face output) for one case."""
    case = request.param
    name = case.split("/")[0]
    config = transformers.BertConfig(**tiny_kwargs, **CASES[case], attn_implementation="eager")
    torch.manual_seed(0)
    reference = getattr(transformers, name)(config).eval()
    directory = tmp_path_factory.mktemp(case.replace("/", "_"))
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

    ours_out = ours(ids, mask, token_types, output_hidden_states=True, output_attentions=True, **extras)
    with torch.no_grad():
        ref_out = reference(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                            token_type_ids=torch.tensor(token_types), output_hidden_states=True,
                            output_attentions=True, **{k: torch.tensor(v) for k, v in extras.items()})
    return case, ours_out, ref_out


def _flat(value):
    return list(value) if isinstance(value, tuple) else [value]


def test_every_output_field_matches_pytorch(compared):
    case, ours, ref = compared
    compared_fields = []
    for field in dataclasses.fields(ours):
        mine = getattr(ours, field.name)
        theirs = getattr(ref, field.name, None)
        if mine is None:
            # The reference returns () for cross-attentions when there is no encoder.
            assert theirs is None or theirs == (), f"{case}: {field.name} missing from our output"
            continue
        assert theirs is not None, f"{case}: {field.name} not produced by the reference"
        mine, theirs = _flat(mine), _flat(theirs)
        assert len(mine) == len(theirs), f"{case}: {field.name} has {len(mine)} entries, reference {len(theirs)}"
        for i, (a, b) in enumerate(zip(mine, theirs)):
            a, b = np.asarray(a), b.numpy()
            assert a.shape == b.shape, f"{case}: {field.name}[{i}] shape {a.shape} vs {b.shape}"
            diff = np.max(np.abs(a - b))
            assert diff <= ATOL, f"{case}: {field.name}[{i}] max abs diff {diff:.3g} > {ATOL}"
        compared_fields.append(field.name)
    # Every case must have exercised its loss, hidden states and attentions.
    expected = {"hidden_states", "attentions"} | ({"loss"} if case != "BertModel" else {"last_hidden_state"})
    if case == "BertLMHeadModel/cross":
        expected.add("cross_attentions")
    assert expected <= set(compared_fields), (case, compared_fields)
