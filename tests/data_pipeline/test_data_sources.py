"""Reading inputs: formats, globs/directories, NFC, invalid UTF-8, sentence splitting, datasets."""

from __future__ import annotations

import logging
import unicodedata

import pytest

from data_pipeline import sources
from dp_helpers import CORPUS_DIR, read_documents


def test_bert_format_matches_blank_line_documents():
    path = str(CORPUS_DIR / "faq.txt")
    docs = list(sources.iter_documents([path]))
    expected = read_documents(path, 10**9)
    assert [d.sentences for d in docs] == expected
    assert [d.index for d in docs] == list(range(len(docs)))
    assert docs[0].source == f"{path}:1"


def test_directories_and_globs_expand_sorted(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "2.txt").write_text("Two.\n")
    (tmp_path / "1.txt").write_text("One.\n")
    (tmp_path / "skip.json").write_text("{}")
    assert sources.expand_inputs([str(tmp_path)]) == [str(tmp_path / "1.txt"), str(tmp_path / "b" / "2.txt")]
    assert sources.expand_inputs([str(tmp_path / "**" / "*.txt")]) == [str(tmp_path / "1.txt"), str(tmp_path / "b" / "2.txt")]
    with pytest.raises(sources.InputError, match="matches no files"):
        sources.expand_inputs([str(tmp_path / "*.md")])
    with pytest.raises(sources.InputError, match="does not exist"):
        sources.expand_inputs([str(tmp_path / "missing.txt")])


def test_nfc_normalisation(tmp_path):
    decomposed = unicodedata.normalize("NFD", "Caf\u00e9 cr\u00e8me.")
    assert decomposed != "Caf\u00e9 cr\u00e8me."
    (tmp_path / "a.txt").write_text(decomposed + "\nNext one.\n", encoding="utf-8")
    doc = next(sources.iter_documents([str(tmp_path / "a.txt")]))
    assert doc.sentences[0] == "Caf\u00e9 cr\u00e8me."


def test_invalid_utf8_reported_with_file_and_line(tmp_path, caplog):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"Good line.\nBad \xff\xfe line.\nAnother good line.\n")
    with caplog.at_level(logging.WARNING):
        docs = list(sources.iter_documents([str(path)]))
    assert docs[0].sentences == ["Good line.", "Another good line."]
    assert f"{path}:2: invalid UTF-8" in caplog.text
    with pytest.raises(sources.InputError, match=rf"{path}:2: invalid UTF-8.*--on-invalid-utf8 skip"):
        list(sources.iter_documents([str(path)], on_invalid_utf8="error"))


def test_empty_file_warns(tmp_path, caplog):
    (tmp_path / "e.txt").write_text("")
    with caplog.at_level(logging.WARNING):
        assert list(sources.iter_documents([str(tmp_path / "e.txt")])) == []
    assert "e.txt: empty file" in caplog.text


def test_sentence_splitter_on_real_prose():
    # Sentences of the bundled corpus, joined into one paragraph, split back.
    sents = read_documents(str(CORPUS_DIR / "tutorial.txt"), 1)[0][:6]
    assert sources.split_sentences(" ".join(sents)) == sents
    assert sources.split_sentences("See e.g. Section 3. It works, cf. Fig. 2 here. Done!") == [
        "See e.g. Section 3.",
        "It works, cf. Fig. 2 here.",
        "Done!",
    ]
    assert sources.split_sentences("   ") == []


def test_lines_and_paragraph_formats(tmp_path):
    sents = read_documents(str(CORPUS_DIR / "tutorial.txt"), 2)
    (tmp_path / "lines.txt").write_text(" ".join(sents[0]) + "\n\n" + " ".join(sents[1]) + "\n")
    expected = [sources.split_sentences(" ".join(s)) for s in sents]
    assert all(len(e) > 3 for e in expected)
    docs = list(sources.iter_documents([str(tmp_path / "lines.txt")], "lines"))
    assert [d.sentences for d in docs] == expected
    assert docs[1].source.endswith("lines.txt:3")
    # Paragraphs may wrap over several lines.
    wrapped = " ".join(sents[0]).replace(". ", ".\n")
    (tmp_path / "para.txt").write_text(wrapped + "\n\n" + " ".join(sents[1]) + "\n")
    docs = list(sources.iter_documents([str(tmp_path / "para.txt")], "paragraphs"))
    assert [d.sentences for d in docs] == expected


def test_datasets_input_from_local_path(tmp_path):
    datasets = pytest.importorskip("datasets")
    sents = read_documents(str(CORPUS_DIR / "tutorial.txt"), 3)
    ds = datasets.Dataset.from_dict({"body": [" ".join(s) for s in sents], "id": [0, 1, 2]})
    ds.save_to_disk(str(tmp_path / "ds"))
    docs = list(sources.iter_documents([f"hf:{tmp_path / 'ds'}"], text_column="body"))
    assert [d.sentences for d in docs] == [sources.split_sentences(" ".join(s)) for s in sents]
    with pytest.raises(sources.InputError, match="no column 'text'"):
        list(sources.iter_documents([f"hf:{tmp_path / 'ds'}"]))


def test_another_encoding_is_told_from_utf8_with_stray_bytes_by_character_not_by_line():
    """A line counts by what it holds: UTF-8 text with a cp1252 quote on every line is mostly
    valid (re-encoding it from Latin-1 would garble every accent), so it is not refused as another
    encoding; a file of dense Latin-1 lines with a few sparse UTF-8 ones is."""
    prose = [s for d in read_documents(str(CORPUS_DIR / "faq.txt"), 20) for s in d][:60]
    quoted = b"\n".join(b"\x93" + s.replace("e", "\u00e9").encode("utf-8") + b"\x94" for s in prose)
    assert sources.encoding_reason(quoted) is None
    mixed = b"\n".join([s.replace("e", "\u00e9", 1).encode("utf-8") for s in prose[:6]]
                       + [s.replace("e", "\u00e9").encode("latin-1") for s in prose[6:]])
    reason = sources.encoding_reason(mixed)
    assert reason is not None and reason.endswith("(the first bad one on line 7)"), reason
