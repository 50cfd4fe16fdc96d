"""BERT's tokenization algorithm in pure Python (no dependencies).

Two stages, as in the original BERT release:
  1. basic tokenization: clean the text (drop control characters, map all
     whitespace to spaces), surround CJK ideographs with spaces, NFC-normalise,
     split on whitespace, lower-case and strip accents (per options), and split
     off every punctuation character;
  2. WordPiece: greedy longest-match-first into vocabulary pieces, `##` marking
     a piece that continues a word; a word with no segmentation, or longer than
     `max_input_chars_per_word` characters, becomes the unknown token.
"""

from __future__ import annotations

import unicodedata

# CJK Unified Ideographs blocks (BMP and supplementary planes). Hangul, kana
# and other scripts are space-separated already, so they are not listed.
_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)


def is_whitespace(char: str) -> bool:
    """Space, tab, newline, carriage return, or any Unicode space separator (Zs)."""
    return char in " \t\n\r" or unicodedata.category(char) == "Zs"


def is_control(char: str) -> bool:
    """Any "other" character (Cc, Cf, Cn, Co, Cs) except tab/newline/CR (those are whitespace)."""
    if char in "\t\n\r":
        return False
    return unicodedata.category(char).startswith("C")


def is_punctuation(char: str) -> bool:
    """Unicode punctuation (P*) plus all non-alphanumeric ASCII ("$", "+", "^", "`", ...)."""
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def is_cjk(cp: int) -> bool:
    return any(low <= cp <= high for low, high in _CJK_RANGES)


def clean_text(text: str) -> str:
    """Drops NUL, U+FFFD and control characters; maps whitespace to " "."""
    out = []
    for char in text:
        cp = ord(char)
        if cp == 0 or cp == 0xFFFD or is_control(char):
            continue
        out.append(" " if is_whitespace(char) else char)
    return "".join(out)


def pad_cjk(text: str) -> str:
    """Surrounds each CJK ideograph with spaces so it becomes its own word."""
    return "".join(f" {c} " if is_cjk(ord(c)) else c for c in text)


def strip_accents(text: str) -> str:
    """NFD then drop combining marks (Mn): "Crème" -> "Creme"."""
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def split_on_punctuation(word: str) -> list[str]:
    """ "don't!" -> ["don", "'", "t", "!"]: each punctuation char is its own piece."""
    pieces: list[str] = []
    start_new = True
    for char in word:
        if is_punctuation(char):
            pieces.append(char)
            start_new = True
        else:
            if start_new:
                pieces.append("")
                start_new = False
            pieces[-1] += char
    return pieces


class _CharTable(dict):
    """`str.translate` table built lazily: code point -> "" (drop), " ", " c " or c.

    Applies `clean_text` and (optionally) `pad_cjk` in one C-level pass; each
    distinct character is classified once.
    """

    def __init__(self, split_cjk: bool):
        super().__init__()
        self.split_cjk = split_cjk

    def __missing__(self, cp: int) -> str:
        char = chr(cp)
        if cp == 0 or cp == 0xFFFD or is_control(char):
            out = ""
        elif is_whitespace(char):
            out = " "
        elif self.split_cjk and is_cjk(cp):
            out = f" {char} "
        else:
            out = char
        self[cp] = out
        return out


class BasicTokenizer:
    """Stage 1: text -> words and punctuation (see module docstring).

    Args:
      do_lower_case: lower-case words.
      strip_accents: None follows `do_lower_case`; True/False force it.
      tokenize_chinese_chars: split CJK ideographs into single-character words.
      never_split: words passed through untouched (no lower-casing or splitting).
    """

    def __init__(self, do_lower_case=True, strip_accents=None, tokenize_chinese_chars=True, never_split=()):
        self.do_lower_case = do_lower_case
        self.strip_accents = strip_accents
        self.tokenize_chinese_chars = tokenize_chinese_chars
        self.never_split = frozenset(never_split or ())
        self._table = _CharTable(tokenize_chinese_chars)

    def split_words(self, text: str) -> list[str]:
        """Cleans the text, isolates CJK ideographs, NFC-normalises, splits on whitespace."""
        text = text.translate(self._table)  # == pad_cjk(clean_text(text)) when splitting CJK
        # One code point sequence per character, so "é" composed and decomposed agree.
        if not text.isascii():
            text = unicodedata.normalize("NFC", text)
        return text.split()

    def process_word(self, word: str) -> list[str]:
        """One whitespace-free word -> lower-cased / accent-stripped pieces split at punctuation."""
        if word in self.never_split:
            return [word]
        if self.do_lower_case:
            word = word.lower()
            if self.strip_accents is not False and not word.isascii():
                word = strip_accents(word)
        elif self.strip_accents and not word.isascii():
            word = strip_accents(word)
        if word in self.never_split:  # the lower-cased form may be protected
            return [word]
        # Lower-casing or accent stripping can produce whitespace or empty pieces.
        return [p for piece in split_on_punctuation(word) for p in piece.split()]

    def tokenize(self, text: str) -> list[str]:
        return [piece for word in self.split_words(text) for piece in self.process_word(word)]


class WordpieceTokenizer:
    """Stage 2: word -> WordPiece tokens, greedy longest match first."""

    def __init__(self, vocab: dict[str, int], unk_token: str, max_input_chars_per_word: int = 100):
        self.vocab = vocab
        self.unk_token = unk_token
        self.max_input_chars_per_word = max_input_chars_per_word

    def tokenize_word(self, word: str) -> list[str]:
        if len(word) > self.max_input_chars_per_word:
            return [self.unk_token]
        pieces: list[str] = []
        start = 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    break
                end -= 1
            else:
                return [self.unk_token]  # no piece fits: the whole word is unknown
            pieces.append(piece)
            start = end
        return pieces

    def tokenize(self, text: str) -> list[str]:
        return [piece for word in text.split() for piece in self.tokenize_word(word)]
