"""End to end: ``run_pretraining`` / ``bert-jax pretrain`` on shards built from the
bundled corpus -- learning on held-out text, exact resume (a restart continues from
the checkpoint's step and trains no step twice), preemption, stopping on a non-finite
loss, refusals of bad input."""

import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

jax = pytest.importorskip("jax")

from bert_jax import checkpointing, launch  # noqa: E402
from bert_jax.train import NonFiniteLoss  # noqa: E402
from data_pipeline.loader import PretrainingLoader  # noqa: E402
from train_helpers import (CORPUS, ROOT, TINY, assert_resumed_at, build_shards, cli, cli_env,  # noqa: E402
                           logged_steps, losses, preempt_after, records, split_documents, train_rows,
                           train_vocab)


@pytest.fixture(scope="module")
def shards(corpus_shards):
    return corpus_shards["shards"]


def small(shards, *extra):
    """The tiny recipe shrunk further (hidden 32) for the mechanics tests."""
    return launch.load_config(TINY, [f"data.train_dir={shards!r}", "model.hidden_size=32",
                                     "model.intermediate_size=64", "global_batch_size=8",
                                     "optim.warmup_steps=2", "log_every_steps=1", "eval_every_steps=0", *extra])


# ----------------------------------------------------------------------------- learning


@pytest.fixture(scope="module")
def heldout(tmp_path_factory):
    """Train shards from 9 of every 10 corpus documents, eval shards from the other
    tenth (1,422 examples); the vocabulary is trained on the training documents only."""
    pytest.importorskip("tokenizers")
    root = tmp_path_factory.mktemp("heldout")
    train_txt, heldout_txt = split_documents(CORPUS, 10, str(root))
    vocab = train_vocab([train_txt], str(root))
    return build_shards([train_txt], vocab, str(root / "train")), build_shards([heldout_txt], vocab, str(root / "eval"))


def eval_baselines(eval_dir, batch_size, seed):
    """Context-free baselines on exactly the batches the run evaluates (same loader,
    seed and batch size): the share of the most frequent masked token, and of the more
    frequent NSP label. Returns ``(mlm, nsp, num_batches)``."""
    loader = PretrainingLoader(eval_dir, batch_size, seed=seed, prefetch=0, num_epochs=1)
    counts, nsp = collections.Counter(), []
    for batch in loader:
        counts.update(batch["masked_lm_ids"][batch["masked_lm_weights"] > 0].tolist())
        nsp.extend(batch["next_sentence_label"].tolist())
    mlm = counts.most_common(1)[0][1] / sum(counts.values())
    return mlm, max(np.mean(nsp), 1 - np.mean(nsp)), loader.steps_per_epoch


def test_tiny_pretraining_learns(heldout, tmp_path):
    """On held-out documents, MLM accuracy beats the best context-free guess (always
    the most frequent masked token, 0.034 here) by a wide margin. Measured at step 300:
    eval 0.085 on ~12,000 masked tokens (binomial std ~0.0025); the threshold is the
    baseline + 0.03."""
    train_dir, eval_dir = heldout
    config = launch.load_config(TINY, [f"data.train_dir={train_dir!r}", f"data.eval_dir={eval_dir!r}",
                                       "optim.total_steps=300", "log_every_steps=50",
                                       "eval_every_steps=300", "checkpoint.every_steps=0"])
    # the run evaluates with seed + 1 (launch.pretraining_job): the same batches as here
    mlm_baseline, _, num_batches = eval_baselines(eval_dir, config.global_batch_size, config.seed + 1)
    assert 0.02 < mlm_baseline < 0.05 and num_batches == 44
    config.eval_steps = num_batches  # the whole eval set, once
    result = launch.run_pretraining(config, str(tmp_path))
    rows = records(tmp_path)
    train = [r for r in rows if "train/mlm_accuracy" in r]
    assert result["step"] == 300 and result["start_step"] == 0
    assert train[-1]["train/loss"] < train[0]["train/loss"] - 0.3
    evals = [r for r in rows if "eval/mlm_accuracy" in r]
    assert [r["step"] for r in evals] == [300]
    assert evals[0]["eval/mlm_accuracy"] > mlm_baseline + 0.03, (evals[0], mlm_baseline)
    assert evals[0]["eval/mlm_accuracy"] == pytest.approx(result["eval"]["mlm_accuracy"])
    for key in ("train/seq_per_s", "train/tokens_per_s", "train/mfu", "train/grad_norm", "train/param_norm",
                "train/learning_rate", "train/nsp_accuracy", "train/step_time_s"):
        assert key in train[-1]
    assert os.listdir(tmp_path / "tensorboard")
    assert json.load(open(tmp_path / "config.json"))["resolved"]["vocab_size"] == 1000
    assert checkpointing.make_manager(str(tmp_path / "checkpoints")).latest_step() == 300


@pytest.mark.slow
def test_quickstart_pretraining_learns_next_sentence_prediction(quickstart_pretrained):
    """The quickstart recipe (tiny shape, 4,000 steps, no dropout) leaves the unigram plateau
    and learns NSP: held-out NSP accuracy beats the more frequent label (0.500) by 0.02 and MLM
    accuracy beats the context-free guess by 0.10. Measured: NSP 0.541 on 2,560 held-out pairs
    (binomial std 0.010, so the threshold sits 2 std above chance and 2 below the figure), MLM
    0.240 vs the guess 0.035. With the 1,200-step tiny recipe (dropout 0.1) NSP stayed at chance."""
    run = quickstart_pretrained
    config = run["config"]
    assert config.optim.total_steps == 4000 and config.model.hidden_dropout_prob == 0.0
    mlm_baseline, nsp_baseline, _ = eval_baselines(run["eval_dir"], config.global_batch_size, config.seed + 1)
    evaluated = run["result"]["eval"]
    print("held-out", evaluated, "baselines", mlm_baseline, nsp_baseline)
    assert run["result"]["step"] == 4000
    assert evaluated["nsp_accuracy"] > nsp_baseline + 0.02, (evaluated, nsp_baseline)
    assert evaluated["mlm_accuracy"] > mlm_baseline + 0.10, (evaluated, mlm_baseline)


# ----------------------------------------------------------------------------- exact resume


@pytest.fixture(scope="module")
def reference_run(shards, tmp_path_factory):
    """An uninterrupted 14-step run (checkpoints every 4 steps) to compare resumed runs with."""
    workdir = str(tmp_path_factory.mktemp("reference"))
    launch.run_pretraining(small(shards, "optim.total_steps=14", "checkpoint.every_steps=4"), workdir)
    return workdir


def test_preemption_then_resume_is_exact(shards, reference_run, tmp_path):
    """SIGTERM saves at the current step; the restart starts from that step (not from 0),
    trains every later step exactly once, and reproduces the uninterrupted run's per-step
    losses bit for bit (same mesh), data position and RNG included."""
    steps, run_dir = 14, str(tmp_path)
    config = lambda: small(shards, f"optim.total_steps={steps}", "checkpoint.every_steps=4")  # noqa: E731
    first = preempt_after(lambda: launch.run_pretraining(config(), run_dir), run_dir, 6)
    assert first["preempted"] and 6 <= first["step"] < steps and first["start_step"] == 0
    manager = checkpointing.make_manager(os.path.join(run_dir, "checkpoints"))
    assert manager.latest_step() == first["step"]  # saved at the step it stopped, not at a multiple of 4
    before = len(train_rows(run_dir))
    second = launch.run_pretraining(config(), run_dir)
    assert second["step"] == steps and not second["preempted"]
    assert_resumed_at(second, run_dir, before, first["step"], steps)
    assert losses(run_dir) == losses(reference_run)


@pytest.fixture(scope="module")
def epoch_runs(corpus_shards, tmp_path_factory):
    """Shards of two short corpus files (an epoch is a few steps of 8), an uninterrupted
    run past two epoch boundaries and the same run preempted after the first boundary
    and resumed; checkpoints every step, keeping the last 2 and every 4th."""
    root = tmp_path_factory.mktemp("epochs")
    files = [f for f in CORPUS if os.path.basename(f) in ("installing.txt", "distributing.txt")]
    shard_dir = build_shards(files, corpus_shards["vocab"], str(root / "shards"))
    steps_per_epoch = json.load(open(os.path.join(shard_dir, "manifest.json")))["shards"][0]["num_examples"] // 8
    steps = 14
    config = lambda: small(shard_dir, f"optim.total_steps={steps}", "checkpoint.every_steps=1",  # noqa: E731
                           "checkpoint.keep=2", "checkpoint.keep_period=4")
    ref, run = str(root / "ref"), str(root / "run")
    launch.run_pretraining(config(), ref)
    first = preempt_after(lambda: launch.run_pretraining(config(), run), run, steps_per_epoch + 1)
    before = len(train_rows(run))
    second = launch.run_pretraining(config(), run)
    return dict(ref=ref, run=run, first=first, second=second, before=before, steps=steps,
                steps_per_epoch=steps_per_epoch)


def test_resume_across_an_epoch_boundary_is_exact(epoch_runs):
    """Stopped after an epoch boundary, the restart continues in the new epoch's order
    and equals the uninterrupted run (which crosses two boundaries)."""
    r = epoch_runs
    assert 3 <= r["steps_per_epoch"] <= r["steps"] // 2  # the runs cross at least two boundaries
    assert r["steps_per_epoch"] < r["first"]["step"] < r["steps"] and r["first"]["preempted"]
    assert_resumed_at(r["second"], r["run"], r["before"], r["first"]["step"], r["steps"])
    assert losses(r["run"]) == losses(r["ref"])


def test_checkpoint_retention_keeps_the_last_k_and_every_period(epoch_runs):
    """checkpoint.keep=2, keep_period=4, a save every step: steps 4, 8, 12 and the last two remain."""
    for workdir in (epoch_runs["ref"], epoch_runs["run"]):
        manager = checkpointing.make_manager(os.path.join(workdir, "checkpoints"))
        assert sorted(manager.all_steps()) == [4, 8, 12, 13, 14]
        assert sorted(int(d) for d in os.listdir(os.path.join(workdir, "checkpoints")) if d.isdigit()) == \
            [4, 8, 12, 13, 14]


# ----------------------------------------------------------------------------- non-finite loss


def checkpoint_loss(workdir, shard_dir, step):
    """Deterministic loss of the checkpoint ``step``'s parameters on batch ``step`` of the
    run's data (the batch a resumed run trains on next)."""
    from bert_jax.config import BertConfig
    from bert_jax.modeling import BertForPreTrainingModule
    from bert_jax.tasks import PretrainingTask
    params, meta = checkpointing.restore_params_to_cpu(os.path.join(workdir, "checkpoints"), step)
    task = PretrainingTask(BertForPreTrainingModule(BertConfig.from_dict(meta["model"])), 64, 10)
    batch = PretrainingLoader(shard_dir, 8, seed=0, prefetch=0).batch_at(step)
    loss, _ = task.loss(params, batch, jax.random.PRNGKey(0), task.denominators(batch), deterministic=True)
    return float(loss)


class PoisonedLoader:
    """A ``PretrainingLoader`` whose batch for step ``bad`` (1-based, as logged) has NaN
    MLM weights, so that step's loss and update are NaN while every earlier one is sound."""

    def __init__(self, inner, bad):
        self.inner, self.bad, self.manifest = inner, bad, inner.manifest

    def __iter__(self):
        return self

    def __next__(self):
        batch = next(self.inner)
        if self.inner.state()["step"] == self.bad:
            batch = dict(batch, masked_lm_weights=np.full_like(batch["masked_lm_weights"], np.nan))
        return batch

    def state(self):
        return self.inner.state()

    def restore(self, state):
        self.inner.restore(state)

    def close(self):
        self.inner.close()


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(shards, reference_run, tmp_path):
    """A batch that makes step 10 NaN: the run stops naming step 10, the latest checkpoint
    is step 8 (saved before it; nothing of step 9 or 10 is kept), its loss is finite, and
    restarting from it with sound data continues exactly like the uninterrupted run."""
    config = lambda: small(shards, "optim.total_steps=14", "checkpoint.every_steps=4")  # noqa: E731
    poisoned = lambda d, c, seed: PoisonedLoader(PretrainingLoader(d, c.global_batch_size, seed=seed), 10)  # noqa: E731
    with pytest.raises(NonFiniteLoss, match=r"loss is nan at step 10;"):
        launch.run_pretraining(config(), str(tmp_path), make_loader=poisoned)
    manager = checkpointing.make_manager(str(tmp_path / "checkpoints"))
    assert manager.all_steps() == [4, 8]
    assert np.isfinite(checkpoint_loss(str(tmp_path), shards, 8))
    before = len(train_rows(tmp_path))
    result = launch.run_pretraining(config(), str(tmp_path))
    assert_resumed_at(result, tmp_path, before, 8, 14)
    resumed, reference = {s: v for s, v in train_rows(tmp_path) if s > 8}, losses(reference_run)
    assert resumed == {s: reference[s] for s in range(9, 15)}


@pytest.fixture(scope="module")
def diverged_cli_run(shards, tmp_path_factory):
    """``bert-jax pretrain`` with learning rate 1e30 and no clipping: step 1's update
    blows the parameters up (their norm overflows to inf), so step 1 is the first bad step."""
    workdir = tmp_path_factory.mktemp("diverged")
    res = cli("pretrain", _cli_args(shards, workdir, "--config.optim.learning_rate=1e30",
                                    "--config.optim.warmup_steps=0", "--config.optim.total_steps=20",
                                    "--config.checkpoint.every_steps=1", "--config.optim.clip_grad_norm=0.0",
                                    "--config.global_batch_size=8"), 1)
    return workdir, res


def test_non_finite_loss_exits_3_and_names_the_step(diverged_cli_run):
    workdir, res = diverged_cli_run
    assert res.returncode == 3, res.stderr[-3000:]
    message = [line for line in res.stderr.splitlines() if line.startswith("bert-jax pretrain: ")]
    assert message and "param_norm is inf at step 1; stopping" in message[-1], res.stderr[-3000:]
    assert "No checkpoint was kept" in message[-1]
    assert train_rows(workdir) == []  # step 1 is never logged as a sound step
    assert not os.path.isdir(workdir / "checkpoints") or \
        checkpointing.make_manager(str(workdir / "checkpoints")).all_steps() == []


def test_kept_checkpoint_after_divergence_has_a_finite_loss(diverged_cli_run, shards):
    """The kept checkpoint must be one a restart can train from: finite loss on the batch
    the restart sees next."""
    workdir, res = diverged_cli_run
    kept = checkpointing.make_manager(str(workdir / "checkpoints")).latest_step()
    assert kept is None or np.isfinite(checkpoint_loss(str(workdir), shards, kept))


def test_refuses_sequence_length_mismatch(shards, tmp_path):
    with pytest.raises(launch.ConfigError, match=r"max_seq_length=64 but the config says 128.*--config.data.max_seq_length=64"):
        launch.run_pretraining(small(shards, "data.max_seq_length=128"), str(tmp_path))
    assert not os.path.exists(tmp_path / "checkpoints")
    # both fields differing are named at once (it took one rerun per field), and the flags given work
    with pytest.raises(launch.ConfigError) as error:
        launch.run_pretraining(small(shards, "data.max_seq_length=128", "data.max_predictions_per_seq=20"),
                               str(tmp_path))
    flags = re.findall(r"--config\.(data\.\w+=\d+)", str(error.value))
    assert flags == ["data.max_seq_length=64", "data.max_predictions_per_seq=10"], str(error.value)
    launch.run_pretraining(small(shards, "data.max_seq_length=128", "data.max_predictions_per_seq=20", *flags,
                                 "optim.total_steps=2"), str(tmp_path))


def test_refuses_mesh_that_does_not_fit(shards, tmp_path):
    with pytest.raises(launch.ConfigError, match=r"mesh_shape \(2, 1, 1\).*1 available devices"):
        launch.run_pretraining(small(shards, "mesh_shape=(2,1,1)"), str(tmp_path))
    assert not os.listdir(tmp_path)


def test_refuses_checkpoint_of_another_model_shape(shards, tmp_path):
    """The refusal names the fields that differ (the head count too, though no parameter shape
    shows it), or the layer layout (scan_layers: same fields, other parameter names), and resuming
    with the flags it gives goes on from the checkpoint."""
    launch.run_pretraining(small(shards, "optim.total_steps=2", "checkpoint.every_steps=2"), str(tmp_path))
    with pytest.raises(launch.ConfigError, match=r"different model shape: hidden_size=32 \(config: 48\)\. .*"
                       r"\(--config\.model\.hidden_size=32\); .*new --workdir"):
        launch.run_pretraining(small(shards, "optim.total_steps=4", "model.hidden_size=48"), str(tmp_path))
    # the head count changes no parameter's shape: it restored and trained another model, silently
    with pytest.raises(launch.ConfigError, match=r"num_attention_heads=4 \(config: 2\)\. .*"
                       r"\(--config\.model\.num_attention_heads=4\)"):
        launch.run_pretraining(small(shards, "optim.total_steps=4", "model.num_attention_heads=2"), str(tmp_path))
    with pytest.raises(launch.ConfigError, match=r"its layers are saved one by one \(scan_layers=False\).*"
                       r"\(--config\.scan_layers=False\)") as refused:
        launch.run_pretraining(small(shards, "optim.total_steps=4", "scan_layers=True"), str(tmp_path))
    advised = str(refused.value).split("give the checkpoint's shape (--config.")[1].split(")")[0]
    out = launch.run_pretraining(small(shards, "optim.total_steps=4", "scan_layers=True", advised), str(tmp_path))
    assert checkpointing.make_manager(str(tmp_path / "checkpoints")).latest_step() == 4, out


def _cli_args(shards, workdir, *extra):
    return ["--config", TINY, "--workdir", str(workdir), f"--config.data.train_dir={shards}",
            "--config.model.hidden_size=32", "--config.model.intermediate_size=64", "--config.log_every_steps=1",
            "--config.optim.warmup_steps=2",
            "--config.eval_every_steps=0", *extra]


def test_refuses_batch_not_divisible_by_data_parallel(shards, tmp_path):
    res = cli("pretrain", _cli_args(shards, tmp_path, "--config.global_batch_size=12", "--config.mesh_shape=(4,2,1)"), 8)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "global_batch_size=12" in res.stderr and "data-parallel size 8" in res.stderr
    assert not os.path.exists(tmp_path / "checkpoints")


EIGHT_DEVICE_RUN = """
import sys
import jax, numpy as np
from bert_jax import checkpointing, cli
code = cli.main(["pretrain", *sys.argv[2:]])
params, _ = checkpointing.restore_params_to_cpu(sys.argv[1] + "/checkpoints", 3)
np.savez(sys.argv[1] + "/step3.npz", **{jax.tree_util.keystr(p): v for p, v in jax.tree_util.tree_leaves_with_path(params)})
sys.exit(code)
"""


@pytest.mark.slow  # ~20 s; the default run keeps a margin under its 20 minutes
def test_checkpoint_from_eight_devices_continues_on_one(shards, tmp_path):
    """A step-3 checkpoint written on a 2x2x2 mesh of 8 devices, restored on 1 device:
    the parameters are exactly the 8-device ones (a zero-learning-rate step keeps them),
    and steps 4-5 log the 8-device continuation's losses within 1e-5 relative."""
    eight = tmp_path / "eight"
    args = _cli_args(shards, eight, "--config.global_batch_size=8", "--config.mesh_shape=(2,2,2)",
                     "--config.optim.total_steps=5", "--config.checkpoint.every_steps=3", "--config.checkpoint.keep=5")
    # The step-3 parameters are read back in the 8-device process: restore_params_to_cpu follows
    # the checkpoint's own shardings, which a 1-device process cannot build.
    res = subprocess.run([sys.executable, "-c", EIGHT_DEVICE_RUN, str(eight), *args], env=cli_env(8), cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert checkpointing.make_manager(str(eight / "checkpoints")).all_steps() == [3, 5]
    reference = losses(eight)
    for name in ("one", "frozen"):  # workdirs holding only the 8-device step-3 checkpoint
        shutil.copytree(eight / "checkpoints" / "3", tmp_path / name / "checkpoints" / "3")
    result = launch.run_pretraining(small(shards, "optim.total_steps=5", "checkpoint.every_steps=5"),
                                    str(tmp_path / "one"))
    assert result["start_step"] == 3 and result["step"] == 5
    one = losses(tmp_path / "one")
    assert sorted(one) == [4, 5]
    for step in (4, 5):
        assert abs(one[step] - reference[step]) <= 1e-5 * abs(reference[step]), (step, one[step], reference[step])
    frozen = launch.run_pretraining(small(shards, "optim.total_steps=4", "optim.learning_rate=0.0",
                                          "checkpoint.every_steps=4"), str(tmp_path / "frozen"))
    assert frozen["start_step"] == 3
    got, _ = checkpointing.restore_params_to_cpu(str(tmp_path / "frozen" / "checkpoints"), 4)
    got = {jax.tree_util.keystr(p): v for p, v in jax.tree_util.tree_leaves_with_path(got)}
    want = dict(np.load(eight / "step3.npz"))
    assert got.keys() == want.keys() and len(want) == 46
    for name, value in want.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)


@pytest.mark.slow
def test_sigkill_then_restart_matches_uninterrupted(shards, tmp_path):
    """A run killed with SIGKILL after its step-5 checkpoint (and a few more steps) and
    restarted resumes at step 6 -- the steps after the checkpoint are trained again,
    once -- and every logged loss equals the uninterrupted run's (bit-identical)."""
    steps = 16
    args = ["--config.optim.total_steps=%d" % steps, "--config.checkpoint.every_steps=5",
            "--config.global_batch_size=8"]
    ref = cli("pretrain", _cli_args(shards, tmp_path / "ref", *args), 1)
    assert ref.returncode == 0, ref.stderr[-3000:]
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "bert_jax.cli", "pretrain", *_cli_args(shards, run, *args)],
                            env=cli_env(1), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline:
        if logged_steps(run) >= 8 and checkpointing.make_manager(str(run / "checkpoints")).latest_step() == 5:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = [s for s, _ in train_rows(run)]
    assert killed == list(range(1, len(killed) + 1)) and 8 <= len(killed) < steps
    again = cli("pretrain", _cli_args(shards, run, *args), 1)
    assert again.returncode == 0, again.stderr[-3000:]
    # The restart resumed from checkpoint 5: the rows the killed run logged past it were dropped,
    # and steps 6.. were trained once more, each logged once.
    assert "resumed from" in again.stderr and "at step 5" in again.stderr, again.stderr[-2000:]
    assert [s for s, _ in train_rows(run)] == list(range(1, steps + 1))
    reference = losses(tmp_path / "ref")
    assert all(loss == reference[step] for step, loss in train_rows(run))


@pytest.mark.slow
def test_sigterm_from_outside_saves_current_step(shards, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "bert_jax.cli", "pretrain",
                             *_cli_args(shards, tmp_path, "--config.optim.total_steps=100000",
                                        "--config.checkpoint.every_steps=1000")],
                            env=cli_env(1), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline:
        if logged_steps(tmp_path) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=300) == launch.PREEMPTED_EXIT_CODE
    step = checkpointing.make_manager(str(tmp_path / "checkpoints")).latest_step()
    assert step is not None and step >= 3 and step == max(losses(str(tmp_path)))


def test_init_from_another_run_starts_at_step_zero_with_its_params(shards, tmp_path):
    import numpy as np
    source, target = str(tmp_path / "source"), str(tmp_path / "target")
    launch.run_pretraining(small(shards, "optim.total_steps=2", "checkpoint.every_steps=2"), source)
    # learning rate 0: the target's parameters after its step are exactly the loaded ones
    result = launch.run_pretraining(small(shards, "optim.total_steps=3", f"init_from={source!r}",
                                          "optim.learning_rate=0.0"), target)
    assert result["step"] == 3 and result["start_step"] == 0 and min(losses(target)) == 1  # fresh, not a resume
    want, _ = checkpointing.restore_params_to_cpu(os.path.join(source, "checkpoints"))
    got, _ = checkpointing.restore_params_to_cpu(os.path.join(target, "checkpoints"))
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(launch.ConfigError) as info:  # another shape: named once, with the fields to set
        launch.run_pretraining(small(shards, "optim.total_steps=3", f"init_from={source!r}",
                                     "model.hidden_size=48"), str(tmp_path / "other"))
    assert str(info.value).startswith(f"init_from={source} is a model of another shape: hidden_size=32 (config: 48)")
    assert str(info.value).count("init_from=") == 1, str(info.value)


def test_a_packed_run_logs_instances_and_real_tokens_per_second(shards, tmp_path):
    """With packing the logged seq/s counts rows and tokens/s padded positions: a packed run
    showed no gain in its own logs. Each row now also logs instances/s and real tokens/s."""
    import itertools
    import numpy as np
    from bert_jax.tasks.pretraining import open_loader
    run = str(tmp_path / "packed")
    cfg = small(shards, "optim.total_steps=4", "data.packing=True", "checkpoint.every_steps=0")
    launch.run_pretraining(cfg, run)
    rows = [r for r in map(json.loads, open(os.path.join(run, "metrics.jsonl"))) if "train/seq_per_s" in r]
    loader = open_loader(cfg.data.train_dir, cfg, seed=int(cfg.seed))  # the run's batches, in its order
    batches = list(itertools.islice(loader, 4))
    loader.close()
    assert [r["step"] for r in rows] == [2, 3, 4]  # one step a row (log_every_steps=1); the first is apart
    for r in rows:
        batch = batches[r["step"] - 1]
        per_row = r["train/examples_per_s"] / r["train/seq_per_s"]  # instances per packed row
        real = r["train/real_tokens_per_s"] / r["train/tokens_per_s"]  # the non-padding share
        assert per_row == pytest.approx(np.count_nonzero(batch["next_sentence_weight"]) / len(batch["input_ids"]))
        assert real == pytest.approx(np.count_nonzero(batch["attention_mask"]) / batch["attention_mask"].size)


def test_convert_exports_any_training_step_to_hugging_face(shards, tmp_path):
    """`bert-jax convert --from bert-jax WORKDIR --step N --to-hf DIR`: transformers loads the
    step's weights with no missing or unexpected keys, and they are that step's parameters."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("torch")
    import numpy as np
    from bert_jax.convert import cli as convert_cli

    run = str(tmp_path / "run")
    launch.run_pretraining(small(shards, "optim.total_steps=4", "checkpoint.every_steps=2",
                                 "checkpoint.keep=5"), run)
    out = str(tmp_path / "hf_step2")
    assert convert_cli.main(["--from", "bert-jax", run, "--step", "2", "--to-hf", out]) == 0
    model, info = transformers.BertForPreTraining.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    params, _ = checkpointing.restore_params_to_cpu(os.path.join(run, "checkpoints"), 2)
    latest, _ = checkpointing.restore_params_to_cpu(os.path.join(run, "checkpoints"))
    query = "bert/encoder/layer/0/attention/self/query/kernel".split("/")

    def pick(tree):
        for key in query:
            tree = tree[key]
        return np.asarray(tree)

    exported = model.bert.encoder.layer[0].attention.self.query.weight.detach().numpy().T
    np.testing.assert_array_equal(exported, pick(params))
    assert not np.array_equal(pick(params), pick(latest))  # step 2, not the latest (4)
    # with the vocabulary it was trained with (the shards' copy; the export had none, silently)
    with open(os.path.join(out, "vocab.txt"), "rb") as a, open(os.path.join(shards, "vocab.txt"), "rb") as b:
        assert a.read() == b.read()
    assert transformers.BertTokenizerFast.from_pretrained(out).vocab_size == model.config.vocab_size
