"""Regenerate the bundled English corpus from Python's documentation sources.

The corpus under ``data/corpus/`` is prose from the Python 3.11 documentation
(Debian package ``python3.11-doc``, which ships the reStructuredText sources
under ``/usr/share/doc/python3.11/html/_sources``), licensed under the PSF
License Version 2 (see ``data/corpus/LICENSE``). This script strips markup and
code, splits paragraphs into sentences and writes the BERT pretraining format:
one sentence per line, a blank line between documents (one document per
section of a page).

    apt-get download python3.11-doc && dpkg -x python3.11-doc_*.deb /tmp/pydoc
    python scripts/make_corpus.py /tmp/pydoc/usr/share/doc/python3.11/html/_sources data/corpus
"""

from __future__ import annotations

import argparse
import pathlib
import re
import unicodedata

SECTIONS = ("tutorial", "howto", "faq", "library", "reference", "using",
            "whatsnew", "extending", "installing", "distributing")
_HEADING = re.compile(r"^([=\-~^\"'`#*+<>.:_])\1{3,}\s*$")
_ROLE = re.compile(r":[\w:.-]+:`(?:[^`<]*<)?~?!?([^`>]+)>?`")
_LINK = re.compile(r"`([^`<]+?)\s*<[^>]+>`_+")
_LITERAL = re.compile(r"``([^`]+)``")
_INTERP = re.compile(r"`([^`]+)`_*")
_EMPH = re.compile(r"(?<![\w*])\*{1,2}([^*\n]+?)\*{1,2}(?![\w*])")
_FOOT = re.compile(r"\s*\[[#*\d\w-]*\]_")
_SUBST = re.compile(r"\|[\w-]+\|_?")
_ABBREV = ("e.g.", "i.e.", "etc.", "vs.", "Mr.", "Dr.", "cf.", "approx.", "No.", "Ms.", "St.")
_SENT_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")


def split_sentences(paragraph: str) -> list[str]:
    """Splits a paragraph at sentence ends, not after common abbreviations."""
    out, start = [], 0
    for m in _SENT_END.finditer(paragraph):
        head = paragraph[start:m.start()].rstrip()
        last = head.rsplit(" ", 1)[-1]
        if last.endswith(_ABBREV) or re.fullmatch(r"[A-Z]\.|\d+\.", last):
            continue
        out.append(paragraph[start:m.end()].strip())
        start = m.end()
    out.append(paragraph[start:].strip())
    return [s for s in out if s]


def _clean_inline(text: str) -> str:
    text = _ROLE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _LITERAL.sub(r"\1", text)
    text = _INTERP.sub(r"\1", text)
    text = _EMPH.sub(r"\1", text)
    text = _FOOT.sub("", text)
    text = _SUBST.sub("", text)
    text = text.replace("\\", "")
    return re.sub(r"\s+", " ", text).strip()


def _is_prose(paragraph: str) -> bool:
    words = paragraph.split()
    if len(words) < 4 or not paragraph[0].isalpha() and paragraph[0] not in "\"'(":
        return False
    letters = sum(c.isalpha() or c.isspace() for c in paragraph)
    return letters / len(paragraph) > 0.8 and paragraph.rstrip()[-1] in ".!?:)\"'"


def documents(rst: str):
    """Yields documents (lists of sentences), one per section of a page."""
    lines = rst.splitlines()
    doc: list[str] = []
    para: list[str] = []
    skip_indent = None  # inside a directive/literal block: skip lines indented deeper

    def flush_para():
        if para:
            text = _clean_inline(" ".join(para))
            if text.endswith("::"):
                text = text[:-1]
            if _is_prose(text):
                doc.extend(split_sentences(text))
            para.clear()

    for i, line in enumerate(lines):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if skip_indent is not None:
            if not stripped or indent > skip_indent:
                continue
            skip_indent = None
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if _HEADING.match(nxt) and stripped and not _HEADING.match(line):
            flush_para()
            if len(doc) >= 2:
                yield list(doc)
            doc.clear()
            continue
        if _HEADING.match(line):
            continue
        if stripped.startswith(".."):
            flush_para()
            skip_indent = indent
            continue
        if not stripped:
            flush_para()
            continue
        if stripped.startswith((">>>", "...", "+", "|", "=")) or indent >= 3 and not para:
            # code, tables and block quotes are not prose
            flush_para()
            if indent >= 3:
                skip_indent = indent - 1
            continue
        para.append(stripped.lstrip("*-#. ") if stripped[:2] in ("* ", "- ", "#.") else stripped)
        if stripped.endswith("::"):
            flush_para()
            skip_indent = indent
    flush_para()
    if len(doc) >= 2:
        yield list(doc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sources", type=pathlib.Path)
    parser.add_argument("output", type=pathlib.Path)
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    for section in SECTIONS:
        files = sorted((args.sources / section).rglob("*.rst.txt"))
        if not files and (args.sources / f"{section}.rst.txt").exists():
            files = [args.sources / f"{section}.rst.txt"]
        docs = []
        for path in files:
            text = unicodedata.normalize("NFC", path.read_text(encoding="utf-8"))
            docs.extend(documents(text))
        out = args.output / f"{section}.txt"
        out.write_text("\n\n".join("\n".join(d) for d in docs) + "\n", encoding="utf-8")
        n_lines = sum(len(d) for d in docs)
        print(f"{out}: {len(docs)} documents, {n_lines} sentences")


if __name__ == "__main__":
    main()
