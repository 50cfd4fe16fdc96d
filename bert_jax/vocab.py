"""WordPiece vocabulary training: `bert-jax tokenizer train` and `train_wordpiece`.

Trains with the `tokenizers` WordPiece trainer on text normalised exactly as
the BERT tokenizer will see it (BertNormalizer + BertPreTokenizer), so every
word of the corpus is segmentable. Input files are streamed line by line:
memory holds the word counts, not the corpus.

The same files give the same `vocab.txt`, byte for byte. The `tokenizers` trainer alone does
not: it numbers the continuation characters (`##e`, ...) in hash-map order, and those ids
break ties between equally frequent merges, so both the order and, at larger sizes, the set of
tokens changed from run to run (huggingface/tokenizers#1794). Training therefore reads the
corpus twice: a first pass with no merges finds the continuation characters, and the second
pass starts with them at fixed, sorted ids (right after the special tokens).

Special tokens sit at fixed ids in every trained vocabulary:

    [PAD] = 0, [UNK] = 1, [CLS] = 2, [SEP] = 3, [MASK] = 4

(bert-base-uncased instead has [PAD]=0, [UNK]=100, [CLS]=101, [SEP]=102,
[MASK]=103 after 99 [unused] slots; code must read ids from the tokenizer,
never hard-code them.) The output directory gets `vocab.txt`, `tokenizer.json`,
`tokenizer_config.json` and `special_tokens_map.json`, which
`BertTokenizer(Fast).from_pretrained` and `transformers` both load.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence

from bert_jax.text_files import read_text_lines

logger = logging.getLogger(__name__)

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# What `tokenizer train` writes, tokenizer_config.json last, so a directory holding it is complete.
_FILES = ("vocab.txt", "tokenizer.json", "special_tokens_map.json", "tokenizer_config.json")
# Every file a model directory's tokenizer loads from (other tools also write added_tokens.json).
TOKENIZER_FILES = (*_FILES, "added_tokens.json")


def iter_corpus_lines(files: Sequence[str], progress: bool = True, counts: dict | None = None,
                      desc: str = "reading corpus") -> Iterator[str]:
    """Yields the non-blank lines of `files` in order, streaming.

    Shows a byte-based progress bar (rate, ETA) over all files; invalid UTF-8
    raises naming file and line. `counts`, if given, receives each file's
    number of non-blank lines.
    """
    from bert_jax.console import progress_bar

    total = sum(os.path.getsize(f) for f in files)
    with progress_bar(total=total, unit="B", unit_scale=True, desc=desc, disable=not progress,
                      mininterval=0.5) as bar:
        for path in files:
            n = 0
            for _, line in read_text_lines(path, what="corpus file"):
                bar.update(len(line.encode("utf-8")) + 1)
                if line.strip():
                    n += 1
                    yield line
            if counts is not None:
                counts[path] = n


def _check_output_dir(output_dir: str, overwrite: bool) -> None:
    """Refuses a non-empty output directory unless `overwrite` (which replaces only the tokenizer files)."""
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise FileExistsError(f"--output {output_dir} is a file; pass a directory path.")
    parent = os.path.dirname(os.path.abspath(output_dir))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise FileExistsError(f"--output {output_dir}: {parent} is a file, so no folder can be made under it; "
                              "pass another path.")
    if overwrite or not os.path.isdir(output_dir):
        return
    # Staging directories of an interrupted run are ours and harmless.
    present = sorted(n for n in os.listdir(output_dir) if not n.startswith(".vocab-"))
    if present:
        shown = ", ".join(present[:5]) + (f" and {len(present) - 5} more" if len(present) > 5 else "")
        raise FileExistsError(
            f"output directory {output_dir} is not empty (it holds {shown}); choose an empty or new "
            f"directory, or pass --overwrite to replace the tokenizer files in it ({', '.join(_FILES)}; "
            "other files are kept).")


def _check_corpus_files(files: Sequence[str]) -> None:
    """Refuses binary files (NUL bytes, mostly undecodable), naming them, before any training."""
    from data_pipeline.sources import binary_reason

    for path in files:
        reason = binary_reason(path)
        if reason:
            raise ValueError(f"corpus file {path} looks binary, not text ({reason}); pass UTF-8 text files.")


def trainer_pass(files: Sequence[str], vocab_size: int, leading: Sequence[str], *, lowercase: bool = True,
                 strip_accents: bool | None = None, tokenize_chinese_chars: bool = True, min_frequency: int = 2,
                 limit_alphabet: int = 1000, progress: bool = False, counts: dict | None = None,
                 desc: str = "reading corpus") -> dict[str, int]:
    """One pass of the `tokenizers` WordPiece trainer over `files`: ``{token: id}``, with
    `leading` at ids 0..len-1 in that order (alone, ids of the rest follow hash order; see above)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=tokenize_chinese_chars, strip_accents=strip_accents, lowercase=lowercase)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(leading),
        limit_alphabet=limit_alphabet,
        continuing_subword_prefix="##",
        # The library's own bars (word counting, then merges) write blank lines to stdout when it is
        # not a terminal, and repeat the reading bar above; its merge bar is the one worth showing,
        # where it can draw.
        show_progress=progress and vocab_size > len(leading) and sys.stderr.isatty(),
    )
    backend.train_from_iterator(iter_corpus_lines(files, progress, counts, desc=desc), trainer=trainer)
    return backend.get_vocab()


def train_wordpiece(
    files: Sequence[str],
    vocab_size: int,
    lowercase: bool = True,
    output_dir: str | os.PathLike = "vocab",
    *,
    strip_accents: bool | None = None,
    tokenize_chinese_chars: bool = True,
    min_frequency: int = 2,
    limit_alphabet: int = 1000,
    model_max_length: int = 512,
    progress: bool = True,
    overwrite: bool = False,
):
    """Trains a BERT WordPiece vocabulary and writes it to `output_dir`.

    Args:
      files: UTF-8 text files (any line layout; blank lines are skipped).
      vocab_size: size of the vocabulary, special tokens included.
      lowercase: uncased (True) or cased (False) vocabulary.
      output_dir: directory to write; created if missing.
      strip_accents: None follows `lowercase`, as original BERT.
      tokenize_chinese_chars: split CJK ideographs into single characters.
      min_frequency: minimum count for a merge to be learnt.
      limit_alphabet: most distinct characters kept in the initial alphabet.
      model_max_length: stored in tokenizer_config.json.
      progress: show progress bars on stderr.
      overwrite: allow a non-empty `output_dir` (only the tokenizer files in it are replaced).

    Raises:
      FileExistsError: `output_dir` is not empty and `overwrite` is False.
      ValueError: no files, a binary file, no usable text, or a vocabulary too small.

    Returns:
      A `BertTokenizerFast` loaded from `output_dir`.
    """
    from bert_jax.tokenization import BertTokenizerFast

    files = [os.fspath(f) for f in files]
    if not files:
        raise ValueError("no input files: pass at least one text file (--input FILE...).")
    for path in files:
        if os.path.isdir(path):
            raise IsADirectoryError(f"corpus file {path!r} is a directory; pass the text files in it "
                                    f"(`bert-jax tokenizer train --input {path}` takes the .txt files under it).")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"corpus file not found: {path!r}.")
    if vocab_size <= len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size={vocab_size} leaves no room next to the {len(SPECIAL_TOKENS)} special tokens.")
    if min_frequency < 0:  # the trainer took it as unsigned: an OverflowError traceback
        raise ValueError(f"min_frequency={min_frequency} (--min-frequency) must be 0 or more: the count a merge "
                         "needs to be learnt (default 2).")
    if limit_alphabet < 1:  # 0 kept no character, reported as a corpus without words
        raise ValueError(f"limit_alphabet={limit_alphabet} (--limit-alphabet) must be 1 or more: the number of "
                         "distinct characters kept in the initial alphabet (default 1000).")
    output_dir = os.fspath(output_dir)
    _check_output_dir(output_dir, overwrite)
    _check_corpus_files(files)

    logger.info("training a %s WordPiece vocabulary of %d on %d file(s)", "lower-cased" if lowercase else "cased",
                vocab_size, len(files))
    counts: dict[str, int] = {}
    # Pass 1 (no merges): the alphabet and the continuation characters; see the module docstring.
    settings = dict(lowercase=lowercase, strip_accents=strip_accents, tokenize_chinese_chars=tokenize_chinese_chars,
                    min_frequency=min_frequency, limit_alphabet=limit_alphabet, progress=progress, counts=counts)
    first = trainer_pass(files, len(SPECIAL_TOKENS), SPECIAL_TOKENS, desc="reading corpus (1/2: characters)",
                         **settings)
    continuations = sorted(t for t in first if t.startswith("##") and len(t) == 3)
    vocab = trainer_pass(files, vocab_size, SPECIAL_TOKENS + tuple(continuations),
                         desc="reading corpus (2/2: merges)", **settings)
    if not any(counts.values()):
        raise ValueError(f"no usable text in {', '.join(files)}: the file(s) are empty or hold only blank "
                         "lines; pass UTF-8 text files.")
    for path in files:
        if not counts.get(path):
            logger.warning("%s: empty or only blank lines; it adds nothing to the vocabulary", path)
    if len(vocab) <= len(SPECIAL_TOKENS):
        raise ValueError(f"no usable text in {', '.join(files)}: after normalisation (control characters "
                         "dropped) no word is left to learn from; pass UTF-8 text files.")
    for expected_id, token in enumerate(SPECIAL_TOKENS):
        if vocab.get(token) != expected_id:  # a trainer change would silently move them
            raise RuntimeError(f"trainer placed {token} at id {vocab.get(token)}, expected {expected_id}.")
    if len(vocab) > vocab_size:  # the trainer keeps every character of the alphabet, whatever the size
        logger.warning("the vocabulary has %d tokens, not %d: the trainer keeps every character of the corpus "
                       "and its ## form (%d here) whatever the size; pass --vocab-size above %d for merges to be "
                       "learnt", len(vocab), vocab_size, len(vocab) - len(SPECIAL_TOKENS), len(vocab))

    tokenizer = BertTokenizerFast(
        vocab=vocab, do_lower_case=lowercase, strip_accents=strip_accents,
        tokenize_chinese_chars=tokenize_chinese_chars, model_max_length=model_max_length,
    )
    os.makedirs(output_dir, exist_ok=True)
    # Write everything next to the target, then move file by file with
    # tokenizer_config.json last: an interrupted run never looks complete.
    staging = tempfile.mkdtemp(prefix=".vocab-", dir=output_dir)
    try:
        tokenizer.save_pretrained(staging)
        for name in _FILES:
            os.replace(os.path.join(staging, name), os.path.join(output_dir, name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.debug("wrote %d-token vocabulary to %s", len(vocab), output_dir)  # the CLI prints it
    return BertTokenizerFast.from_pretrained(output_dir)


def main(argv: list[str]) -> int:
    """`bert-jax tokenizer train --input FILES... --vocab-size N --lowercase|--cased --output DIR`."""
    parser = argparse.ArgumentParser(prog="bert-jax tokenizer", description="Train a BERT WordPiece vocabulary.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a WordPiece vocabulary on text files",
                                description="\n\n".join(__doc__.split("\n\n")[2:6]), formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("--input", nargs="+", required=True, metavar="PATH",
                       help="UTF-8 text files, directories (their .txt / .text files, recursively) or globs")
    train.add_argument("--vocab-size", type=int, required=True, metavar="N", help="vocabulary size (specials included)")
    case = train.add_mutually_exclusive_group()
    case.add_argument("--lowercase", dest="lowercase", action="store_true", default=True, help="uncased (default)")
    case.add_argument("--cased", dest="lowercase", action="store_false", help="keep case and accents")
    train.add_argument("--output", required=True, metavar="DIR", help="output directory")
    train.add_argument("--min-frequency", type=int, default=2, help="minimum merge count (default 2)")
    train.add_argument("--limit-alphabet", type=int, default=1000, help="max initial characters (default 1000)")
    train.add_argument("--no-chinese-chars", dest="tokenize_chinese_chars", action="store_false",
                       help="do not split CJK ideographs into single characters")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.add_argument("--overwrite", action="store_true",
                       help="write into a non-empty --output (replaces the tokenizer files, keeps others)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        from data_pipeline.sources import expand_inputs  # files, directories (*.txt under them), globs
        if any(spec.startswith("hf:") for spec in args.input):
            raise ValueError("--input takes text files, directories or globs; hub datasets (hf:...) are for "
                             "bert-jax data build only: save the text to files first.")
        tokenizer = train_wordpiece(
            expand_inputs(args.input), args.vocab_size, lowercase=args.lowercase, output_dir=args.output,
            min_frequency=args.min_frequency, limit_alphabet=args.limit_alphabet,
            tokenize_chinese_chars=args.tokenize_chinese_chars, progress=not args.quiet, overwrite=args.overwrite,
        )
    except (OSError, ValueError) as error:
        print(f"bert-jax tokenizer train: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {tokenizer.vocab_size}-token vocabulary to {args.output} "
          f"([PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4)")
    return 0
