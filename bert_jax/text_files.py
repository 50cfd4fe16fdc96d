"""Text files read as UTF-8, with errors that name the file and line and say how to re-encode.

A vocabulary, corpus or task file saved in another encoding (Latin-1 from an old editor or export)
was reported as "'utf-8' codec can't decode byte 0xe9 in position 984", naming neither the file
nor the line nor what to do. Nothing here imports more than the standard library, so every reader
(tokenizers, the data pipeline, task data) can share it.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator

_BOM = b"\xef\xbb\xbf"


def reencode_advice(path: str, what: str = "file") -> str:
    """How to make ``path`` UTF-8 in place (a converted copy beside it would be read as well by a
    directory or glob input); the command names the file in full, so it works from any directory."""
    name, tmp = shlex.quote(path), shlex.quote(f"{path}.tmp")
    return (f"Re-encode the {what} as UTF-8 in place, e.g. `iconv -f latin1 -t utf-8 {name} > {tmp} && "
            f"mv {tmp} {name}` (latin1 for Latin-1 text; `file -i {name}` guesses the encoding).")


def _invalid(path: str, line: int, byte: int, column: int, what: str) -> ValueError:
    with open(path, "rb") as handle:  # the error path only
        right, wrong = utf8_sequences(handle.read())
    if right > wrong:  # mostly UTF-8: re-encoding the whole file from Latin-1 would garble every right character
        name, tmp = shlex.quote(path), shlex.quote(f"{path}.tmp")
        advice = (f"The rest of the {what} is UTF-8 ({right} accented or other non-ASCII characters read as "
                  f"UTF-8, {wrong} byte sequence(s) do not), so re-encoding it all would garble those: fix the "
                  f"line(s) by hand, or drop the bytes that are not UTF-8 with `iconv -f utf-8 -t utf-8 -c {name} > "
                  f"{tmp} && mv {tmp} {name}`.")
    else:
        advice = reencode_advice(path, what)
    return ValueError(f"{path}:{line}: invalid UTF-8 (byte {byte:#04x} at column {column}). {advice}")


def utf8_sequences(data: bytes) -> tuple[int, int]:
    """``(valid non-ASCII UTF-8 characters, invalid byte sequences)`` in ``data``.

    How much of a file's non-ASCII text is UTF-8 decides what to do about the rest: here, which
    advice a bad line gets (more valid characters than invalid sequences: drop the bad bytes,
    keep the rest; else re-encode the whole file); in ``data_pipeline.sources.encoding_reason``,
    whether a corpus file is refused as being in another encoding (next to no valid characters)
    or has its bad lines skipped. Counted by character, not by line: a UTF-8 line with one stray
    cp1252 quote is mostly valid text, which re-encoding it from Latin-1 would garble.
    """
    replaced = data.decode("utf-8", errors="replace")
    # a U+FFFD written in the text itself is in both decodings: only the replacements count
    invalid = replaced.count("\ufffd") - data.decode("utf-8", errors="ignore").count("\ufffd")
    valid = sum(1 for ch in replaced if ch >= "\x80" and ch != "\ufffd")
    return valid, invalid


def read_text_lines(path: str, what: str = "file") -> Iterator[tuple[int, str]]:
    """Yields ``(line_number, line)`` (from 1, without the line ending) of a UTF-8 file, streaming.

    Lines end at ``\\n``; a ``\\r`` before it is dropped (CRLF files read as LF ones).

    Raises:
      FileNotFoundError, IsADirectoryError: naming ``path``.
      ValueError: ``path:line: invalid UTF-8 ...`` with how to re-encode, or "looks binary".
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} not found: {path!r}. Check the path (is it relative to the right directory?).")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{what} {path!r} is a directory; pass the file inside it.")
    with open(path, "rb") as handle:
        for line_number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                if b"\x00" in raw:  # re-encoding will not make a binary file text
                    raise ValueError(f"{path}:{line_number}: {what} {path!r} looks binary, not text (it holds NUL "
                                     "bytes); pass the text file instead.") from None
                raise _invalid(path, line_number, raw[error.start], error.start + 1, what) from None
            yield line_number, line.rstrip("\n").rstrip("\r")


def read_utf8(path: str, what: str = "file") -> str:
    """The whole text of ``path``, a byte-order mark dropped (files of a task split are read whole).

    Raises:
      ValueError: ``path:line: invalid UTF-8 ...`` with how to re-encode the file in place. Lines
        are counted as the task readers split them (``\\n``, ``\\r\\n`` or a bare ``\\r``).
    """
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        body = 3 if data.startswith(_BOM) else 0  # offsets are past a dropped byte-order mark
        start = error.start + body
        head = data[:start]
        line = head.count(b"\n") + head.count(b"\r") - head.count(b"\r\n") + 1
        line_start = max(head.rfind(b"\n"), head.rfind(b"\r"), body - 1) + 1
        raise _invalid(path, line, data[start], start - line_start + 1, what) from None
