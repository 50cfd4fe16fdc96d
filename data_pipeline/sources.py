"""Reading raw text into documents: input discovery, UTF-8 checks, NFC, sentence splitting.

A *document* is a list of sentences (``list[str]``) plus where it came from
(``"file:line"``) and its global index in the input stream. The global index
is stable across runs with the same inputs, so shard assignment and the NSP
audit (``source_document``) can refer to it.

Three input formats:

* ``bert``: one sentence per line, a blank line between documents (the
  original BERT format).
* ``lines``: one document per line; each line is split into sentences.
* ``paragraphs``: paragraphs separated by blank lines are documents; each is
  split into sentences.

and a ``datasets`` dataset (``hf:NAME`` or ``hf:/path/saved/with/save_to_disk``)
whose text column holds one document per row.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import logging
import os
import re
import unicodedata
from typing import Iterable, Iterator

from bert_jax.text_files import reencode_advice, utf8_sequences

logger = logging.getLogger(__name__)

INPUT_FORMATS = ("bert", "lines", "paragraphs")
TEXT_SUFFIXES = (".txt", ".text")


class InputError(ValueError):
    """Bad input (missing path, invalid UTF-8 in strict mode, no documents)."""


@dataclasses.dataclass
class Document:
    """One document: ``sentences`` in order, its global ``index`` and ``source`` ("file:line").

    ``lines``: each sentence's line in its file (``bert`` format text files, where a sentence is
    a line; skipped invalid lines make them other than ``first + i``), else None."""

    index: int
    source: str
    sentences: list[str]
    lines: list[int] | None = None


# --- sentence splitting --------------------------------------------------------

# Abbreviations after which a period does not end a sentence (lower-cased, no dot).
_ABBREVIATIONS = frozenset(
    "e.g i.e etc vs cf al mr mrs ms dr prof sr jr st no fig eq approx dept inc ltd co".split()
)
# Candidate boundary: terminal punctuation, optional closing quotes/brackets,
# whitespace, then something that can open a sentence.
_BOUNDARY = re.compile(r"([.!?])([\"')\]]*)\s+(?=[\"'(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences with a small offline rule set.

    A boundary is ``.``/``!``/``?`` (optionally followed by closing quotes or
    brackets), whitespace, then an upper-case letter, digit or opening quote.
    A period after a known abbreviation or a single letter (an initial) is
    not a boundary. Good enough for pretraining text; not a linguistic tool.
    """
    text = " ".join(text.split())
    if not text:
        return []
    sentences, start = [], 0
    for match in _BOUNDARY.finditer(text):
        if match.group(1) == ".":
            before = text[start : match.start()].rsplit(" ", 1)[-1].lower().rstrip(".")
            if before in _ABBREVIATIONS or (len(before) == 1 and before.isalpha()):
                continue
        sentences.append(text[start : match.end(2)].strip())
        start = match.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return [s for s in sentences if s]


# --- input discovery --------------------------------------------------------------


def expand_inputs(inputs: Iterable[str]) -> list[str]:
    """Expands files, directories (recursively, ``*.txt``) and globs into a sorted file list.

    ``hf:`` specs are passed through unchanged. Raises ``InputError`` naming any
    path that does not exist or a pattern that matches nothing.
    """
    files: list[str] = []
    for spec in inputs:
        if spec.startswith("hf:"):
            files.append(spec)
            continue
        if any(ch in spec for ch in "*?["):
            matches = sorted(p for p in glob.glob(spec, recursive=True) if os.path.isfile(p))
            if not matches:
                raise InputError(f"input pattern {spec!r} matches no files; check the path")
            files.extend(matches)
        elif os.path.isdir(spec):
            found = sorted(
                os.path.join(root, name)
                for root, _, names in os.walk(spec)
                for name in names
                if name.endswith(TEXT_SUFFIXES)
            )
            if not found:
                raise InputError(f"input directory {spec!r} holds no *.txt files")
            files.extend(found)
        elif os.path.isfile(spec):
            files.append(spec)
        else:
            raise InputError(f"input path {spec!r} does not exist; check the --input argument")
    return files


# --- binary detection and input fingerprints -----------------------------------------

# A text file has no NUL bytes (git's rule), and at most a small share of its
# characters are undecodable or control characters; one stray bad byte in a
# text corpus is common, a third of the block is not text.
_SNIFF_BYTES = 64 << 10
_MAX_NON_TEXT_SHARE = 0.10
_TEXT_CONTROLS = frozenset("\t\n\r\f\v\x1b")
# Another encoding, not stray bytes: at least this many invalid sequences, valid non-ASCII UTF-8
# characters fewer than a tenth of them, and more than 1% of the lines affected (fewer are skipped).
_MIN_BAD_SEQUENCES = 3
_MAX_VALID_SHARE_OF_INVALID = 10
_MAX_BAD_LINE_SHARE = 0.01
_WARN_SKIPPED_LINES = 3  # invalid lines named one by one per file; the rest are counted


def binary_reason(path: str, block: bytes | None = None) -> str | None:
    """Why ``path`` looks binary (judged on its first 64 KiB), or None if it looks like text.

    Args:
      path: the file (read only when ``block`` is None).
      block: its first bytes, when the caller has already read them.
    """
    if block is None:
        with open(path, "rb") as f:
            block = f.read(_SNIFF_BYTES)
    block = block[:_SNIFF_BYTES]
    nul = block.find(b"\0")
    if nul >= 0:
        return f"it holds a NUL byte at offset {nul}"
    # A multi-byte character cut at the end of the block is not an error.
    text = block.decode("utf-8", errors="replace")
    if len(block) == _SNIFF_BYTES:
        text = text[:-3]
    if not text:
        return None
    bad = sum(1 for ch in text if ch == "\ufffd" or (ch < " " and ch not in _TEXT_CONTROLS))
    if bad > _MAX_NON_TEXT_SHARE * len(text):
        return f"{100 * bad / len(text):.0f}% of its first {len(block)} bytes are not UTF-8 text"
    return None


def encoding_reason(block: bytes) -> str | None:
    """Why the text in ``block`` (a file's first bytes) is in a single-byte encoding (Latin-1,
    cp1252, ...) rather than UTF-8, or None.

    Judged on byte sequences (``bert_jax.text_files.utf8_sequences``, which also chooses a task
    file's advice): many invalid ones and next to no valid non-ASCII characters. A UTF-8 file
    with a few stray bytes passes (its lines are skipped one by one), and converting a file this
    refuses cannot garble valid UTF-8, since it holds almost none.
    """
    if len(block) >= _SNIFF_BYTES:
        block = block[: block.rfind(b"\n") + 1] or block[:-3]  # not mid-character
    valid, invalid = utf8_sequences(block)
    if invalid < _MIN_BAD_SEQUENCES:
        return None
    lines = [line for line in block.splitlines() if line.strip()]
    bad_lines = sum(1 for line in lines if not _is_utf8(line))
    if valid * _MAX_VALID_SHARE_OF_INVALID < invalid and bad_lines > _MAX_BAD_LINE_SHARE * len(lines):
        first = block[: block.find(b"\n", _first_invalid(block)) + 1 or None].count(b"\n") or 1
        return (f"{invalid} byte sequences in its first {len(block)} bytes are not UTF-8 and only {valid} are "
                f"(the first bad one on line {first})")
    return None


def _is_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _first_invalid(block: bytes) -> int:
    try:
        block.decode("utf-8")
    except UnicodeDecodeError as err:
        return err.start
    return 0


def check_text_file(path: str, what: str = "input file") -> None:
    """Raises ``InputError`` naming ``path`` if it looks binary (``binary_reason``) or is in
    another encoding than UTF-8 (``encoding_reason``)."""
    with open(path, "rb") as f:
        _refuse_non_text(path, f.read(_SNIFF_BYTES), what)


def _refuse_non_text(path: str, block: bytes, what: str = "input file") -> None:
    """``InputError`` naming ``path`` if ``block`` (its first bytes) is binary or not UTF-8."""
    reason = binary_reason(path, block)
    if reason:
        raise InputError(
            f"{what} {path} looks binary, not text ({reason}); remove it from the inputs "
            "(bert-jax reads UTF-8 text files)"
        )
    reason = encoding_reason(block)
    if reason:
        raise InputError(f"{what} {path} is not UTF-8 ({reason}). {reencode_advice(path, what)}")


def fingerprint_inputs(files: list[str]) -> list[dict]:
    """What identifies each input: ``path``, ``size``, ``mtime_ns`` and the ``sha256`` of its bytes.

    Text files are also checked for binary content (``InputError`` naming the
    file). Hashing reads every input once more before the build reads it; it
    is cheap next to the build (see benchmarks/reliability_overhead.py).
    ``hf:`` datasets from the hub are recorded by name only; a ``save_to_disk``
    directory gets an entry per file in it.
    """
    out = []
    for spec in files:
        if spec.startswith("hf:"):
            local = os.path.expanduser(spec[3:]) if spec[3:].startswith("~") else spec[3:]
            _check_dataset_spec(local)
            if not os.path.isdir(local):
                out.append({"path": spec, "note": "hub dataset: recorded by name only"})
                continue
            paths = sorted(os.path.join(root, n) for root, _, names in os.walk(local) for n in names)
        else:
            paths = [spec]
        for path in paths:
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                first = f.read(_SNIFF_BYTES)
                if not spec.startswith("hf:"):
                    _refuse_non_text(path, first)
                digest.update(first)
                for block in iter(lambda: f.read(1 << 22), b""):
                    digest.update(block)
                st = os.fstat(f.fileno())
            out.append({"path": path, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest.hexdigest()})
    return out


def changed_inputs(recorded: list[dict], current: list[dict]) -> list[str]:
    """Human-readable differences between two fingerprints (empty if the inputs are the same).

    Files are the same when their path, size and content hash agree; a new
    modification time alone (a ``touch``, a fresh checkout) is not a change.
    """
    old = {e["path"]: e for e in recorded}
    new = {e["path"]: e for e in current}
    changes = [f"{p} is no longer an input" for p in old if p not in new]
    changes += [f"{p} is a new input" for p in new if p not in old]
    for path in (p for p in new if p in old):
        a, b = old[path], new[path]
        if a.get("size") != b.get("size"):
            changes.append(f"{path} changed size ({a.get('size')} -> {b.get('size')} bytes)")
        elif a.get("sha256") != b.get("sha256"):
            changes.append(f"{path} changed content (same size, sha256 {str(a.get('sha256'))[:12]} -> {str(b.get('sha256'))[:12]})")
    return changes


# --- reading -------------------------------------------------------------------------


def _decoded_lines(path: str, on_invalid_utf8: str) -> Iterator[tuple[int, str]]:
    """Yields ``(line_number, NFC text)``; invalid UTF-8 lines are skipped with a warning (the
    first few by line, then one count per file) or fatal."""
    skipped = 0
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                msg = (
                    f"{path}:{lineno}: invalid UTF-8 at byte {err.start} of the line "
                    f"({raw[max(0, err.start - 10) : err.start + 10]!r})"
                )
                if on_invalid_utf8 == "error":
                    raise InputError(msg + "; fix the file or pass --on-invalid-utf8 skip") from None
                skipped += 1
                if skipped <= _WARN_SKIPPED_LINES:
                    logger.warning("%s; line skipped", msg)
                continue
            yield lineno, unicodedata.normalize("NFC", line.rstrip("\r\n"))
    if skipped > _WARN_SKIPPED_LINES:
        logger.warning("%s: %d lines of invalid UTF-8 skipped in all (the first %d named above)",
                       path, skipped, _WARN_SKIPPED_LINES)


def _read_text_file(path: str, input_format: str,
                    on_invalid_utf8: str) -> Iterator[tuple[str, list[str], list[int] | None]]:
    """Yields ``(source, sentences, lines)`` for each document of one text file (``lines``: as
    ``Document.lines``)."""
    if os.path.getsize(path) == 0:
        logger.warning("%s: empty file; skipped", path)
        return
    check_text_file(path)
    if input_format == "lines":
        for lineno, line in _decoded_lines(path, on_invalid_utf8):
            sentences = split_sentences(line)
            if sentences:
                yield f"{path}:{lineno}", sentences, None
        return
    block: list[str] = []
    block_lines: list[int] = []
    for lineno, line in _decoded_lines(path, on_invalid_utf8):
        line = line.strip()
        if line:
            block.append(line)
            block_lines.append(lineno)
            continue
        if block:
            yield _text_document(path, block, block_lines, input_format)
            block, block_lines = [], []
    if block:
        yield _text_document(path, block, block_lines, input_format)


def _text_document(path: str, block: list[str], lines: list[int],
                   input_format: str) -> tuple[str, list[str], list[int] | None]:
    source = f"{path}:{lines[0]}"
    if input_format == "bert":
        return source, block, lines
    return source, split_sentences(" ".join(block)), None


def _saved_dataset(path: str) -> bool:
    return os.path.isdir(path) and any(os.path.exists(os.path.join(path, n)) for n in ("state.json", "dataset_dict.json"))


def _check_dataset_spec(name: str) -> None:
    """Refuse, before anything is read or written, an ``hf:`` input written as a local path (``/``,
    ``./``, ``../``, ``~``) that does not exist: it was sent to the Hub as a dataset name, which
    retried the network and ended in a traceback. (An existing folder is passed on: a saved
    dataset, or data files ``datasets.load_dataset`` reads.)"""
    if name.startswith(("/", "./", "../", "~")) and not os.path.exists(os.path.expanduser(name)):
        raise InputError(f"--input hf:{name}: {name} does not exist; pass the folder `Dataset.save_to_disk` wrote "
                         "(or a folder of data files), or a Hugging Face Hub dataset name (e.g. hf:wikitext) on a "
                         "machine with network.")


def _read_dataset(spec: str, text_column: str, split: str) -> Iterator[tuple[str, list[str]]]:
    """Yields documents from a ``datasets`` dataset: ``hf:NAME`` or ``hf:PATH`` (``save_to_disk``)."""
    import datasets  # imported here: slow, and only needed for this input kind

    name = os.path.expanduser(spec[3:]) if spec[3:].startswith("~") else spec[3:]
    _check_dataset_spec(name)
    if os.path.isdir(name) and os.path.exists(os.path.join(name, "state.json")):
        ds = datasets.load_from_disk(name)
    elif os.path.isdir(name) and os.path.exists(os.path.join(name, "dataset_dict.json")):
        ds = datasets.load_from_disk(name)[split]
    else:
        try:
            ds = datasets.load_dataset(name, split=split)
        except (ConnectionError, OSError, ValueError) as e:  # offline, no such dataset or split
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise InputError(f"--input hf:{name}: the dataset could not be loaded ({first}). Check the name, "
                             f"--dataset-split (now {split!r}) and the network, or pass a local folder saved "
                             "with save_to_disk as hf:/path/to/it.") from None
    if text_column not in ds.column_names:
        raise InputError(
            f"dataset {name!r} has no column {text_column!r} (columns: {ds.column_names}); "
            "pass --text-column"
        )
    for row, text in enumerate(ds[text_column]):
        sentences = split_sentences(unicodedata.normalize("NFC", text or ""))
        if sentences:
            yield f"{name}:{row}", sentences


def iter_documents(
    inputs: Iterable[str],
    input_format: str = "bert",
    *,
    on_invalid_utf8: str = "skip",
    text_column: str = "text",
    dataset_split: str = "train",
) -> Iterator[Document]:
    """Streams every document of ``inputs`` in a fixed order, numbering them from 0.

    Args:
      inputs: files, directories, globs, or ``hf:`` dataset specs.
      input_format: one of ``INPUT_FORMATS`` (text files only).
      on_invalid_utf8: ``"skip"`` (warn with file and line) or ``"error"``.
      text_column, dataset_split: for ``hf:`` inputs.
    """
    if input_format not in INPUT_FORMATS:
        raise InputError(f"unknown input format {input_format!r}; choose one of {INPUT_FORMATS}")
    if on_invalid_utf8 not in ("skip", "error"):
        raise InputError(f"on_invalid_utf8 must be 'skip' or 'error', not {on_invalid_utf8!r}")
    index = 0
    for path in expand_inputs(inputs):
        if path.startswith("hf:"):
            docs = ((source, sentences, None) for source, sentences in _read_dataset(path, text_column, dataset_split))
        else:
            docs = _read_text_file(path, input_format, on_invalid_utf8)
        for source, sentences, lines in docs:
            yield Document(index, source, sentences, lines)
            index += 1
