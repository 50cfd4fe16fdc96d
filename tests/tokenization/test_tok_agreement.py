"""`BertTokenizer` (Python) and `BertTokenizerFast` (Rust) agree with each
other on the corpus, with no reference installed.

Documented differences, both inherited from Hugging Face's two tokenizers:
the Python one NFC-normalises text first (so decomposed accents, e.g.
"e" + U+0301, in a cased vocabulary become the composed character), and
`longest_first` truncation of a pair whose
texts must both be cut by an odd total. Python leaves the extra token in the
first text, Rust in the second (as Hugging Face's two tokenizers do); the test
checks that every differing row is exactly such a tie.
"""

from __future__ import annotations

import unicodedata

import pytest

from bert_jax.tokenization import BertTokenizer, BertTokenizerFast

DEFAULT_LINES = 6000


def split_pair(row: list[int], sep_id: int) -> tuple[list[int], list[int]]:
    first_sep = row.index(sep_id)
    second_sep = row.index(sep_id, first_sep + 1)
    return row[1:first_sep], row[first_sep + 1:second_sep]


def check_agreement(vocab_dir, lines, hard_cases):
    slow = BertTokenizer.from_pretrained(vocab_dir)
    fast = BertTokenizerFast.from_pretrained(vocab_dir)
    # Python NFC-normalises, Rust does not: on NFC text they must agree, and
    # Python on any text equals Rust on its NFC form.
    for text in hard_cases:
        assert slow.tokenize(text) == fast.tokenize(unicodedata.normalize("NFC", text)), text
    texts = list(lines) + [unicodedata.normalize("NFC", t) for t in hard_cases]
    slow_tokens = [slow.tokenize(t) for t in texts]
    fast_tokens = [fast.tokenize(t) for t in texts]
    bad = [i for i, (a, b) in enumerate(zip(slow_tokens, fast_tokens)) if a != b]
    assert not bad, f"{len(bad)} texts tokenized differently, first {texts[bad[0]]!r:.200}"

    for kwargs in (dict(), dict(truncation=True, max_length=40, padding="max_length"),
                   dict(padding=True, return_special_tokens_mask=True)):
        assert dict(slow(texts, **kwargs)) == dict(fast(texts, **kwargs)), kwargs
    short = [t[:30] for t in texts[:-1]]
    kwargs = dict(truncation="only_second", max_length=40, padding=True)
    assert dict(slow(short, texts[1:], **kwargs)) == dict(fast(short, texts[1:], **kwargs))

    # longest_first pairs: identical except on documented ties.
    firsts, seconds = texts[:-1], texts[1:]
    max_length = 32  # odd budget of 29 tokens, so ties exist
    slow_rows = slow(firsts, seconds, truncation="longest_first", max_length=max_length)["input_ids"]
    fast_rows = fast(firsts, seconds, truncation="longest_first", max_length=max_length)["input_ids"]
    ties = 0
    for i, (a, b) in enumerate(zip(slow_rows, fast_rows)):
        if a == b:
            continue
        full_a, full_b = len(slow_tokens[i]), len(slow_tokens[i + 1])
        budget = max_length - 3
        slow_a, slow_b = split_pair(a, slow.sep_token_id)
        fast_a, fast_b = split_pair(b, fast.sep_token_id)
        # A tie: both texts cut to the same half-budget, an odd budget.
        assert budget % 2 == 1 and budget // 2 < full_a <= full_b, (i, firsts[i])
        assert (len(slow_a), len(slow_b)) == (budget // 2 + 1, budget // 2), i
        assert (len(fast_a), len(fast_b)) == (budget // 2, budget // 2 + 1), i
        assert slow_a[:-1] == fast_a and fast_b[:-1] == slow_b, i
        ties += 1
    assert ties > 0, "no tie in the sample: the tie-break check did not run"


@pytest.mark.parametrize("vocab", ["uncased", "cased"])
def test_python_and_fast_agree(vocab, trained_vocabs, corpus_lines, hard_cases):
    check_agreement(trained_vocabs[vocab], corpus_lines[:DEFAULT_LINES], hard_cases)


@pytest.mark.slow
@pytest.mark.parametrize("vocab", ["uncased", "cased"])
def test_python_and_fast_agree_full_corpus(vocab, trained_vocabs, corpus_lines, hard_cases):
    check_agreement(trained_vocabs[vocab], corpus_lines, hard_cases)
