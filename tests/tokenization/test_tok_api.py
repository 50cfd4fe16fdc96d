"""The `__call__` options, arrays, offsets and save/load of both tokenizers."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from bert_jax.tokenization import BertTokenizer, BertTokenizerFast

CLASSES = [BertTokenizer, BertTokenizerFast]
TEXTS = ["The cat sat on the mat.", "A much longer sentence about tokenizers, padding and truncation!", "Short"]


@pytest.fixture(scope="module")
def uncased(trained_vocabs):
    return trained_vocabs["uncased"]


@pytest.mark.parametrize("cls", CLASSES)
def test_padding_strategies(cls, uncased):
    tok = cls.from_pretrained(uncased)
    plain = tok(TEXTS)["input_ids"]
    lengths = [len(r) for r in plain]
    longest = tok(TEXTS, padding=True)
    assert all(len(r) == max(lengths) for r in longest["input_ids"])
    for row, n, mask in zip(longest["input_ids"], lengths, longest["attention_mask"]):
        assert row[n:] == [tok.pad_token_id] * (max(lengths) - n) and mask == [1] * n + [0] * (max(lengths) - n)
    fixed = tok(TEXTS, padding="max_length", max_length=40)
    assert {len(r) for r in fixed["input_ids"]} == {40}
    multiple = tok(TEXTS, padding=True, pad_to_multiple_of=8)
    assert len(multiple["input_ids"][0]) == -(-max(lengths) // 8) * 8
    left = cls.from_pretrained(uncased, padding_side="left")(TEXTS, padding=True)
    assert left["input_ids"][2][-len(plain[2]):] == plain[2] and left["input_ids"][2][0] == tok.pad_token_id


@pytest.mark.parametrize("cls", CLASSES)
def test_truncation_strategies(cls, uncased):
    tok = cls.from_pretrained(uncased)
    a, b = TEXTS[1], TEXTS[0]
    na, nb = len(tok.tokenize(a)), len(tok.tokenize(b))
    assert len(tok(a, max_length=8)["input_ids"]) == 8  # a bare max_length truncates
    only_second = tok(b, a, truncation="only_second", max_length=nb + 3 + 4)["input_ids"]
    assert len(only_second) == nb + 7 and only_second.count(tok.sep_token_id) == 2
    assert only_second[1: nb + 1] == tok.encode(b, add_special_tokens=False)
    only_first = tok(a, b, truncation="only_first", max_length=nb + 3 + 4)["input_ids"]
    assert only_first[1:5] == tok.encode(a, add_special_tokens=False)[:4]
    assert only_first[-(nb + 1):-1] == tok.encode(b, add_special_tokens=False)
    longest = tok(a, b, truncation=True, max_length=12)["input_ids"]
    assert len(longest) == 12 and na > nb


@pytest.mark.parametrize("cls", CLASSES)
def test_pair_forms_are_equivalent(cls, uncased):
    tok = cls.from_pretrained(uncased)
    as_lists = tok(TEXTS[:2], TEXTS[1:], padding=True)
    as_tuples = tok(list(zip(TEXTS[:2], TEXTS[1:])), padding=True)
    assert dict(as_lists) == dict(as_tuples)
    single = tok(TEXTS[0], TEXTS[1])
    assert single["input_ids"] == as_lists["input_ids"][0]
    assert tok.encode(TEXTS[0], TEXTS[1]) == single["input_ids"]


@pytest.mark.parametrize("cls", CLASSES)
def test_numpy_and_jax_arrays(cls, uncased):
    tok = cls.from_pretrained(uncased)
    out = tok(TEXTS, padding="max_length", max_length=16, truncation=True, return_tensors="np")
    assert out["input_ids"].shape == (3, 16) and out["input_ids"].dtype == np.int64
    assert out.input_ids.tolist() == tok(TEXTS, padding="max_length", max_length=16, truncation=True)["input_ids"]
    single = tok(TEXTS[0], return_tensors="np")
    assert single["input_ids"].shape == (1, len(tok(TEXTS[0])["input_ids"]))
    jnp = pytest.importorskip("jax.numpy")
    out_jax = tok(TEXTS, padding=True, return_tensors="jax")
    assert isinstance(out_jax["attention_mask"], type(jnp.zeros(1))) and out_jax["input_ids"].dtype == jnp.int32
    with pytest.raises(ValueError, match="padding=True"):
        tok(TEXTS, return_tensors="np")
    with pytest.raises(ValueError, match="not supported"):
        tok(TEXTS, padding=True, return_tensors="pt")


def test_importing_tokenizers_does_not_import_jax():
    code = ("import sys, bert_jax, bert_jax.tokenization, bert_jax.vocab; "
            "from bert_jax import BertTokenizerFast; assert 'jax' not in sys.modules, 'jax imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_fast_overflow_windows_with_stride(uncased):
    tok = BertTokenizerFast.from_pretrained(uncased)
    question, context = "what is it?", " ".join(TEXTS * 4)
    out = tok([question, question], [context, TEXTS[2]], truncation="only_second", max_length=20, stride=4,
              return_overflowing_tokens=True, padding=True, return_tensors="np")
    mapping = out["overflow_to_sample_mapping"].tolist()
    assert mapping[-1] == 1 and mapping.count(0) > 1 and out["input_ids"].shape[1] == 20
    context_ids = tok.encode(context, add_special_tokens=False)
    q = len(tok.encode(question, add_special_tokens=False))
    windows = [[i for i, t in zip(row, types) if t == 1][:-1]
               for row, types, m in zip(out["input_ids"].tolist(), out["token_type_ids"].tolist(), mapping) if m == 0]
    budget = 20 - q - 3
    assert windows[0] == context_ids[:budget]
    assert windows[1][:4] == windows[0][-4:]  # stride tokens repeated
    assert sum(len(w) - 4 for w in windows[1:]) + len(windows[0]) == len(context_ids)


def test_backend_is_left_without_truncation_or_padding(uncased):
    tok = BertTokenizerFast.from_pretrained(uncased)
    tok(TEXTS, truncation=True, max_length=5, padding="max_length")
    assert tok.backend_tokenizer.truncation is None and tok.backend_tokenizer.padding is None
    assert len(tok.backend_tokenizer.encode(TEXTS[1]).ids) > 5


def test_python_overflowing_tokens(uncased):
    tok = BertTokenizer.from_pretrained(uncased)
    ids = tok.encode(TEXTS[1], add_special_tokens=False)
    out = tok(TEXTS[1], truncation=True, max_length=6, stride=2, return_overflowing_tokens=True)
    assert out["input_ids"] == [tok.cls_token_id] + ids[:4] + [tok.sep_token_id]
    assert out["overflowing_tokens"] == ids[2:] and out["num_truncated_tokens"] == len(ids) - 4
    batch = tok([TEXTS[2], TEXTS[1]], truncation=True, max_length=6, stride=2, return_overflowing_tokens=True)
    assert batch["overflowing_tokens"] == [[], ids[2:]] and batch["num_truncated_tokens"] == [0, len(ids) - 4]
    with pytest.raises(ValueError, match="only_second"):
        tok(TEXTS[0], TEXTS[1], truncation="longest_first", max_length=6, return_overflowing_tokens=True)


def test_offsets_and_word_ids(uncased):
    tok = BertTokenizerFast.from_pretrained(uncased)
    text = "Tokenizers split words: un-believably!"
    out = tok(text, return_offsets_mapping=True)
    tokens = tok.convert_ids_to_tokens(out["input_ids"])
    for token, (start, end) in zip(tokens[1:-1], out["offset_mapping"][1:-1]):
        assert text[start:end].lower() == token.removeprefix("##")
    assert out["offset_mapping"][0] == (0, 0) and out["offset_mapping"][-1] == (0, 0)
    word_ids = out.word_ids()
    assert word_ids[0] is None and word_ids[-1] is None
    assert sorted(set(w for w in word_ids if w is not None)) == list(range(max(w for w in word_ids if w is not None) + 1))
    for side in ("right", "left"):  # per-token views line up with padded rows
        padded = BertTokenizerFast.from_pretrained(uncased, padding_side=side)([text, "a"], padding=True)
        assert len(padded.word_ids(1)) == len(padded["input_ids"][1]) == len(tokens)
        assert padded.word_ids(0) == word_ids
        assert padded.word_ids(1)[-1 if side == "right" else 0] is None
        assert padded.tokens(1).count("[PAD]") == len(tokens) - 3
    with pytest.raises(NotImplementedError, match="BertTokenizerFast"):
        BertTokenizer.from_pretrained(uncased)(text, return_offsets_mapping=True)
    with pytest.raises(ValueError, match="BertTokenizerFast"):
        BertTokenizer.from_pretrained(uncased)(text).word_ids()


@pytest.mark.parametrize("saver", CLASSES)
@pytest.mark.parametrize("loader", CLASSES)
def test_save_and_load_round_trip(saver, loader, trained_vocabs, tmp_path):
    tok = saver.from_pretrained(trained_vocabs["cased"])
    written = tok.save_pretrained(tmp_path / "saved")
    assert {p.rsplit("/", 1)[-1] for p in written} == {
        "vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}
    loaded = loader.from_pretrained(tmp_path / "saved")
    assert loaded.do_lower_case is False and loaded.vocab == tok.vocab
    assert dict(loaded(TEXTS, padding=True)) == dict(tok(TEXTS, padding=True))
    (path,) = loaded.save_vocabulary(str(tmp_path), filename_prefix="x")
    assert path.endswith("x-vocab.txt") and loader(path, do_lower_case=False).vocab == tok.vocab


def test_tokenizer_json_alone_is_enough(trained_vocabs, tmp_path):
    import shutil

    shutil.copy(trained_vocabs["cased"] / "tokenizer.json", tmp_path / "tokenizer.json")
    original = BertTokenizerFast.from_pretrained(trained_vocabs["cased"])
    for cls in CLASSES:
        tok = cls.from_pretrained(tmp_path)
        assert tok.do_lower_case is False and tok.vocab == original.vocab
        assert tok(TEXTS)["input_ids"] == original(TEXTS)["input_ids"]
