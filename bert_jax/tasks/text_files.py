"""Task data files as text: UTF-8 (a byte-order mark is dropped), or an error naming the line.

A GLUE, CoNLL or SWAG file saved in another encoding (Latin-1 from an old editor or export) was
reported as "'utf-8' codec can't decode byte 0xe9 in position 984", naming neither the file nor
the line nor what to do.
"""

from __future__ import annotations

from bert_jax.tokenization.vocab_file import reencode_advice


def read_utf8(path: str, what: str = "file") -> str:
    """The whole text of ``path`` (files of a task split are read whole anyway).

    Raises:
      ValueError: ``path:line: invalid UTF-8 ...`` with how to re-encode the file in place.
    """
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        start = error.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)  # offsets past a dropped BOM
        line = data.count(b"\n", 0, start) + 1
        line_start = data.rfind(b"\n", 0, start) + 1
        if line_start == 0 and data.startswith(b"\xef\xbb\xbf"):
            line_start = 3  # columns count from after the byte-order mark
        column = start - line_start + 1
        raise ValueError(f"{path}:{line}: invalid UTF-8 (byte {data[start]:#04x} at column {column}). "
                         f"{reencode_advice(path, what)}") from None
