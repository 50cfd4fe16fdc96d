"""The BERT tokenization algorithm on hand-checked examples, for both classes."""

from __future__ import annotations

import pytest

from bert_jax.tokenization import BertTokenizer, BertTokenizerFast
from bert_jax.tokenization.wordpiece import (
    BasicTokenizer,
    WordpieceTokenizer,
    clean_text,
    is_control,
    is_punctuation,
    pad_cjk,
)

CLASSES = [BertTokenizer, BertTokenizerFast]


def test_basic_tokenizer_lowercases_strips_accents_and_splits_punctuation():
    basic = BasicTokenizer(do_lower_case=True)
    assert basic.tokenize(" \tHeLLo!how  \n Are yoU?  ") == ["hello", "!", "how", "are", "you", "?"]
    assert basic.tokenize("H\u00e9llo") == ["hello"]
    assert BasicTokenizer(do_lower_case=True, strip_accents=False).tokenize("H\u00e9llo") == ["h\u00e9llo"]
    assert BasicTokenizer(do_lower_case=False).tokenize("H\u00e9llo World") == ["H\u00e9llo", "World"]
    assert BasicTokenizer(do_lower_case=False, strip_accents=True).tokenize("H\u00e9llo") == ["Hello"]


def test_basic_tokenizer_splits_cjk_and_drops_controls():
    assert BasicTokenizer().tokenize("ah\u535a\u63a8zz") == ["ah", "\u535a", "\u63a8", "zz"]
    assert BasicTokenizer(tokenize_chinese_chars=False).tokenize("ah\u535a\u63a8zz") == ["ah\u535a\u63a8zz"]
    assert BasicTokenizer().tokenize("a\x00b\u200bc\x07d") == ["abcd"]
    assert BasicTokenizer(never_split=["[FOO]"]).tokenize("x [FOO] y") == ["x", "[FOO]", "y"]


def test_one_pass_cleaning_equals_the_reference_functions(hard_cases, corpus_lines):
    basic, no_cjk = BasicTokenizer(), BasicTokenizer(tokenize_chinese_chars=False)
    for text in hard_cases + corpus_lines[:500]:
        assert text.translate(basic._table) == pad_cjk(clean_text(text))
        assert text.translate(no_cjk._table) == clean_text(text)


def test_character_classes():
    assert is_control("\x07") and is_control("\u200b") and not is_control("\t") and not is_control("a")
    assert is_punctuation("$") and is_punctuation("`") and is_punctuation("\u3002") and not is_punctuation("a")


def test_wordpiece_greedy_longest_match():
    vocab = {tok: i for i, tok in enumerate(["[UNK]", "want", "##want", "##ed", "wa", "un", "runn", "##ing"])}
    wp = WordpieceTokenizer(vocab, "[UNK]", max_input_chars_per_word=10)
    assert wp.tokenize("unwanted running") == ["un", "##want", "##ed", "runn", "##ing"]
    assert wp.tokenize("unwantedX running") == ["[UNK]", "runn", "##ing"]  # no segmentation -> whole word
    assert wp.tokenize("wantwantwant") == ["[UNK]"]  # 12 chars > 10
    assert wp.tokenize("") == []


@pytest.mark.parametrize("cls", CLASSES)
def test_full_tokenizer(cls, tiny_vocab_file):
    tok = cls(str(tiny_vocab_file))
    assert tok.tokenize("UNwant\u00e9d,running") == ["un", "##want", "##ed", ",", "runn", "##ing"]
    assert tok.convert_tokens_to_ids(["un", "##want", "##ed", ",", "runn", "##ing"]) == [9, 6, 7, 12, 10, 11]
    assert tok.convert_tokens_to_ids("no-such-token") == tok.unk_token_id
    assert tok.tokenize("the [MASK] sat!") == ["the", "[MASK]", "sat", "!"]
    assert tok.tokenize("") == [] and tok.tokenize(" \n ") == []
    assert tok.tokenize("cats") == ["cat", "##s"]


@pytest.mark.parametrize("cls", CLASSES)
def test_special_token_attributes(cls, tiny_vocab_file):
    tok = cls.from_pretrained(str(tiny_vocab_file))  # a vocab.txt path works too
    assert (tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id) == (0, 1, 2, 3, 4)
    assert tok.all_special_tokens == ["[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"]
    assert sorted(tok.all_special_ids) == [0, 1, 2, 3, 4]
    assert tok.vocab_size == len(tok) == 20 and tok.vocab["cat"] == 16
    assert tok.convert_ids_to_tokens([16, 19]) == ["cat", "##s"] and tok.convert_ids_to_tokens(17) == "sat"


@pytest.mark.parametrize("cls", CLASSES)
def test_special_token_layout(cls, tiny_vocab_file):
    tok = cls(str(tiny_vocab_file))
    a, b = [15, 16], [17]
    assert tok.build_inputs_with_special_tokens(a) == [2, 15, 16, 3]
    assert tok.build_inputs_with_special_tokens(a, b) == [2, 15, 16, 3, 17, 3]
    assert tok.create_token_type_ids_from_sequences(a, b) == [0, 0, 0, 0, 1, 1]
    assert tok.get_special_tokens_mask(a) == [1, 0, 0, 1]
    assert tok.get_special_tokens_mask(a, b) == [1, 0, 0, 1, 0, 1]
    assert tok.get_special_tokens_mask([2, 15, 3, 17, 3], already_has_special_tokens=True) == [1, 0, 1, 0, 1]
    enc = tok("the cat", "sat", return_special_tokens_mask=True)
    assert enc["input_ids"] == [2, 15, 16, 3, 17, 3]
    assert enc["token_type_ids"] == [0, 0, 0, 0, 1, 1]
    assert enc["special_tokens_mask"] == [1, 0, 0, 1, 0, 1]
    assert tok("the cat", add_special_tokens=False)["input_ids"] == [15, 16]


@pytest.mark.parametrize("cls", CLASSES)
def test_decode(cls, tiny_vocab_file):
    tok = cls(str(tiny_vocab_file))
    ids = tok("the cats sat!")["input_ids"]
    assert tok.decode(ids) == "[CLS] the cats sat! [SEP]"
    assert tok.decode(ids, skip_special_tokens=True) == "the cats sat!"
    raw = tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    # As in transformers: the Rust WordPiece decoder already removes the space before "!".
    assert raw == ("the cats sat!" if cls.is_fast else "the cats sat !")
    assert tok.batch_decode([ids, ids[:2]], skip_special_tokens=True) == ["the cats sat!", "the"]


def test_never_split_is_honoured_by_both(tiny_vocab_file):
    # transformers' fast tokenizer ignores never_split; ours agree with the Python one.
    text = "the foo-bar Foo-Bar xfoo-bar cat"
    slow = BertTokenizer(str(tiny_vocab_file), never_split=["foo-bar"])
    fast = BertTokenizerFast(str(tiny_vocab_file), never_split=["foo-bar"])
    assert slow.tokenize(text)[:3] == ["the", "foo-bar", "foo-bar"]
    assert fast.tokenize(text) == slow.tokenize(text)
