"""Reading and checking WordPiece vocabularies (`vocab.txt`, `tokenizer.json`).

One token per line, the line number (from 0) is the id, exactly as Hugging Face
and the original BERT read it. Errors name the file and line and say how to fix.
"""

from __future__ import annotations

import json
import os
import shlex

from bert_jax.text_files import read_text_lines

# The special tokens every BERT vocabulary must contain (attribute -> default).
REQUIRED_SPECIAL_TOKENS = ("unk_token", "cls_token", "sep_token", "mask_token")
SPECIAL_TOKEN_ATTRS = ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
DEFAULT_SPECIAL_TOKENS = {
    "unk_token": "[UNK]",
    "sep_token": "[SEP]",
    "pad_token": "[PAD]",
    "cls_token": "[CLS]",
    "mask_token": "[MASK]",
}


def load_vocab(vocab_file: str) -> dict[str, int]:
    """`vocab.txt` -> `{token: id}` with id = line index (a repeated token keeps its last line)."""
    vocab: dict[str, int] = {}
    for line_number, token in read_text_lines(vocab_file, what="vocabulary file"):
        vocab[token] = line_number - 1
    if not vocab:
        raise ValueError(f"vocabulary file {vocab_file!r} is empty; expected one token per line.")
    _check_layout(vocab_file, list(vocab))
    return vocab


def _check_layout(vocab_file: str, tokens: list[str]) -> None:
    """Refuses files of another layout read as one token per line, where they would only fail
    later as "lacks the special token(s) [UNK] ... add them as lines" (they are there)."""
    first = tokens[0].strip()
    if first == "{" or first.startswith('{"'):
        raise ValueError(f"vocabulary file {vocab_file!r} is JSON (a tokenizer.json?), not a vocab.txt of one token "
                         "per line: pass the vocab.txt beside it (bert-jax tokenizer train and Hugging Face "
                         "tokenizers save both).")
    paired = sum(1 for t in tokens if len(t.split()) == 2 and t.split()[1].isdigit())
    if paired > 0.9 * len(tokens):
        cut = "cut -f1" if "\t" in tokens[0] else "cut -d' ' -f1"
        fixed = f"{vocab_file}.tokens.txt"  # not the file itself: the shell would empty it before cut reads it
        raise ValueError(f"vocabulary file {vocab_file!r} holds 'token id' pairs (line 1: {tokens[0]!r}); a vocab.txt "
                         f"holds the token alone, its id being its line number (from 0): if the ids are 0, 1, 2, ... "
                         f"in order, `{cut} {shlex.quote(vocab_file)} > {shlex.quote(fixed)}` writes one; pass "
                         f"{fixed} instead.")


def load_vocab_from_tokenizer_json(path: str) -> dict[str, int]:
    """The WordPiece vocabulary stored inside a Hugging Face `tokenizer.json`."""
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    model = data.get("model") or {}
    if model.get("type") != "WordPiece" or not isinstance(model.get("vocab"), dict):
        raise ValueError(f"{path!r} does not hold a WordPiece model (model.type={model.get('type')!r}).")
    return dict(model["vocab"])


def check_special_tokens(vocab: dict[str, int], special_tokens: dict[str, str], source: str) -> None:
    """Raises if a required special token (`[UNK] [CLS] [SEP] [MASK]`) is absent from `vocab`."""
    missing = [special_tokens[attr] for attr in REQUIRED_SPECIAL_TOKENS if special_tokens[attr] not in vocab]
    if missing:
        raise ValueError(
            f"vocabulary {source} lacks the special token(s) {', '.join(missing)}. BERT needs "
            "[UNK] [CLS] [SEP] [MASK] (and [PAD] to pad): add them as lines of the vocabulary "
            "(`bert-jax tokenizer train` puts [PAD] [UNK] [CLS] [SEP] [MASK] at ids 0-4), or, loading "
            "the tokenizer in Python, pass the names your vocabulary uses, e.g. "
            "BertTokenizerFast(vocab_file, cls_token='<s>')."
        )


def write_vocab(vocab: dict[str, int], path: str) -> None:
    """Writes `vocab` one token per line in id order, atomically (temp file + rename).

    Raises if the ids are not 0..N-1, since a gap would shift every later id.
    """
    tokens = sorted(vocab, key=vocab.__getitem__)
    for expected, token in enumerate(tokens):
        if vocab[token] != expected:
            raise ValueError(
                f"vocabulary ids are not consecutive: expected id {expected}, found {vocab[token]} "
                f"for {token!r}; cannot write it as a line-numbered vocab.txt."
            )
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
        for token in tokens:
            handle.write(token + "\n")
    os.replace(tmp, path)


def declared_lowercase(folder: str) -> bool | None:
    """The ``do_lower_case`` a tokenizer folder declares: its ``tokenizer_config.json``, else the
    normaliser of its ``tokenizer.json`` (a transformers 5 folder may hold only that); None when
    neither says (a bare ``vocab.txt``, an original TensorFlow release)."""
    try:
        with open(os.path.join(folder, "tokenizer_config.json"), encoding="utf-8") as f:
            value = json.load(f).get("do_lower_case")
        if isinstance(value, bool):
            return value
    except (OSError, ValueError, AttributeError):
        pass
    try:
        with open(os.path.join(folder, "tokenizer.json"), encoding="utf-8") as f:
            normalizer = json.load(f).get("normalizer") or {}
    except (OSError, ValueError, AttributeError):
        return None
    value = normalizer.get("lowercase") if normalizer.get("type") == "BertNormalizer" else None
    return value if isinstance(value, bool) else None
