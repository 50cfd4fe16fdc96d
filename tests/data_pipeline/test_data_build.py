"""The builder: byte-identical output for any worker count, resumable, atomic, and clear about bad input."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import data_pipeline
from data_pipeline import build, cli, shards, tokens
from dp_helpers import CORPUS_DIR, CORPUS_FILES, dir_bytes, make_options, read_documents, write_corpus


def test_same_bytes_with_one_and_two_workers(tmp_path, small_corpus, vocab_file):
    opts = make_options([small_corpus], vocab_file, num_shards=4)
    build.build(opts, str(tmp_path / "w1"), workers=1)
    build.build(opts, str(tmp_path / "w2"), workers=2)
    one, two = dir_bytes(str(tmp_path / "w1")), dir_bytes(str(tmp_path / "w2"))
    assert sorted(one) == sorted(two)
    assert len([n for n in one if n.endswith(".bin")]) == 4
    for name in one:
        assert one[name] == two[name], name


def test_different_seed_gives_different_shards(tmp_path, small_corpus, vocab_file):
    build.build(make_options([small_corpus], vocab_file, num_shards=1, seed=1), str(tmp_path / "a"))
    build.build(make_options([small_corpus], vocab_file, num_shards=1, seed=2), str(tmp_path / "b"))
    a = dir_bytes(str(tmp_path / "a"))["shard-00000-of-00001.bin"]
    b = dir_bytes(str(tmp_path / "b"))["shard-00000-of-00001.bin"]
    assert a != b


def test_rerun_finishes_only_missing_shards(tmp_path, small_corpus, vocab_file):
    opts = make_options([small_corpus], vocab_file, num_shards=4)
    full = str(tmp_path / "full")
    build.build(opts, full)
    reference = dir_bytes(full)
    # Simulate an interrupted build: two shards gone, one half-written .bin
    # without its sidecar, one stray temporary file, no manifest.
    for i in (1, 3):
        os.remove(os.path.join(full, shards.shard_name(i, 4) + ".json"))
    os.remove(os.path.join(full, shards.shard_name(3, 4) + ".bin"))
    with open(os.path.join(full, shards.shard_name(1, 4) + ".bin"), "r+b") as f:
        f.truncate(1000)
    os.remove(os.path.join(full, shards.MANIFEST))
    mtime0 = os.path.getmtime(os.path.join(full, shards.shard_name(0, 4) + ".bin"))
    with pytest.raises(shards.ShardError, match="incomplete"):
        data_pipeline.PretrainingLoader(full, 8)
    build.build(opts, full)
    assert os.path.getmtime(os.path.join(full, shards.shard_name(0, 4) + ".bin")) == mtime0  # not rebuilt
    assert dir_bytes(full) == reference


def test_killed_build_resumes_to_identical_shards(tmp_path, vocab_file):
    args = ["--input", *CORPUS_FILES[:4], "--vocab", vocab_file, "--num-shards", "6", "--dupe-factor", "2",
            "--max-seq-length", "64", "--seed", "3"]
    run = [sys.executable, "-m", "bert_jax.cli", "data", "build"]
    killed, whole = str(tmp_path / "killed"), str(tmp_path / "whole")
    proc = subprocess.Popen(run + args + ["--output", killed], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if os.path.isdir(killed) and any(n.endswith(".json") and n.startswith("shard-") for n in os.listdir(killed)):
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = [n for n in os.listdir(killed) if n.startswith("shard-") and n.endswith(".json")]
    assert 1 <= len(done) < 6 and not os.path.exists(os.path.join(killed, shards.MANIFEST))
    assert subprocess.run(run + args + ["--output", killed], capture_output=True).returncode == 0
    assert subprocess.run(run + args + ["--output", whole], capture_output=True).returncode == 0
    assert dir_bytes(killed) == dir_bytes(whole)


def test_shard_range_across_machines_equals_one_build(tmp_path, small_corpus, vocab_file):
    opts = make_options([small_corpus], vocab_file, num_shards=4)
    build.build(opts, str(tmp_path / "one"))
    shared = str(tmp_path / "shared")
    assert build.build(opts, shared, shard_range=(0, 2)) is None  # machine 1: no manifest yet
    assert not os.path.exists(os.path.join(shared, shards.MANIFEST))
    assert build.build(opts, shared, shard_range=(2, 4)) is not None  # machine 2 completes it
    assert dir_bytes(shared) == dir_bytes(str(tmp_path / "one"))


def test_other_options_refused_naming_them(tmp_path, small_corpus, vocab_file):
    out = str(tmp_path / "out")
    build.build(make_options([small_corpus], vocab_file, num_shards=2), out)
    before = dir_bytes(out)
    with pytest.raises(build.BuildError, match=r"masked_lm_prob: 0.15 -> 0.2.*--overwrite"):
        build.build(make_options([small_corpus], vocab_file, num_shards=2, masked_lm_prob=0.2), out)
    assert dir_bytes(out) == before  # nothing lost
    build.build(make_options([small_corpus], vocab_file, num_shards=2, masked_lm_prob=0.2), out, overwrite=True)
    assert shards.read_json(os.path.join(out, shards.MANIFEST))["masked_lm_prob"] == 0.2


def test_bad_inputs_have_clear_messages(tmp_path, small_corpus, vocab_file, caplog):
    out = str(tmp_path / "out")
    with pytest.raises(Exception, match="does not exist"):
        build.build(make_options([str(tmp_path / "missing.txt")], vocab_file), out)
    # A vocabulary lacking [MASK].
    bad_vocab = tmp_path / "vocab.txt"
    bad_vocab.write_text("\n".join(t for t in open(vocab_file, encoding="utf-8").read().split("\n") if t != "[MASK]"))
    with pytest.raises(ValueError, match=r"lacks the special token\(s\).*MASK"):
        build.build(make_options([small_corpus], str(bad_vocab)), out)
    # Only empty files.
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with caplog.at_level(logging.WARNING):
        with pytest.raises(build.BuildError, match="no documents found"):
            build.build(make_options([str(empty)], vocab_file), str(tmp_path / "out_empty"))
    assert "empty.txt: empty file" in caplog.text
    # that folder is not taken for shards, and the reason given is not "re-run the same command"
    # (which fails the same way); a build with text in it then works
    with pytest.raises(shards.ShardError, match=r"a build started here but made no shard; run bert-jax data build "
                                                r"again, with inputs that hold text"):
        shards.load_manifest(str(tmp_path / "out_empty"))
    assert build.build(make_options([small_corpus], vocab_file), str(tmp_path / "out_empty")) is not None
    # a shard file, or the folder above the shards, given for the shard folder: named as such (the
    # file was called damaged, with advice to rebuild it; the folder above had no hint)
    shard_file = sorted(tmp_path.glob("out_empty/shard-*"))[0]
    with pytest.raises(shards.ShardError, match=rf"{shard_file} is a file; pass the shard directory that holds "
                                                rf"it \({tmp_path / 'out_empty'}\)"):
        shards.load_manifest(str(shard_file))
    with pytest.raises(shards.ShardError, match=rf"no manifest.json in {tmp_path} \(it is in "
                                                rf"{tmp_path / 'out_empty'}: pass that folder\)"):
        shards.load_manifest(str(tmp_path))


def test_one_sentence_documents_and_long_lines_warn_and_build(tmp_path, vocab_file, caplog):
    docs = read_documents(str(CORPUS_DIR / "tutorial.txt"), 40)
    lone = [docs[0][0]]
    long_line = [" ".join(s for d in docs[1:6] for s in d)]  # a "sentence" far longer than 64 tokens
    corpus = write_corpus(tmp_path / "c.txt", [lone] + docs[6:] + [docs[1][:1] + long_line + docs[1][1:]])
    lines = open(corpus, "rb").read().split(b"\n")
    long_at = lines.index(long_line[0].encode()) + 1
    # A stray Latin-1 byte on the line before it: that line is skipped (--on-invalid-utf8 skip),
    # and the long sentence, one line further down, is still named by its own line.
    lines.insert(long_at - 1, docs[1][0].encode() + b" \xe9")
    open(corpus, "wb").write(b"\n".join(lines))
    long_at += 1
    with caplog.at_level(logging.WARNING):
        manifest = build.build(make_options([corpus], vocab_file, num_shards=1), str(tmp_path / "out"))
    # One warning line per kind of problem, with the count and the first locations.
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    lone_lines = [w for w in warnings if "document(s) of one sentence" in w]
    long_lines = [w for w in warnings if "longer than max_seq_length - 3 = 61 tokens are truncated" in w]
    assert len(lone_lines) == 1 and lone_lines[0].startswith("1 document(s)") and "c.txt:1" in lone_lines[0]
    assert len(long_lines) == 1 and "manifest.json" in long_lines[0]
    shard = manifest["shards"][0]["warnings"]
    assert shard["single_sentence_documents"] == 1 and shard["single_sentence_document_locations"][0].endswith("c.txt:1")
    # the long sentence's own line (it was its document's first line, two above; then the line
    # above, when the skipped line was not counted)
    assert shard["long_sentences"] >= 1 and f"c.txt:{long_at}" in " ".join(shard["long_sentence_locations"]), \
        (long_at, shard["long_sentence_locations"])
    assert not any(loc.endswith((f"c.txt:{long_at - 1}", f"c.txt:{long_at - 2}"))
                   for loc in shard["long_sentence_locations"])
    assert any(f"c.txt:{long_at - 1}: invalid UTF-8" in w for w in warnings)
    assert manifest["warnings"]["long_sentences"] == shard["long_sentences"]
    for ex in data_pipeline.load_examples(str(tmp_path / "out")):
        assert ex["source_document"] != 0  # the lone sentence never forms an A segment
        assert ex["attention_mask"].sum() <= 64


def test_too_many_shards_for_documents(tmp_path, vocab_file):
    corpus = write_corpus(tmp_path / "c.txt", read_documents(CORPUS_FILES[0], 3))
    with pytest.raises(build.BuildError, match="fewer --num-shards"):
        build.build(make_options([corpus], vocab_file, num_shards=8), str(tmp_path / "out"))


def test_cli_build_and_inspect(tmp_path, small_corpus, vocab_file, capsys):
    out = str(tmp_path / "out")
    rc = cli.main(["build", "--input", small_corpus, "--vocab", vocab_file, "--output", out, "--num-shards", "2",
                   "--max-seq-length", "64", "--max-predictions-per-seq", "10", "--dupe-factor", "1", "--dynamic-masking"])
    assert rc == 0
    assert "examples in 2 shard(s)" in capsys.readouterr().out
    assert cli.main(["inspect", out, "--examples", "2"]) == 0
    text = capsys.readouterr().out
    assert "NSP random-next" in text and "masked fraction" in text and "[MASK](" in text
    rc = cli.main(["build", "--input", small_corpus, "--vocab", vocab_file, "--output", out, "--num-shards", "3"])
    assert rc == 2
    assert "num_shards: 2 -> 3" in capsys.readouterr().err
    assert cli.main(["build", "--input", str(tmp_path / "nope"), "--vocab", vocab_file, "--output", out]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_load_examples_fields(tmp_path, small_corpus, vocab_file):
    build.build(make_options([small_corpus], vocab_file, num_shards=2), str(tmp_path))
    examples = list(data_pipeline.load_examples(str(tmp_path)))
    manifest = shards.read_json(os.path.join(tmp_path, shards.MANIFEST))
    assert len(examples) == manifest["num_examples"]
    ex = examples[0]
    assert ex["input_ids"].shape == (64,) and ex["masked_lm_positions"].shape == (10,)
    assert {"token_type_ids", "attention_mask", "masked_lm_ids", "masked_lm_weights", "next_sentence_label",
            "source_document", "b_document"} <= set(ex)
    assert ex["masked_lm_weights"].dtype == np.float32


def test_building_does_not_import_jax(tmp_path, small_corpus, vocab_file):
    code = (
        "import sys\nfrom data_pipeline import build, loader, inspect\n"
        f"build.build(build.BuildOptions(inputs=({small_corpus!r},), vocab_file={vocab_file!r}, max_seq_length=64, dupe_factor=1), {str(tmp_path)!r})\n"
        "assert 'jax' not in sys.modules, 'jax was imported'\n"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_chunk_cached_tokenization_equals_whole_sentence_encoding(vocab_file):
    backend, _, _ = tokens.load_tokenizer(vocab_file, True)
    assert tokens.space_additive(backend)
    sentences = [s for d in read_documents(str(CORPUS_DIR / "library.txt"), 400) for s in d]
    sentences += [
        "Tabs\tand  double  spaces ", " leading space", "Café CRÈME naïve façade", "混合 中文text here",
        "control\x07char\x1cs and NEL\x85 too", "", "   ", "e.g. (x, y) -> [1, 2]!", "İstanbul ǅ ﬁne",
    ]
    ids, lengths = tokens.tokenize_sentences(backend, sentences)
    reference = [e.ids for e in backend.encode_batch(sentences, add_special_tokens=False)]
    assert lengths.tolist() == [len(r) for r in reference]
    assert ids.tolist() == [t for r in reference for t in r]


def test_literal_special_tokens_in_text_become_unk(tmp_path, vocab_file):
    docs = read_documents(str(CORPUS_DIR / "tutorial.txt"), 30)
    docs[0][0] = "Never write [SEP] or [CLS] or [MASK] in " + docs[0][0]
    corpus = write_corpus(tmp_path / "c.txt", docs)
    manifest = build.build(make_options([corpus], vocab_file, num_shards=1, dupe_factor=3), str(tmp_path / "out"))
    assert manifest["shards"][0]["warnings"]["special_tokens_in_text"] == 3
    vocab = {t: i for i, t in enumerate(open(vocab_file, encoding="utf-8").read().split("\n"))}
    for ex in data_pipeline.load_examples(str(tmp_path / "out")):
        assert (ex["input_ids"] == vocab["[SEP]"]).sum() == 2 and (ex["input_ids"] == vocab["[CLS]"]).sum() == 1


def test_build_from_a_datasets_dataset_and_paragraph_text(tmp_path, vocab_file):
    datasets = pytest.importorskip("datasets")
    docs = read_documents(str(CORPUS_DIR / "tutorial.txt"), 60)
    datasets.Dataset.from_dict({"text": [" ".join(d) for d in docs]}).save_to_disk(str(tmp_path / "ds"))
    (tmp_path / "para.txt").write_text("\n\n".join(" ".join(d) for d in docs) + "\n", encoding="utf-8")
    from_ds = build.build(make_options([f"hf:{tmp_path / 'ds'}"], vocab_file, num_shards=1), str(tmp_path / "a"))
    opts = make_options([str(tmp_path / "para.txt")], vocab_file, num_shards=1, input_format="paragraphs")
    from_text = build.build(opts, str(tmp_path / "b"))
    # The same documents, split by the same splitter: the same examples.
    assert from_ds["num_examples"] == from_text["num_examples"] > 100
    assert dir_bytes(str(tmp_path / "a"))["shard-00000-of-00001.bin"] == dir_bytes(str(tmp_path / "b"))["shard-00000-of-00001.bin"]


def test_shard_range_flag_is_checked(tmp_path, small_corpus, vocab_file, capsys):
    base = ["build", "--input", small_corpus, "--vocab", vocab_file, "--output", str(tmp_path), "--num-shards", "4"]
    with pytest.raises(SystemExit):
        cli.main(base + ["--shard-range", "2-3"])
    assert "START:END" in capsys.readouterr().err
    assert cli.main(base + ["--shard-range", "3:9"]) == 2
    assert "not within 0:4" in capsys.readouterr().err


def test_a_vocabulary_of_another_layout_is_named_and_the_advice_works(tmp_path, small_corpus, vocab_file):
    """A tokenizer.json, a 'token<TAB>id' file or a binary file given as --vocab was told it
    "lacks the special token(s) [UNK], [CLS] ...: add them as lines" (they were there), or, for the
    binary file, to re-encode it with iconv."""
    import json
    tokens = open(vocab_file, encoding="utf-8").read().split("\n")
    tokens = tokens[:-1] if tokens[-1] == "" else tokens
    out = str(tmp_path / "out")
    as_json = tmp_path / "tokenizer.json"
    as_json.write_text(json.dumps({"version": "1.0", "model": {"type": "WordPiece",
                                                                "vocab": {t: i for i, t in enumerate(tokens)}}},
                                  indent=2))
    with pytest.raises(ValueError, match=r"is JSON \(a tokenizer.json\?\), not a vocab.txt"):
        build.build(make_options([small_corpus], str(as_json)), out)
    (tmp_path / "pairs").mkdir()
    pairs = tmp_path / "pairs" / "vocab.txt"  # the usual name: cut into itself would have emptied it
    pairs.write_text("".join(f"{t}\t{i}\n" for i, t in enumerate(tokens)))
    with pytest.raises(ValueError, match=r"holds 'token id' pairs") as error:
        build.build(make_options([small_corpus], str(pairs)), out)
    command = re.search(r"`([^`]*)`", str(error.value)).group(1)
    subprocess.run(command, shell=True, cwd=CORPUS_DIR, check=True)  # the advice, run from elsewhere
    fixed = re.search(r"pass (\S+) instead", str(error.value)).group(1)
    assert pairs.read_text().count("\t") == len(tokens)  # the file itself is left as it was
    assert build.build(make_options([small_corpus], fixed), out) is not None
    binary = tmp_path / "model.bin"
    binary.write_bytes(b"\x00\x01\x02\xff\xfe" * 100)
    with pytest.raises(ValueError, match=r"looks binary, not text") as error:
        build.build(make_options([small_corpus], str(binary)), str(tmp_path / "out2"))
    assert "iconv" not in str(error.value)
