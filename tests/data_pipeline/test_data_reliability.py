"""Builds that must not fail silently: changed inputs, unusable outputs, binary input, damaged shards
and manifests, --overwrite next to user files, an over-large prediction cap.

Each test checks the message (what, which file, what to do), that following the
advice works, and that nothing was lost, overwritten or left looking complete.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

import data_pipeline
from data_pipeline import build, cli, shards, sources
from dp_helpers import CORPUS_DIR, CORPUS_FILES, dir_bytes, make_options, read_documents, write_corpus


@pytest.fixture()
def two_files(tmp_path):
    """Two real-text input files the test may edit."""
    (tmp_path / "in").mkdir()
    a = write_corpus(tmp_path / "in" / "a.txt", read_documents(str(CORPUS_DIR / "tutorial.txt"), 120))
    b = write_corpus(tmp_path / "in" / "b.txt", read_documents(str(CORPUS_DIR / "faq.txt"), 120))
    return a, b


def _cli_build(*args):
    return subprocess.run([sys.executable, "-m", "bert_jax.cli", "data", "build", *args],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})


# 1 -------------------------------------------------------------------------------------------

def test_changed_input_after_interrupted_build_is_refused_naming_the_file(tmp_path, two_files, vocab_file, caplog):
    a, b = two_files
    opts = make_options([a, b], vocab_file, num_shards=4)
    out = str(tmp_path / "out")
    assert build.build(opts, out, shard_range=(0, 2)) is None  # an interrupted build: 2 of 4 shards
    before = dir_bytes(out)
    # The corpus is edited before the rerun: more documents in b.txt.
    write_corpus(tmp_path / "in" / "b.txt", read_documents(str(CORPUS_DIR / "faq.txt"), 150))
    with pytest.raises(build.BuildError, match=r"b\.txt changed size .*restore the original inputs.*--overwrite"):
        build.build(opts, out)
    assert dir_bytes(out) == before  # nothing built from the new corpus, nothing deleted
    # A same-size edit (two letters swapped) is caught by the content hash.
    text = open(a, encoding="utf-8").read()
    i = text.index("Python")
    open(a, "w", encoding="utf-8").write(text[:i] + "yPthon" + text[i + 6:])
    with pytest.raises(build.BuildError, match=r"a\.txt changed content \(same size"):
        build.build(opts, out)
    assert dir_bytes(out) == before
    # The advice: --overwrite rebuilds everything from the current inputs.
    with caplog.at_level(logging.WARNING):
        manifest = build.build(opts, out, overwrite=True)
    assert "a.txt changed content" in caplog.text and "b.txt changed size" in caplog.text
    fresh = str(tmp_path / "fresh")
    build.build(opts, fresh)
    assert dir_bytes(out) == dir_bytes(fresh)  # no shard of the old corpus survives
    assert manifest["num_shards"] == 4


def test_touched_but_unchanged_input_is_not_a_change(tmp_path, two_files, vocab_file):
    a, b = two_files
    opts = make_options([a, b], vocab_file, num_shards=2)
    out = str(tmp_path / "out")
    build.build(opts, out, shard_range=(0, 1))
    os.utime(b, ns=(1, 1))  # a fresh checkout or `touch`: new mtime, same bytes
    assert build.build(opts, out) is not None
    fresh = str(tmp_path / "fresh")
    build.build(opts, fresh)
    got, want = dir_bytes(out), dir_bytes(fresh)
    assert {k: v for k, v in got.items() if k != shards.OPTIONS} == {k: v for k, v in want.items() if k != shards.OPTIONS}
    recorded = {e["path"]: e for e in shards.read_json(os.path.join(out, shards.OPTIONS))["inputs"]}
    assert recorded[b]["mtime_ns"] == 1 and recorded[b]["size"] == os.path.getsize(b)


def test_cli_changed_input_message_and_overwrite(tmp_path, two_files, vocab_file):
    a, b = two_files
    out = str(tmp_path / "out")
    args = ["--input", a, b, "--vocab", vocab_file, "--output", out, "--num-shards", "2",
            "--max-seq-length", "64", "--dupe-factor", "1"]
    assert _cli_build(*args, "--shard-range", "0:1").returncode == 0
    with open(b, "a", encoding="utf-8") as f:
        f.write("\n" + "\n".join(read_documents(str(CORPUS_DIR / "howto.txt"), 5)[0]) + "\n")
    run = _cli_build(*args)
    assert run.returncode == 2
    assert f"{b} changed size" in run.stderr and "--overwrite" in run.stderr and "Traceback" not in run.stderr
    assert not os.path.exists(os.path.join(out, shards.MANIFEST))
    assert _cli_build(*args, "--overwrite").returncode == 0
    assert data_pipeline.PretrainingLoader(out, 4, prefetch=0).num_examples > 0


# 2 -------------------------------------------------------------------------------------------

def test_output_that_is_a_file_exits_2_with_a_clear_error(tmp_path, small_corpus, vocab_file, capsys):
    target = tmp_path / "out.txt"
    target.write_bytes(b"a user's file\n")
    rc = cli.main(["build", "--input", small_corpus, "--vocab", vocab_file, "--output", str(target)])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"--output {target} is a file, not a directory" in err and "pass the path of a directory" in err
    assert target.read_bytes() == b"a user's file\n"


def _make_read_only(path) -> bool:
    """Makes ``path`` unwritable (mode bits; for root, the immutable attribute); True if that worked."""
    os.chmod(path, 0o555)
    if os.geteuid() == 0 and shutil.which("chattr"):
        subprocess.run(["chattr", "+i", str(path)], capture_output=True)
    try:
        open(os.path.join(path, ".probe"), "w").close()
    except OSError:
        return True
    os.remove(os.path.join(path, ".probe"))
    return False


def _make_writable(path) -> None:
    if os.geteuid() == 0 and shutil.which("chattr"):
        subprocess.run(["chattr", "-i", str(path)], capture_output=True)
    os.chmod(path, 0o755)


def test_read_only_output_exits_2_with_a_clear_error(tmp_path, small_corpus, vocab_file, capsys):
    out = tmp_path / "ro"
    out.mkdir()
    (out / "notes.txt").write_text("keep me\n")
    if not _make_read_only(out):
        _make_writable(out)
        pytest.skip("cannot make a directory read-only here (root without chattr)")
    try:
        args = ["build", "--input", small_corpus, "--vocab", vocab_file, "--output", str(out), "--max-seq-length", "64"]
        rc = cli.main(args)
        err = capsys.readouterr().err
        assert rc == 2
        assert f"cannot write to --output {out}" in err and "writable" in err
        assert sorted(os.listdir(out)) == ["notes.txt"]
    finally:
        _make_writable(out)
    # The advice works: once writable, the same command builds.
    assert cli.main(args) == 0
    assert (out / "notes.txt").read_text() == "keep me\n" and (out / shards.MANIFEST).exists()


# 3 -------------------------------------------------------------------------------------------

def test_binary_input_is_refused_naming_the_file(tmp_path, small_corpus, vocab_file, caplog):
    elf = tmp_path / "python.bin"
    elf.write_bytes(open(os.path.realpath(sys.executable), "rb").read(200_000))
    gz = tmp_path / "tutorial.txt.gz"  # a compressed corpus passed by mistake
    gz.write_bytes(gzip.compress(open(CORPUS_DIR / "tutorial.txt", "rb").read()))
    utf16 = tmp_path / "faq-utf16.txt"
    utf16.write_bytes(open(CORPUS_DIR / "faq.txt", encoding="utf-8").read().encode("utf-16"))
    for bad in (elf, gz, utf16):
        out = tmp_path / f"out-{bad.name}"
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            with pytest.raises(sources.InputError, match=rf"input file {bad} looks binary, not text \(.*remove it"):
                build.build(make_options([small_corpus, str(bad)], vocab_file), str(out))
        assert len(caplog.records) < 5  # not thousands of undecodable-line warnings
        assert not out.exists()  # refused before anything was written
    # Real text with one bad byte is still text (reported line by line as before).
    damaged = tmp_path / "damaged.txt"
    damaged.write_bytes(open(small_corpus, "rb").read() + b"one bad \xff byte\n")
    assert sources.binary_reason(str(damaged)) is None
    assert all(sources.binary_reason(f) is None for f in CORPUS_FILES)


def test_cli_binary_input(tmp_path, small_corpus, vocab_file):
    gz = tmp_path / "faq.txt.gz"
    gz.write_bytes(gzip.compress(open(CORPUS_DIR / "faq.txt", "rb").read()))
    run = _cli_build("--input", small_corpus, str(gz), "--vocab", vocab_file, "--output", str(tmp_path / "out"))
    assert run.returncode == 2 and f"{gz} looks binary" in run.stderr
    assert run.stderr.count("\n") < 10


def test_a_build_refused_before_its_first_shard_does_not_block_the_fixed_rerun(tmp_path, small_corpus, vocab_file):
    """Inputs of blank lines are refused ("no documents found"), but the refusal left the build's
    record behind: once the file was fixed, the same command was refused as "already holds shards
    built with other options or inputs" although no shard had been written."""
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n\n", encoding="utf-8")
    out = tmp_path / "out"
    argv = ["build", "--input", str(corpus), "--vocab", vocab_file, "--output", str(out), "--num-shards", "2"]
    assert cli.main(argv) == 2
    shutil.copy(small_corpus, corpus)  # the fix: real text in the same file
    assert cli.main(argv) == 0 and (out / "manifest.json").exists()
    reference = tmp_path / "reference"
    assert cli.main(argv[:-4] + ["--output", str(reference), "--num-shards", "2"]) == 0
    assert dir_bytes(str(out)) == dir_bytes(str(reference))  # the same as a build in a new directory


def test_latin1_input_is_refused_with_iconv_advice_that_works(tmp_path, small_corpus, vocab_file):
    """A corpus file in Latin-1 (real text: faq.txt with its accented re-spellings, encoded as
    Latin-1) was built line by line with most lines skipped -- 0 examples, exit 0. It is refused
    before anything is written, and the advised iconv conversion builds."""
    text = open(CORPUS_DIR / "faq.txt", encoding="utf-8").read().replace("e", "\u00e9")
    latin1 = tmp_path / "faq_latin1.txt"
    latin1.write_bytes(text.encode("latin-1"))
    out = tmp_path / "out"
    run = _cli_build("--input", str(latin1), "--vocab", vocab_file, "--output", str(out))
    assert run.returncode == 2, run.stderr[-2000:]
    assert f"input file {latin1} is not UTF-8" in run.stderr and run.stderr.count("\n") < 5 and not out.exists()
    advised = re.search(r"`(iconv -f latin1 [^`]+)`", run.stderr).group(1)  # run it as written
    subprocess.run(advised, shell=True, cwd=tmp_path, check=True)
    assert latin1.read_text(encoding="utf-8") == text
    run = _cli_build("--input", str(tmp_path), "--vocab", vocab_file, "--output", str(out))  # the folder: one file
    assert run.returncode == 0, run.stderr[-2000:]
    assert "wrote 0 examples" not in run.stdout and "examples in 1 shard" in run.stdout


def test_stray_invalid_lines_are_skipped_with_one_warning_per_file_beyond_the_first_few(tmp_path, small_corpus,
                                                                                       vocab_file, caplog):
    lines = open(small_corpus, "rb").read().splitlines(keepends=True)
    for i in range(0, 40, 8):  # 5 bad lines among many good ones: skipped, not refused
        lines[i] = b"caf\xe9 " + lines[i]
    damaged = tmp_path / "damaged.txt"
    damaged.write_bytes(b"".join(lines))
    with caplog.at_level(logging.WARNING):
        build.build(make_options([str(damaged)], vocab_file), str(tmp_path / "out"))
    skipped = [r.getMessage() for r in caplog.records if "invalid UTF-8" in r.getMessage()]
    assert len(skipped) == 4 and all("line skipped" in m for m in skipped[:3])
    assert skipped[3] == f"{damaged}: 5 lines of invalid UTF-8 skipped in all (the first 3 named above)"


def test_inputs_that_give_no_examples_write_no_manifest(tmp_path, vocab_file):
    """Every document a single sentence (corpus lines, each its own document): no example can be
    made, so the build fails naming why instead of writing an empty shard set that looks done."""
    lines = [line for line in open(CORPUS_DIR / "faq.txt", encoding="utf-8").read().splitlines() if line.strip()]
    lone = tmp_path / "lone.txt"
    lone.write_text("\n\n".join(lines[:40]) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    run = _cli_build("--input", str(lone), "--vocab", vocab_file, "--output", str(out))
    assert run.returncode == 2, run.stderr[-2000:]
    assert "the inputs gave 0 examples: 40 document(s), 40 of them of one sentence" in run.stderr
    assert not (out / "manifest.json").exists()
    run = _cli_build("--input", str(CORPUS_DIR / "faq.txt"), "--vocab", vocab_file, "--output", str(out), "--overwrite")
    assert run.returncode == 0 and (out / "manifest.json").exists()  # the advice: fix the input, --overwrite


def test_ctrl_c_during_a_build_leaves_no_temporary_shard_and_no_traceback(tmp_path, small_corpus, vocab_file,
                                                                          monkeypatch, capsys):
    """Ctrl-C mid-build: the shard being written leaves no ``.bin.tmp-*`` file (it left 8.6 MB), the
    command says what to do instead of a KeyboardInterrupt traceback, and the rerun finishes."""
    import numpy as np
    real = np.ascontiguousarray
    calls = []

    def interrupted(a, *args, **kwargs):  # the user presses Ctrl-C while a shard is being written
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(a, *args, **kwargs)

    out = tmp_path / "out"
    argv = ["build", "--input", small_corpus, "--vocab", vocab_file, "--output", str(out), "--num-shards", "2"]
    monkeypatch.setattr(shards.np, "ascontiguousarray", interrupted)
    assert cli.main(argv) == 130
    err = capsys.readouterr().err
    assert "interrupted; the shards finished so far are kept" in err and "run the same command again" in err
    assert not [n for n in os.listdir(out) if ".tmp" in n] and not (out / "manifest.json").exists()
    monkeypatch.setattr(shards.np, "ascontiguousarray", real)
    # What a worker process killed mid-write (--workers > 1) leaves: removed when its shard is rebuilt.
    stale = out / (shards.shard_name(1, 2) + ".bin.tmp-99999")
    stale.write_bytes(b"partial")
    assert cli.main(argv) == 0 and (out / "manifest.json").exists()
    assert not [n for n in os.listdir(out) if ".tmp" in n]


def _workers_ignoring_sigint(parent: int) -> int:
    """How many of ``parent``'s pool workers (spawned ``spawn_main`` children) ignore SIGINT."""
    with open(f"/proc/{parent}/task/{parent}/children") as f:
        children = f.read().split()
    count = 0
    for pid in children:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"spawn_main" not in f.read():
                    continue  # e.g. multiprocessing's resource tracker
            with open(f"/proc/{pid}/status") as f:
                ignored = next(int(line.split()[1], 16) for line in f if line.startswith("SigIgn:"))
        except (OSError, StopIteration):
            continue
        count += bool(ignored & (1 << (signal.SIGINT - 1)))
    return count


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the workers' signal masks from /proc")
def test_ctrl_c_with_workers_prints_one_message_and_no_worker_tracebacks(tmp_path, vocab_file):
    """Ctrl-C with ``--workers 2``: a terminal signals the whole process group, workers included.
    Workers ignore SIGINT (else each could print its own KeyboardInterrupt traceback), and the
    parent tears the pool down: one message, exit 130, no temporary file left."""
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "bert_jax.cli", "data", "build", "--input", *CORPUS_FILES,
                             "--vocab", vocab_file, "--output", str(out), "--num-shards", "16",
                             "--dupe-factor", "100", "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()},
                            # as from a terminal: a job started in the background (e.g. `cmd &` in a
                            # script) inherits SIGINT ignored, and Python then leaves it ignored
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if _workers_ignoring_sigint(proc.pid) >= 2:
                    break
            except OSError:
                pass
            time.sleep(0.02)
        assert proc.poll() is None, "the build finished before both workers ignored SIGINT"
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # never leave a build running beside the other tests
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    assert err.count("interrupted; the shards finished so far are kept") == 1
    assert not [n for n in os.listdir(out) if ".tmp" in n] and not (out / "manifest.json").exists()
    # nor the partition's scratch copy of the corpus (it was left, as large as the inputs)
    assert not (out / build.PARTIAL).exists(), os.listdir(out / build.PARTIAL)


# 4 -------------------------------------------------------------------------------------------

def test_rebuild_replaces_a_shard_with_a_flipped_byte(tmp_path, small_corpus, vocab_file, caplog):
    opts = make_options([small_corpus], vocab_file, num_shards=3)
    out = str(tmp_path / "out")
    build.build(opts, out)
    reference = dir_bytes(out)
    bad = os.path.join(out, shards.shard_name(1, 3) + ".bin")
    with open(bad, "r+b") as f:
        f.seek(5000)
        byte = f.read(1)
        f.seek(5000)
        f.write(bytes([byte[0] ^ 0x01]))
    with pytest.raises(shards.ShardError, match="fails its sha256"):
        data_pipeline.PretrainingLoader(out, 8, prefetch=0)
    mtime0 = os.path.getmtime(os.path.join(out, shards.shard_name(0, 3) + ".bin"))
    with caplog.at_level(logging.INFO):
        build.build(opts, out)
    assert f"shard 1 is damaged ({bad} fails its sha256 check" in caplog.text and "rebuilding it" in caplog.text
    assert "building 1 shard(s) of 3 (2 already built and verified)" in caplog.text
    assert dir_bytes(out) == reference
    assert os.path.getmtime(os.path.join(out, shards.shard_name(0, 3) + ".bin")) == mtime0  # good ones kept
    data_pipeline.PretrainingLoader(out, 8, prefetch=0)


def test_an_edited_vocabulary_beside_the_shards_is_refused_with_advice_that_works(tmp_path, small_corpus,
                                                                                   vocab_file):
    """A vocab.txt edited after the build named "the manifest's vocab_hash" and nothing to do; the
    refusal names both sizes and what to do, and putting back the built-with vocabulary opens."""
    opts = make_options([small_corpus], vocab_file, num_shards=2)
    out = str(tmp_path / "out")
    build.build(opts, out)
    path = os.path.join(out, shards.VOCAB)
    original = open(path, encoding="utf-8").read()
    with open(path, "a", encoding="utf-8") as f:
        f.write("[NEW]\n")
    with pytest.raises(shards.ShardError) as err:
        data_pipeline.PretrainingLoader(out, 8, prefetch=0)
    size = len(original.splitlines())
    assert str(err.value).startswith(f"{path} ({size + 1} tokens) is not the vocabulary these shards were built "
                                     f"with ({size} tokens, sha256 ")
    assert "Put back the vocab.txt they were built with, or build shards with the new one" in str(err.value)
    with open(path, "w", encoding="utf-8") as f:
        f.write(original)
    assert data_pipeline.PretrainingLoader(out, 8, prefetch=0).num_examples > 0


def test_rebuild_replaces_a_shard_with_a_damaged_sidecar(tmp_path, small_corpus, vocab_file, caplog):
    opts = make_options([small_corpus], vocab_file, num_shards=2)
    out = str(tmp_path / "out")
    build.build(opts, out)
    reference = dir_bytes(out)
    side = os.path.join(out, shards.shard_name(0, 2) + ".json")
    with open(side, "r+b") as f:
        f.truncate(40)
    with caplog.at_level(logging.WARNING):
        build.build(opts, out)
    assert f"shard 0 is damaged ({side} is damaged" in caplog.text
    assert dir_bytes(out) == reference


# 5 -------------------------------------------------------------------------------------------

def test_overwrite_deletes_only_what_the_build_wrote(tmp_path, small_corpus, vocab_file):
    out = tmp_path / "out"
    out.mkdir()
    user = {"shard-important.txt": b"do not delete\n", "notes.txt": b"mine\n", "shard-00000-of-00009.csv": b"1,2\n"}
    for name, data in user.items():
        (out / name).write_bytes(data)
    build.build(make_options([small_corpus], vocab_file, num_shards=3), str(out))
    old_shards = [shards.shard_name(i, 3) for i in range(3)]
    build.build(make_options([small_corpus], vocab_file, num_shards=2), str(out), overwrite=True)
    names = set(os.listdir(out))
    for name, data in user.items():
        assert (out / name).read_bytes() == data
    assert not any(n.startswith(tuple(old_shards)) for n in names)
    assert shards.read_json(str(out / shards.MANIFEST))["num_shards"] == 2
    built = {n for n in names if n not in user}
    assert built == {shards.MANIFEST, shards.OPTIONS, shards.VOCAB} | {
        shards.shard_name(i, 2) + ext for i in range(2) for ext in (".bin", ".json")}


def test_directory_with_user_shard_named_file_is_not_mistaken_for_a_build(tmp_path, small_corpus, vocab_file):
    out = tmp_path / "out"
    out.mkdir()
    (out / "shard-important.txt").write_bytes(b"do not delete\n")
    assert build.build(make_options([small_corpus], vocab_file, num_shards=1), str(out)) is not None
    assert (out / "shard-important.txt").read_bytes() == b"do not delete\n"


# 6 -------------------------------------------------------------------------------------------

def test_max_predictions_above_the_sequence_is_capped_with_one_warning(tmp_path, small_corpus, vocab_file, caplog):
    opts = make_options([small_corpus], vocab_file, num_shards=1, max_seq_length=16, max_predictions_per_seq=40)
    out = str(tmp_path / "out")
    with caplog.at_level(logging.WARNING):
        manifest = build.build(opts, out)
    capped = [r for r in caplog.records if "--max-predictions-per-seq" in r.getMessage()]
    assert len(capped) == 1
    assert "exceeds the 13 maskable tokens of a 16-token row" in capped[0].getMessage()
    assert "data.max_predictions_per_seq to 13" in capped[0].getMessage()
    assert manifest["max_predictions_per_seq"] == 13 and manifest["max_predictions_per_seq_requested"] == 40
    loader = data_pipeline.PretrainingLoader(out, 8, prefetch=0)
    batch = next(iter(loader))
    assert batch["masked_lm_positions"].shape == (8, 13)
    # The capped value names the same build: re-running with it is not "other options".
    assert build.build(make_options([small_corpus], vocab_file, num_shards=1, max_seq_length=16,
                                    max_predictions_per_seq=13), out)["max_predictions_per_seq"] == 13


# 7 -------------------------------------------------------------------------------------------

def test_truncated_manifest_names_the_file_and_rebuild_fixes_it(tmp_path, small_corpus, vocab_file, capsys):
    opts = make_options([small_corpus], vocab_file, num_shards=2)
    out = str(tmp_path / "out")
    build.build(opts, out)
    reference = dir_bytes(out)
    path = os.path.join(out, shards.MANIFEST)
    with open(path, "r+b") as f:
        f.truncate(300)
    with pytest.raises(shards.ShardError) as info:
        data_pipeline.PretrainingLoader(out, 8, prefetch=0)
    message = str(info.value)
    assert f"{path} is damaged (300 bytes, not valid JSON" in message
    assert "re-run the same `bert-jax data build` command" in message
    assert cli.main(["inspect", out]) == 2
    assert f"{path} is damaged" in capsys.readouterr().err
    shard_mtime = os.path.getmtime(os.path.join(out, shards.shard_name(0, 2) + ".bin"))
    build.build(opts, out)  # the advice: the same build command
    assert dir_bytes(out) == reference
    assert os.path.getmtime(os.path.join(out, shards.shard_name(0, 2) + ".bin")) == shard_mtime
    assert data_pipeline.PretrainingLoader(out, 8, prefetch=0).num_examples == shards.read_json(path)["num_examples"]


def test_damaged_build_options_names_the_file(tmp_path, small_corpus, vocab_file):
    opts = make_options([small_corpus], vocab_file, num_shards=2)
    out = str(tmp_path / "out")
    build.build(opts, out, shard_range=(0, 1))
    path = os.path.join(out, shards.OPTIONS)
    with open(path, "r+b") as f:
        f.truncate(20)
    with pytest.raises(shards.ShardError, match=rf"{path} is damaged .*pass --overwrite"):
        build.build(opts, out)
    assert build.build(opts, out, overwrite=True) is not None
    fresh = str(tmp_path / "fresh")
    build.build(opts, fresh)
    assert dir_bytes(out) == dir_bytes(fresh)


def test_input_rewritten_during_the_build_stops_it(tmp_path, two_files, vocab_file, monkeypatch):
    a, b = two_files
    real_partition = build.partition

    def partition_then_edit(*args, **kwargs):
        counts = real_partition(*args, **kwargs)
        with open(b, "a", encoding="utf-8") as f:  # another process appends while the build runs
            f.write("\n" + "\n".join(read_documents(str(CORPUS_DIR / "howto.txt"), 1)[0]) + "\n")
        return counts

    monkeypatch.setattr(build, "partition", partition_then_edit)
    out = tmp_path / "out"
    with pytest.raises(build.BuildError, match=rf"input file {b} changed while the build was reading it"):
        build.build(make_options([a, b], vocab_file, num_shards=2), str(out))
    assert not any(n.endswith(".bin") for n in os.listdir(out)) and not (out / shards.MANIFEST).exists()


def test_a_vocab_txt_of_the_users_in_the_output_is_refused_not_kept(tmp_path, two_files, vocab_file):
    """An --output holding a vocab.txt of another vocabulary (never written by a build) was kept
    as the shards' vocabulary: the build said it wrote them, `data inspect` crashed with an
    IndexError and pretrain refused the shards. It is refused before anything is written; moving
    it out (the advice) builds, and --overwrite replaces it."""
    a, _ = two_files
    out = tmp_path / "out"
    out.mkdir()
    tokens = open(vocab_file, encoding="utf-8").read().split("\n")
    mine = "\n".join(tokens[:5] + tokens[5:][::-1])  # the same tokens at other ids
    (out / "vocab.txt").write_text(mine, encoding="utf-8")
    args = ["--input", a, "--vocab", vocab_file, "--output", str(out), "--max-seq-length", "64",
            "--max-predictions-per-seq", "10", "--dupe-factor", "1", "--num-shards", "1"]
    res = _cli_build(*args)
    assert res.returncode == 2, res.stderr
    assert f"{out / 'vocab.txt'} exists and is not the vocabulary of --vocab {vocab_file}" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert sorted(os.listdir(out)) == ["vocab.txt"] and (out / "vocab.txt").read_text(encoding="utf-8") == mine
    shutil.move(str(out / "vocab.txt"), str(tmp_path / "mine.txt"))  # "move it out of the directory"
    assert _cli_build(*args).returncode == 0
    assert (out / "vocab.txt").read_bytes() == open(vocab_file, "rb").read().rstrip(b"\n") + b"\n"
    # the same from the start, with --overwrite: replaced
    other = tmp_path / "other"
    other.mkdir()
    (other / "vocab.txt").write_text(mine, encoding="utf-8")
    res = _cli_build(*[other.as_posix() if x == str(out) else x for x in args], "--overwrite")
    assert res.returncode == 0, res.stderr
    assert (other / "vocab.txt").read_bytes() == (out / "vocab.txt").read_bytes()
    assert shards.read_json(str(other / shards.MANIFEST))["num_shards"] == 1
    # the same tokens with other line endings, or --vocab naming that very file, are not "another vocabulary"
    for name, content in (("crlf", open(vocab_file, "rb").read().replace(b"\n", b"\r\n")),
                          ("same", open(vocab_file, "rb").read())):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "vocab.txt").write_bytes(content)
        given = str(folder / "vocab.txt") if name == "same" else vocab_file
        res = _cli_build(*[folder.as_posix() if x == str(out) else given if x == vocab_file else x for x in args])
        assert res.returncode == 0, res.stderr
        assert (folder / "vocab.txt").read_bytes() == content  # the user's file, untouched


def test_a_cased_vocabulary_is_built_cased_without_a_flag_and_inspect_output_may_be_cut(tmp_path, two_files, vocab_file):
    """`tokenizer train --cased` writes do_lower_case=false beside its vocab.txt; `data build`
    without a casing flag lower-cased the text anyway, unsaid. It now follows that file (a flag
    still wins). `data inspect ... | head -1` was a BrokenPipeError traceback, and a negative
    --max-examples a KeyError traceback."""
    import json
    a, _ = two_files
    cased = tmp_path / "cased"
    cased.mkdir()
    shutil.copy(vocab_file, cased / "vocab.txt")
    (cased / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}))
    common = ["--input", a, "--max-seq-length", "64", "--max-predictions-per-seq", "10", "--num-shards", "1"]
    for flags, lowered in (([], False), (["--lower-case"], True)):
        out = tmp_path / f"out_{lowered}"
        done = _cli_build(*common, "--vocab", str(cased / "vocab.txt"), "--output", str(out), *flags)
        assert done.returncode == 0, done.stderr
        assert shards.read_json(str(out / shards.MANIFEST))["tokenizer"]["do_lower_case"] is lowered
    out = str(tmp_path / "out_True")
    inspect = [sys.executable, "-m", "bert_jax.cli", "data", "inspect", out]
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    bad = subprocess.run([*inspect, "--max-examples", "-1"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "--max-examples must be a whole number >= 0, got '-1'" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr
    proc = subprocess.Popen([*inspect, "--examples", "400"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout.readline()  # what `head -1` reads, then it goes away
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and "Traceback" not in err and "BrokenPipe" not in err, err
    # the shards' vocab.txt replaced by a smaller one (a convert --overwrite into the folder): an
    # IndexError traceback; now the loader's refusal, which names the file and what to do
    (tmp_path / "out_True" / "vocab.txt").write_text("".join(f"{t}\n" for t in open(vocab_file).read().split()[:500]))
    bad = subprocess.run(inspect, capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "is not the vocabulary these shards were built with" in bad.stderr, bad.stderr
    assert "Put back the vocab.txt" in bad.stderr and "Traceback" not in bad.stderr


def test_an_hf_input_naming_a_missing_local_path_is_refused_before_anything_is_written(tmp_path, vocab_file):
    """`--input hf:<mistyped folder>` went to the Hub as a dataset name: ~25 s of network retries
    (each warning printed twice), a ConnectionError traceback, and build_options.json and
    vocab.txt left in --output. A path that does not exist is now refused at once, naming it,
    with nothing written; an existing folder of data files is read by `datasets` as before."""
    out = tmp_path / "out"
    spec = f"hf:{tmp_path / 'missing_ds'}"
    done = _cli_build("--input", spec, "--vocab", vocab_file, "--output", str(out))
    assert done.returncode != 0 and f"--input {spec}: " in done.stderr and "does not exist" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and not out.exists()
    files = tmp_path / "jsonds"
    files.mkdir()
    docs = read_documents(str(CORPUS_DIR / "tutorial.txt"), 60)
    (files / "train.jsonl").write_text("".join(json.dumps({"text": " ".join(d)}) + "\n" for d in docs))
    done = _cli_build("--input", f"hf:{files}", "--vocab", vocab_file, "--output", str(out), "--num-shards", "1",
                      "--max-seq-length", "64", "--max-predictions-per-seq", "10")
    assert done.returncode == 0, done.stderr
    assert shards.read_json(str(out / shards.MANIFEST))["num_documents"] == len(docs)
