"""The `tokenizers.Tokenizer` pipeline that implements BERT's algorithm in Rust.

Built the way Hugging Face builds it (BertNormalizer -> BertPreTokenizer ->
WordPiece -> `[CLS] A [SEP] B [SEP]` template -> WordPiece decoder), so a
`tokenizer.json` we write is read back identically by `transformers`.
"""

from __future__ import annotations

import json

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors


def build_backend(
    vocab: dict[str, int],
    special_tokens: dict[str, str],
    *,
    do_lower_case: bool = True,
    strip_accents: bool | None = None,
    tokenize_chinese_chars: bool = True,
    max_input_chars_per_word: int = 100,
) -> Tokenizer:
    """A ready-to-use backend for `vocab` (`{token: id}`) and the named special tokens."""
    unk = special_tokens["unk_token"]
    backend = Tokenizer(models.WordPiece(vocab, unk_token=unk, max_input_chars_per_word=max_input_chars_per_word))
    backend.normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=tokenize_chinese_chars,
        strip_accents=strip_accents,
        lowercase=do_lower_case,
    )
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece(prefix="##")
    cls, sep = special_tokens["cls_token"], special_tokens["sep_token"]
    backend.post_processor = processors.TemplateProcessing(
        single=f"{cls}:0 $A:0 {sep}:0",
        pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1",
        special_tokens=[(cls, vocab[cls]), (sep, vocab[sep])],
    )
    # Special tokens are matched in the raw text (normalized=False) and never
    # split, which is what both Hugging Face tokenizers do with "[MASK]" in text.
    present = [tok for tok in dict.fromkeys(special_tokens.values()) if tok in vocab]
    backend.add_special_tokens([AddedToken(tok, normalized=False, special=True) for tok in present])
    return backend


def read_normalizer_settings(tokenizer_json: str) -> dict:
    """`do_lower_case` / `strip_accents` / `tokenize_chinese_chars` stored in a `tokenizer.json`.

    Returns only the settings present, so an explicit `tokenizer_config.json`
    value or argument still wins over them.
    """
    with open(tokenizer_json, encoding="utf-8") as handle:
        normalizer = json.load(handle).get("normalizer") or {}
    if normalizer.get("type") != "BertNormalizer":
        return {}
    settings = {}
    for ours, theirs in (
        ("do_lower_case", "lowercase"),
        ("strip_accents", "strip_accents"),
        ("tokenize_chinese_chars", "handle_chinese_chars"),
    ):
        if theirs in normalizer:
            settings[ours] = normalizer[theirs]
    return settings
