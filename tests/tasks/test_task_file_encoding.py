"""Task data files in another encoding: refused naming the file and line, with advice that works.

Each bundled file is saved as Latin-1 (characters outside it become "?"), as an old editor or
export would; the reader must name the first line that is not UTF-8, and re-encoding the file in
place with the command the message gives must make it read, with its accented words intact.
"""

import os
import re
import shutil
import subprocess

import pytest

from bert_jax.tasks import conll_data, glue_data, swag_data, text_classification_data

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TASKS = os.path.join(ROOT, "data", "tasks")


def _read_glue(path):
    return glue_data.read_glue("rte", os.path.dirname(path), "train")


CASES = {  # name: (bundled file, name in the copy's folder, reader, an accented word it holds)
    "glue": (os.path.join(TASKS, "glue_nextsent", "train.tsv"), "train.tsv", _read_glue, "André"),
    "conll": (os.path.join(TASKS, "conll_docs", "dev.txt"), "dev.txt", conll_data.read_conll, "Jesús"),
    "swag": (os.path.join(TASKS, "swag_next", "val.csv"), "val.csv", swag_data.read_swag, "Rodolà"),
    "corpus": (os.path.join(ROOT, "data", "corpus", "library.txt"), "library.txt",
               text_classification_data.read_documents, "française"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_latin1_file_is_refused_at_its_line_and_the_advice_reencodes_it(name, tmp_path):
    source, base, read, word = CASES[name]
    with open(source, encoding="utf-8") as f:
        text = f.read()
    latin1 = text.encode("latin-1", errors="replace")
    lines = latin1.split(b"\n")
    first_bad = next(i for i, line in enumerate(lines, 1) if any(b >= 0x80 for b in line))
    path = tmp_path / base
    path.write_bytes(latin1)
    with pytest.raises(ValueError) as error:
        read(str(path))
    message = str(error.value)
    assert message.startswith(f"{path}:{first_bad}: invalid UTF-8"), message
    command = re.search(r"`(iconv [^`]*)`", message).group(1)
    subprocess.run(command, shell=True, cwd=ROOT, check=True)  # from elsewhere, as finetune is run
    assert path.read_bytes() == latin1.decode("latin-1").encode("utf-8")
    read(str(path))  # reads now
    if word:
        assert word in path.read_text(encoding="utf-8")
        flat = repr(read(str(path)))
        assert word in flat


def test_one_bad_line_in_a_utf8_file_gets_advice_that_keeps_the_rest(tmp_path):
    """The corpus file, UTF-8 but for one line saved as Latin-1: the advice to re-encode the whole
    file from Latin-1 turned every right accent into mojibake ("franÃ§aise"). It now says the rest
    is UTF-8, and its command drops only the bad bytes."""
    source, base, read, word = CASES["corpus"]
    with open(source, encoding="utf-8") as f:
        lines = f.read().split("\n")
    bad = next(i for i, line in enumerate(lines) if "ç" in line and word not in line)  # "François Pinard's"
    data = "\n".join(lines).encode("utf-8").split(b"\n")
    data[bad] = lines[bad].encode("latin-1", errors="replace")
    path = tmp_path / base
    path.write_bytes(b"\n".join(data))
    with pytest.raises(ValueError) as error:
        read(str(path))
    message = str(error.value)
    assert message.startswith(f"{path}:{bad + 1}: invalid UTF-8") and "so re-encoding it all would garble" in message
    command = re.search(r"`(iconv [^`]*)`", message).group(1)
    subprocess.run(command, shell=True, cwd=ROOT, check=True)
    fixed = path.read_text(encoding="utf-8").split("\n")
    assert [line for i, line in enumerate(fixed) if i != bad] == [line for i, line in enumerate(lines) if i != bad]
    assert fixed[bad] == lines[bad].replace("ç", "")  # only its bad bytes went
    assert word in repr(read(str(path)))


def test_utf8_lines_with_stray_cp1252_quotes_get_advice_that_keeps_the_accents(tmp_path):
    """Every non-ASCII line is bad (cp1252 quotes around each) yet the accents on them are UTF-8:
    the file is mostly UTF-8 by character, so the advice drops the quotes, not the accents."""
    source, base, read, _ = CASES["corpus"]
    with open(source, encoding="utf-8") as f:
        lines = f.read().split("\n")
    accented = [i for i, line in enumerate(lines) if not line.isascii()]
    data = [line.encode("utf-8") for line in lines]
    for i in accented:
        data[i] = b"\x93" + data[i] + b"\x94"
    path = tmp_path / base
    path.write_bytes(b"\n".join(data))
    with pytest.raises(ValueError) as error:
        read(str(path))
    message = str(error.value)
    assert "so re-encoding it all would garble" in message and "-c" in message, message
    command = re.search(r"`(iconv [^`]*)`", message).group(1)
    subprocess.run(command, shell=True, cwd=ROOT, check=True)
    assert path.read_text(encoding="utf-8").split("\n") == lines


def test_a_byte_order_mark_is_not_part_of_the_first_field(tmp_path):
    """Windows editors save UTF-8 with a byte-order mark; the header must still be read as one."""
    shutil.copy(os.path.join(TASKS, "glue_nextsent", "train.tsv"), tmp_path / "train.tsv")
    plain = glue_data.read_glue("rte", str(tmp_path), "train")
    (tmp_path / "train.tsv").write_bytes(b"\xef\xbb\xbf" + (tmp_path / "train.tsv").read_bytes())
    assert glue_data.read_glue("rte", str(tmp_path), "train") == plain
    (tmp_path / "train.tsv").write_bytes(b"\xef\xbb\xbfab\xe9\n")  # columns count from after the mark
    with pytest.raises(ValueError, match=r"train.tsv:1: invalid UTF-8 \(byte 0xe9 at column 3\)"):
        glue_data.read_glue("rte", str(tmp_path), "train")


@pytest.mark.parametrize("ending", [b"\r\n", b"\r"])
def test_the_line_named_is_the_readers_line_whatever_the_line_endings(ending, tmp_path):
    """The readers split at CRLF and at a bare CR (old Mac exports) as at LF; the error must count alike."""
    source, base, read, _ = CASES["conll"]
    with open(source, encoding="utf-8") as f:
        text = f.read()

    def where(lines_end_with):  # "LINE: invalid UTF-8 (byte .. at column ..)" of the Latin-1 copy
        path = tmp_path / lines_end_with.hex() / base
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(text.encode("latin-1", errors="replace").replace(b"\n", lines_end_with))
        with pytest.raises(ValueError) as error:
            read(str(path))
        return str(error.value)[len(str(path)) + 1:].split(". ")[0]

    assert where(ending) == where(b"\n")
    utf8 = {end: tmp_path / f"{end.hex()}.txt" for end in (ending, b"\n")}
    for end, path in utf8.items():
        path.write_bytes(text.encode("utf-8").replace(b"\n", end))
    assert read(str(utf8[ending])) == read(str(utf8[b"\n"]))
