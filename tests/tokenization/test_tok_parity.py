"""Ids identical to Hugging Face's tokenizers (parity extra).

Ours-Python is compared with Hugging Face's Python tokenizer (`BertTokenizer`
in transformers 4.x, `BertTokenizerLegacy` in 5.x) and ours-fast with
`transformers.BertTokenizerFast`, on corpus lines plus hard cases, for
8k vocabularies trained on the corpus (lower-cased and cased): singles and
pairs, several truncation/padding settings, every returned field. The default
run uses the first 1,000 lines (``DEFAULT_LINES``); `-m slow` runs all of them
(> 20,000).
"""

from __future__ import annotations

import pytest

from bert_jax.tokenization import BertTokenizer, BertTokenizerFast

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.parity

DEFAULT_LINES = 1000  # the module docstring states this number

# Settings compared for singles and pairs. Every field is compared, so
# token_type_ids and special_tokens_mask are asked for explicitly (the 5.x
# Python tokenizer leaves token_type_ids out by default).
SETTINGS = {
    "plain": dict(),
    "longest_first_max_length": dict(truncation=True, max_length=32, padding="max_length"),
    "longest_multiple": dict(truncation="longest_first", max_length=48, padding=True, pad_to_multiple_of=16),
}
COMMON = dict(return_token_type_ids=True, return_attention_mask=True, return_special_tokens_mask=True)


def reference_python_class():
    """Hugging Face's pure-Python BERT tokenizer, whatever the installed version calls it."""
    legacy = getattr(transformers, "BertTokenizerLegacy", None)  # 5.x
    if legacy is not None:
        return legacy
    from transformers.models.bert.tokenization_bert import BertTokenizer  # 4.x: pure Python

    return BertTokenizer


def load_pair(kind: str, vocab_dir):
    """(reference, ours) for kind "python" or "fast"."""
    if kind == "python":
        return reference_python_class().from_pretrained(str(vocab_dir)), BertTokenizer.from_pretrained(vocab_dir)
    return transformers.BertTokenizerFast.from_pretrained(str(vocab_dir)), BertTokenizerFast.from_pretrained(vocab_dir)


def assert_same_encoding(reference_output, our_output, texts, what):
    reference = dict(reference_output)
    ours = dict(our_output)
    assert sorted(reference) == sorted(ours), f"{what}: keys differ"
    for key in reference:
        ref_rows, our_rows = reference[key], ours[key]
        bad = [i for i, (r, o) in enumerate(zip(ref_rows, our_rows)) if list(r) != list(o)]
        assert len(ref_rows) == len(our_rows), f"{what}/{key}: {len(ref_rows)} vs {len(our_rows)} rows"
        assert not bad, (f"{what}/{key}: {len(bad)} mismatching rows, first {bad[0]} "
                         f"text={texts[bad[0]]!r:.200} ref={list(ref_rows[bad[0]])[:40]} ours={list(our_rows[bad[0]])[:40]}")


def run_parity(kind, vocab_dir, lines, hard_cases):
    reference, ours = load_pair(kind, vocab_dir)
    texts = list(lines) + hard_cases
    firsts, seconds = texts[:-1], texts[1:]
    for name, setting in SETTINGS.items():
        kwargs = {**COMMON, **setting}
        if kind == "fast":
            kwargs["return_offsets_mapping"] = True
        assert_same_encoding(reference(texts, **kwargs), ours(texts, **kwargs), texts, f"{kind}/{name}/single")
        assert_same_encoding(reference(firsts, seconds, **kwargs), ours(firsts, seconds, **kwargs),
                             firsts, f"{kind}/{name}/pair")
    # only_first / only_second need the other text short enough to fit.
    short = [t[:30] for t in firsts]
    kwargs = {**COMMON, "truncation": "only_second", "max_length": 40, "padding": True}
    assert_same_encoding(reference(short, seconds, **kwargs), ours(short, seconds, **kwargs), short, f"{kind}/only_second")
    kwargs = {**COMMON, "truncation": "only_first", "max_length": 40, "padding": "max_length"}
    assert_same_encoding(reference(firsts, short, **kwargs), ours(firsts, short, **kwargs), firsts, f"{kind}/only_first")
    # Overflow windows with a stride (the long-context setting).
    kwargs = {"truncation": "only_second", "max_length": 32, "stride": 8, "return_overflowing_tokens": True,
              "return_token_type_ids": True}
    for i in range(0, min(len(firsts), 200)):
        question, context = short[i], " ".join(texts[i:i + 4])
        assert dict(reference(question, context, **kwargs)) == dict(ours(question, context, **kwargs)), (question, context)
    # decode, with and without special tokens.
    for ids in ours(texts[:300] + hard_cases)["input_ids"]:
        for skip in (False, True):
            assert reference.decode(ids, skip_special_tokens=skip) == ours.decode(ids, skip_special_tokens=skip), ids


@pytest.mark.parametrize("kind", ["python", "fast"])
@pytest.mark.parametrize("vocab", ["uncased", "cased"])
def test_parity_on_corpus_sample(kind, vocab, trained_vocabs, corpus_lines, hard_cases):
    run_parity(kind, trained_vocabs[vocab], corpus_lines[:DEFAULT_LINES], hard_cases)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["python", "fast"])
@pytest.mark.parametrize("vocab", ["uncased", "cased"])
def test_parity_on_full_corpus(kind, vocab, trained_vocabs, corpus_lines, hard_cases):
    run_parity(kind, trained_vocabs[vocab], corpus_lines, hard_cases)


@pytest.mark.parametrize("vocab", ["uncased", "cased"])
def test_tokens_of_hard_cases(vocab, trained_vocabs, hard_cases):
    for kind in ("python", "fast"):
        reference, ours = load_pair(kind, trained_vocabs[vocab])
        for text in hard_cases:
            assert reference.tokenize(text) == ours.tokenize(text), (kind, text)


def test_longest_first_tie_break_follows_each_counterpart(trained_vocabs):
    """Both texts too long by an odd number of tokens: Python keeps the extra
    token in the first text, Rust in the second; each of ours follows its own."""
    vocab_dir = trained_vocabs["uncased"]
    a = "the quick brown fox jumps over the lazy dog again"
    b = "a slow green turtle walks under the busy cat today"
    outputs = {}
    for kind in ("python", "fast"):
        reference, ours = load_pair(kind, vocab_dir)
        assert len(ours.tokenize(a)) == len(ours.tokenize(b))
        ref_ids = reference(a, b, truncation="longest_first", max_length=12)["input_ids"]
        assert ours(a, b, truncation="longest_first", max_length=12)["input_ids"] == ref_ids
        sep = ours.sep_token_id
        outputs[kind] = ref_ids.index(sep) - 1  # tokens kept from the first text
    assert outputs["python"] == 5 and outputs["fast"] == 4


def test_hugging_face_fast_refuses_pair_special_tokens_mask_ours_do_not(trained_vocabs):
    reference, ours = load_pair("fast", trained_vocabs["uncased"])
    a, b = ours.encode("first text", add_special_tokens=False), ours.encode("second", add_special_tokens=False)
    expected = [1] + [0] * len(a) + [1] + [0] * len(b) + [1]
    assert ours.get_special_tokens_mask(a, b) == expected
    assert BertTokenizer.from_pretrained(trained_vocabs["uncased"]).get_special_tokens_mask(a, b) == expected
    python_reference, _ = load_pair("python", trained_vocabs["uncased"])
    assert python_reference.get_special_tokens_mask(a, b) == expected
    if int(transformers.__version__.split(".")[0]) >= 5:
        with pytest.raises(NotImplementedError):
            reference.get_special_tokens_mask(a, b)
