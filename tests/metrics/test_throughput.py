"""Throughput figures count training only: an interval with no step reports nothing, and time
spent evaluating is left out of the interval it fell in."""

import dataclasses
import json
import os
import time

import pytest

from bert_jax.metrics import writer


def test_interval_without_a_step_reports_nothing(monkeypatch):
    clock = iter([0.0, 2.0, 3.0, 4.0])
    monkeypatch.setattr(writer.time, "perf_counter", lambda: next(clock))
    t = writer.Throughput(4, 128, 1000.0, 1, 100.0)
    assert t.read() == {}  # was one invented full-length step
    t.tick()
    assert t.read()["step_time_s"] == pytest.approx(1.0)  # the empty interval did not carry over


def test_excluded_seconds_are_left_out_of_the_rates(monkeypatch):
    clock = iter([0.0, 5.0, 6.0])
    monkeypatch.setattr(writer.time, "perf_counter", lambda: next(clock))
    t = writer.Throughput(4, 128, 1000.0, 1, 100.0)
    t.tick(), t.tick()
    t.exclude(3.0)  # 5 s in all, 3 of them evaluating: 2 steps in 2 s
    out = t.read()
    assert out["step_time_s"] == pytest.approx(1.0) and out["seq_per_s"] == pytest.approx(4.0)
    assert out["tokens_per_s"] == pytest.approx(512.0) and out["mfu"] == pytest.approx(2000.0 / 2 / 100)
    t.tick()
    assert t.read()["step_time_s"] == pytest.approx(1.0)  # the exclusion was for that interval only


def test_what_the_rows_held_is_counted_beside_what_was_computed(monkeypatch):
    """Packed rows: seq_per_s counts rows and tokens_per_s positions, padding included, so the
    logs hid what packing gains; real tokens and instances are now rates of their own."""
    clock = iter([0.0, 2.0])
    monkeypatch.setattr(writer.time, "perf_counter", lambda: next(clock))
    t = writer.Throughput(4, 128, 1000.0, 1, 100.0)
    t.tick(None, {"real_tokens": 400, "examples": 10})
    t.tick(None, {"real_tokens": 500, "examples": 11})
    out = t.read()
    assert out["seq_per_s"] == pytest.approx(4.0) and out["tokens_per_s"] == pytest.approx(512.0)
    assert out["real_tokens_per_s"] == pytest.approx(450.0) and out["examples_per_s"] == pytest.approx(10.5)
    # rows of 4 choices x 128 positions (multiple choice): the batch's own position count wins
    clock = iter([4.0])
    t.tick(None, {"positions": 4 * 4 * 128, "real_tokens": 900})
    out = t.read()
    assert out["tokens_per_s"] == pytest.approx(1024.0) and out["real_tokens_per_s"] == pytest.approx(450.0)
    assert "positions_per_s" not in out and out["seq_per_s"] == pytest.approx(2.0)


def test_the_first_step_is_reported_apart_not_as_a_slow_interval(monkeypatch):
    """A process's first step holds its compile (seconds where a step takes milliseconds): the
    first logged interval showed 17 seq/s of a model that runs 1,700."""
    clock = iter([0.0, 10.0, 12.0, 13.0, 14.0])
    monkeypatch.setattr(writer.time, "perf_counter", lambda: next(clock))
    t = writer.Throughput(4, 128, 1000.0, 1, 100.0)
    t.start_over()  # at 10 s: the first step (and its compile) ended
    t.tick(), t.tick()
    out = t.read()  # at 12 s
    assert out["first_step_s"] == pytest.approx(10.0) and out["step_time_s"] == pytest.approx(1.0)
    t.tick()
    assert "first_step_s" not in t.read()  # reported once
    assert t.read() == {}


def test_the_metrics_hook_starts_the_clock_after_the_first_step(monkeypatch):
    """The loop's side of first_step_s: the hook waits for the first step once, starts the clock
    over, and ticks every later step (the first is not counted as a step of the rate)."""
    import jax.numpy as jnp
    from bert_jax import hooks

    class Rows:
        def __init__(self):
            self.rows = []

        def advance(self, step):
            pass

        def write(self, step, values, prefix="train"):
            self.rows.append((step, values))

    clock = iter([0.0, 7.0, 8.0])  # made at 0; first step done at 7; read at 8
    monkeypatch.setattr(writer.time, "perf_counter", lambda: next(clock))
    rows = Rows()
    hook = hooks.MetricsHook(rows, writer.Throughput(4, 128, 1000.0, 1, 100.0), every=3, total_steps=3)
    for step in (1, 2, 3):
        hook(step, None, {"loss": jnp.float32(1.0)})
    (step, values), = rows.rows
    assert step == 3 and values["first_step_s"] == pytest.approx(7.0)
    assert values["step_time_s"] == pytest.approx(0.5)  # steps 2 and 3 in the 1 s after the first


@pytest.mark.slow  # ~20 s; the default run keeps a margin under its 20 minutes
def test_the_loop_leaves_evaluation_time_out_of_step_time(tmp_path):
    """A pretraining run whose evaluation takes 2 s, every 2 steps: without the exclusion every
    interval after an evaluation would report >= 1 s per step of a model that steps in ms; the
    first step's compile is reported apart, as first_step_s."""
    pytest.importorskip("tokenizers")
    from data_pipeline.build import BuildOptions, build
    from bert_jax import launch
    from bert_jax.tasks.pretraining import pretraining_job
    from bert_jax.trainer import run_training
    from bert_jax.vocab import train_wordpiece
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    corpus = [os.path.join(root, "data", "corpus", "faq.txt")]
    train_wordpiece(corpus, 500, output_dir=str(tmp_path / "vocab"), progress=False)
    build(BuildOptions(inputs=tuple(corpus), vocab_file=str(tmp_path / "vocab" / "vocab.txt"), max_seq_length=32,
                       max_predictions_per_seq=5, dupe_factor=1, seed=1), str(tmp_path / "shards"))
    cfg = launch.load_config(os.path.join(root, "configs", "pretrain", "tiny.py"), [
        f"data.train_dir={str(tmp_path / 'shards')!r}", f"data.eval_dir={str(tmp_path / 'shards')!r}",
        "data.max_seq_length=32", "data.max_predictions_per_seq=5", "model.hidden_size=32",
        "model.intermediate_size=64", "global_batch_size=4", "optim.total_steps=8", "optim.warmup_steps=1",
        "log_every_steps=2", "eval_every_steps=2", "eval_steps=1", "checkpoint.every_steps=0"])
    make_job = pretraining_job()

    def slow_eval_job(*args, **kwargs):
        job = make_job(*args, **kwargs)

        def evaluate(*a):
            time.sleep(2.0)
            return job.evaluate(*a)
        return dataclasses.replace(job, evaluate=evaluate)

    run_training(cfg, str(tmp_path / "run"), slow_eval_job)
    with open(tmp_path / "run" / "metrics.jsonl") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    times = {r["step"]: r["train/step_time_s"] for r in rows if "train/step_time_s" in r}
    assert sorted(times) == [2, 4, 6, 8]
    assert all(t < 0.5 for t in times.values()), times
    first = {r["step"]: r["train/first_step_s"] for r in rows if "train/first_step_s" in r}
    assert list(first) == [2] and first[2] > times[2], (first, times)  # the compile, once


def test_the_log_line_of_a_finetuning_evaluation_names_its_metrics(tmp_path, caplog):
    """A fine-tuning evaluation logged "eval step 4: " with nothing after it (only pretraining's
    metric names were shown); its own metrics are shown, baselines and skip counts left out."""
    import logging
    from bert_jax.metrics import MetricWriter
    writer = MetricWriter(str(tmp_path), 4, enabled=True, progress=False)
    with caplog.at_level(logging.INFO, logger="bert_jax"):
        writer.write(4, {"accuracy": 0.625, "f1": 0.5, "baseline_majority": 0.5, "skipped": 0.0}, prefix="eval")
        writer.write(4, {"loss": 1.25, "grad_norm": 3.0}, prefix="train")
    writer.close()
    assert [r.getMessage() for r in caplog.records] == ["eval step 4: accuracy=0.625, f1=0.5",
                                                        "train step 4: loss=1.25"]


def test_the_tensorboard_writer_does_not_import_torch(tmp_path):
    """tensorboardX imports PyTorch whenever it is installed (about 1 s of every run's start-up in
    a Hugging Face environment) although the writer only gets floats. The scalars still reach the
    event file, and a later ``import torch`` still works."""
    import importlib.util
    import subprocess
    import sys
    if importlib.util.find_spec("torch") is None:  # (not imported here: the test needs a process without it)
        pytest.skip("torch is not installed")
    code = (
        "import glob, sys\n"
        "from bert_jax.metrics import MetricWriter\n"
        f"w = MetricWriter({str(tmp_path)!r}, 4, enabled=True, progress=False)\n"
        "w.write(3, {'loss': 1.25}); w.close()\n"
        "print('torch' in sys.modules)\n"
        "from tensorboardX.proto import event_pb2\n"  # records: length, crc, Event, crc
        "import struct\n"
        "data = open(glob.glob(sys.argv[1] + '/tensorboard/events.*')[0], 'rb').read()\n"
        "pos, values = 0, []\n"
        "while pos < len(data):\n"
        "    n, = struct.unpack('<Q', data[pos:pos + 8]); e = event_pb2.Event()\n"
        "    e.ParseFromString(data[pos + 12:pos + 12 + n]); pos += 16 + n\n"
        "    values += [(e.step, v.tag, v.simple_value) for v in e.summary.value]\n"
        "print(values)\n"
        "import torch; print(torch.tensor([2.0]).item())\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["False", "[(3, 'train/loss', 1.25)]", "2.0"], out.stderr
