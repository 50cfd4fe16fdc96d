"""Helpers shared by the training tests: corpus shards, ``metrics.jsonl`` readers,
the CLI in a subprocess with N simulated CPU devices, and in-process preemption."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TINY = os.path.join(ROOT, "configs", "pretrain", "tiny.py")
QUICKSTART = os.path.join(ROOT, "configs", "pretrain", "quickstart.py")
DOCS = os.path.join(ROOT, "configs", "finetune", "docs_section.py")
CORPUS_DIR = os.path.join(ROOT, "data", "corpus")
CORPUS = sorted(glob.glob(os.path.join(CORPUS_DIR, "*.txt")))
SEQ, PRED = 64, 10


def train_vocab(files, out_dir: str, vocab_size: int = 1000) -> str:
    """A lower-cased WordPiece vocabulary trained on ``files``; returns ``out_dir/vocab.txt``."""
    import tokenizers
    tok = tokenizers.BertWordPieceTokenizer(lowercase=True)
    tok.train(list(files), vocab_size=vocab_size, min_frequency=2, show_progress=False)
    tok.save_model(out_dir)
    return os.path.join(out_dir, "vocab.txt")


def build_shards(files, vocab: str, out: str, *, seq: int = SEQ, pred: int = PRED, seed: int = 7) -> str:
    """``bert-jax data build`` of ``files`` (one pass over the text) into ``out``."""
    from data_pipeline import cli as data_cli
    code = data_cli.main(["build", "--input", *files, "--vocab", vocab, "--output", out,
                          "--max-seq-length", str(seq), "--max-predictions-per-seq", str(pred),
                          "--dupe-factor", "1", "--seed", str(seed)])
    assert code in (0, None), f"data build of {files} failed with {code}"
    return out


def records(workdir) -> list[dict]:
    """Every row of ``workdir/metrics.jsonl`` in the order written (resumed runs append)."""
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def train_rows(workdir) -> list[tuple[int, float]]:
    """``(step, train/loss)`` of every training row, in the order written."""
    return [(r["step"], r["train/loss"]) for r in records(workdir) if "train/loss" in r]


def losses(workdir) -> dict[int, float]:
    """step -> train loss; asserts no step was logged twice (with ``log_every_steps=1``
    a step logged twice was trained twice)."""
    rows = train_rows(workdir)
    steps = [s for s, _ in rows]
    assert len(steps) == len(set(steps)), f"steps logged more than once in {workdir}: {steps}"
    return dict(rows)


def logged_steps(workdir) -> int:
    """Rows written so far (0 before the file exists), for waiting on progress."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return sum(1 for line in f if '"train/loss"' in line)


def assert_resumed_at(result: dict, workdir, rows_before: int, checkpoint_step: int, total: int) -> None:
    """The restarted run began at the checkpoint: ``start_step`` is its step, and after the
    rows up to the checkpoint (rows the interrupted run logged past it are dropped on resume)
    come exactly steps ``checkpoint_step + 1 .. total``, each once. ``rows_before``: rows
    the file held before the restart (at least those up to the checkpoint)."""
    assert result["start_step"] == checkpoint_step, (result["start_step"], checkpoint_step)
    steps = [s for s, _ in train_rows(workdir)]
    upto = [s for s in steps if s <= checkpoint_step]
    assert upto == list(range(1, checkpoint_step + 1)) or len(upto) <= rows_before, upto
    appended = steps[len(upto):]
    assert appended == list(range(checkpoint_step + 1, total + 1)), appended


def preempt_after(run, workdir, step: int):
    """Call ``run()`` while a thread sends this process SIGTERM once ``step`` train rows
    are in ``workdir/metrics.jsonl``; returns ``run()``'s result."""
    def terminate():
        while logged_steps(workdir) < step:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=terminate, daemon=True)
    thread.start()
    result = run()
    thread.join()
    return result


def cli_env(devices: int) -> dict:
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def cli(mode: str, args, devices: int, timeout: int = 600) -> subprocess.CompletedProcess:
    """``python -m bert_jax.cli MODE ARGS`` with ``devices`` simulated CPU devices."""
    return subprocess.run([sys.executable, "-m", "bert_jax.cli", mode, *args], env=cli_env(devices), cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def split_documents(files, every: int, out_dir: str) -> tuple[str, str]:
    """Write the corpus ``files`` (BERT format: blank line between documents) back out as
    ``train.txt`` and ``heldout.txt``: every ``every``-th document of each file is held out.
    Returns the two paths."""
    train, held = [], []
    for path in files:
        with open(path, encoding="utf-8") as f:
            docs = [d.strip("\n") for d in f.read().split("\n\n") if d.strip()]
        for i, doc in enumerate(docs):
            (held if i % every == every - 1 else train).append(doc)
    paths = []
    for name, docs in (("train.txt", train), ("heldout.txt", held)):
        path = os.path.join(out_dir, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n\n".join(docs) + "\n")
        paths.append(path)
    return paths[0], paths[1]
