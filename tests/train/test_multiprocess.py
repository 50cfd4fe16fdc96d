"""``bert-jax pretrain`` on 2 processes x 4 CPU devices (gloo collectives over
localhost) against 1 process x 8 devices: per-host data slicing, collective
checkpoint saves, agreement on SIGTERM, and only process 0 writing metrics."""

import re
import signal
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("jax")

from bert_jax import checkpointing, launch  # noqa: E402
from train_helpers import ROOT, TINY, cli, cli_env, logged_steps, losses, train_rows  # noqa: E402

STEPS = 10


def _args(shards, workdir, *extra):
    return ["--config", TINY, "--workdir", str(workdir), f"--config.data.train_dir={shards}",
            "--config.model.hidden_size=32", "--config.model.intermediate_size=64", "--config.log_every_steps=1",
            "--config.optim.warmup_steps=2", "--config.eval_every_steps=0", "--config.global_batch_size=8",
            f"--config.optim.total_steps={STEPS}", "--config.checkpoint.every_steps=4", *extra]


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _start_pair(shards, workdir, *extra):
    port = _free_port()
    return [subprocess.Popen([sys.executable, "-m", "bert_jax.cli", "pretrain", *_args(
        shards, workdir, *extra, f"--config.distributed.coordinator_address='localhost:{port}'",
        "--config.distributed.num_processes=2", f"--config.distributed.process_id={i}")],
        env=cli_env(4), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for i in range(2)]


@pytest.fixture(scope="module")
def two_process_runs(corpus_shards, tmp_path_factory):
    """A 1-process 8-device reference run, and a 2 x 4-device run whose process 1 alone
    gets SIGTERM after step 3 is logged, then restarted to the end."""
    shards, root = corpus_shards["shards"], tmp_path_factory.mktemp("two_processes")
    ref = cli("pretrain", _args(shards, root / "ref"), 8)
    assert ref.returncode == 0, ref.stderr[-3000:]
    run = root / "run"
    procs = _start_pair(shards, run)
    deadline = time.time() + 600
    while logged_steps(run) < 3 and time.time() < deadline and all(p.poll() is None for p in procs):
        time.sleep(0.05)
    procs[1].send_signal(signal.SIGTERM)
    first = [(p.communicate(timeout=600)[1], p.returncode) for p in procs]
    stopped_rows = [s for s, _ in train_rows(run)]
    latest = checkpointing.make_manager(str(run / "checkpoints")).latest_step()
    procs = _start_pair(shards, run)
    second = [(p.communicate(timeout=600)[1], p.returncode) for p in procs]
    return dict(ref=root / "ref", run=run, first=first, second=second, stopped_rows=stopped_rows, latest=latest)


@pytest.mark.slow
def test_two_processes_train_like_one(two_process_runs):
    """Both processes stop at the same step and save it together; restarted, they continue
    from it. Every step is logged once (only process 0 writes), and the losses equal the
    1-process 8-device run within 1e-5 relative (each host read only its half of a batch)."""
    r = two_process_runs
    stops = [re.findall(r"SIGTERM: saving a checkpoint at step (\d+)", err) for err, _ in r["first"]]
    assert len(stops[0]) == len(stops[1]) == 1 and stops[0] == stops[1], stops
    stopped = int(stops[0][0])
    assert 3 <= stopped < STEPS and r["first"][1][1] == launch.PREEMPTED_EXIT_CODE
    assert r["latest"] == stopped and r["stopped_rows"] == list(range(1, stopped + 1))
    assert [code for _, code in r["second"]] == [0, 0], r["second"][0][0][-2000:] + r["second"][1][0][-2000:]
    assert [s for s, _ in train_rows(r["run"])] == list(range(1, STEPS + 1))  # each step once: one writer
    got, want = losses(r["run"]), losses(r["ref"])
    for step in want:
        assert abs(got[step] - want[step]) <= 1e-5 * abs(want[step]), (step, got[step], want[step])


@pytest.mark.slow
def test_every_process_exits_143_after_a_sigterm_to_one(two_process_runs):
    codes = [code for _, code in two_process_runs["first"]]
    assert codes == [launch.PREEMPTED_EXIT_CODE] * 2, codes


@pytest.mark.slow
def test_two_processes_warm_start_from_a_one_process_run(two_process_runs, corpus_shards, tmp_path):
    """``init_from`` a run saved by one process, read by each of two: both start from its
    parameters (step-1..3 losses equal a 1-process 8-device run from the same source within
    1e-5 relative). Each process restores the checkpoint onto one of its own CPU devices."""
    shards, source = corpus_shards["shards"], two_process_runs["ref"]
    warm = [f"--config.init_from='{source}'", "--config.optim.total_steps=3"]
    one = cli("pretrain", _args(shards, tmp_path / "one", *warm), 8)
    assert one.returncode == 0, one.stderr[-3000:]
    procs = _start_pair(shards, tmp_path / "two", *warm)
    done = [(p.communicate(timeout=600)[1], p.returncode) for p in procs]
    assert [code for _, code in done] == [0, 0], done[0][0][-2000:] + done[1][0][-2000:]
    got, want = losses(tmp_path / "two"), losses(tmp_path / "one")
    assert sorted(got) == sorted(want) == [1, 2, 3]
    for step in want:
        assert abs(got[step] - want[step]) <= 1e-5 * abs(want[step]), (step, got[step], want[step])


@pytest.mark.slow
def test_a_two_process_run_converts_in_one_process(two_process_runs, tmp_path):
    """``bert-jax convert`` of a run saved by two processes, read by one (docs/tpu_pod.md said this
    failed with "Topology mismatch"): it exports the run's final parameters."""
    import numpy as np
    from bert_jax.convert import cli as convert_cli
    from bert_jax.modeling import BertForPreTraining
    run = two_process_runs["run"]
    assert convert_cli.main(["--from", "bert-jax", str(run), "--to-hf", str(tmp_path / "hf")]) == 0
    saved, _ = checkpointing.restore_params_to_cpu(str(run / "checkpoints"))
    exported = BertForPreTraining.from_pretrained(tmp_path / "hf").params
    np.testing.assert_array_equal(np.asarray(exported["bert"]["embeddings"]["word_embeddings"]["embedding"]),
                                  np.asarray(saved["bert"]["embeddings"]["word_embeddings"]["embedding"]))
