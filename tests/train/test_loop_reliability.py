"""Faults and bad input around the training loop: each is refused with what to do, or
handled without losing or mixing work (docs/reliability.md names these tests)."""

import glob
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

jax = pytest.importorskip("jax")

from bert_jax import checkpointing, launch  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = os.path.join(ROOT, "configs", "pretrain", "tiny.py")
DOCS = os.path.join(ROOT, "configs", "finetune", "docs_section.py")
CORPUS = sorted(glob.glob(os.path.join(ROOT, "data", "corpus", "*.txt")))


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    tokenizers = pytest.importorskip("tokenizers")
    from data_pipeline import cli as data_cli
    root = tmp_path_factory.mktemp("corpus")
    tok = tokenizers.BertWordPieceTokenizer(lowercase=True)
    tok.train(CORPUS, vocab_size=1000, min_frequency=2, show_progress=False)
    tok.save_model(str(root))
    out = str(root / "shards")
    assert data_cli.main(["build", "--input", *CORPUS, "--vocab", str(root / "vocab.txt"), "--output", out,
                          "--max-seq-length", "64", "--max-predictions-per-seq", "10", "--dupe-factor", "1",
                          "--seed", "7"]) in (0, None)
    return out


def small(shards, *extra):
    return launch.load_config(TINY, [f"data.train_dir={shards!r}", "model.hidden_size=32",
                                     "model.intermediate_size=64", "global_batch_size=8", "optim.warmup_steps=2",
                                     "log_every_steps=1", "eval_every_steps=0", *extra])


def rows(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def cli(args, timeout=600):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-m", "bert_jax.cli", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_negative_learning_rate_is_refused_before_compute(shards, tmp_path):
    res = cli(["pretrain", "--config", TINY, "--workdir", str(tmp_path / "run"),
               f"--config.data.train_dir={shards}", "--config.optim.learning_rate=-1e-3"])
    assert res.returncode == 2, res.stderr[-2000:]
    assert "optim.learning_rate" in res.stderr and "-0.001" in res.stderr
    assert not os.path.exists(tmp_path / "run")


def test_second_run_on_a_locked_workdir_is_refused(shards, tmp_path):
    from bert_jax.workdir_lock import WorkdirLock
    run = str(tmp_path / "run")
    launch.run_pretraining(small(shards, "optim.total_steps=2", "checkpoint.every_steps=2"), run)
    before = open(os.path.join(run, "metrics.jsonl")).read()
    with WorkdirLock(run):  # another live run holds the workdir
        with pytest.raises(launch.ConfigError, match=r"(?s)" + str(os.getpid()) + ".*" + ".lock"):
            launch.run_pretraining(small(shards, "optim.total_steps=4"), run)
    assert open(os.path.join(run, "metrics.jsonl")).read() == before  # nothing mixed in
    assert checkpointing.make_manager(os.path.join(run, "checkpoints")).latest_step() == 2


def _flip_a_byte(step_dir):
    files = sorted((os.path.getsize(p), p) for p in glob.glob(os.path.join(step_dir, "**", "*"), recursive=True)
                   if os.path.isfile(p) and "checksums" not in p)
    path = files[-1][1]  # the largest: array data
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))


def test_corrupt_newest_checkpoint_falls_back_to_the_newest_intact_step(shards, tmp_path, caplog):
    run = str(tmp_path / "run")
    launch.run_pretraining(small(shards, "optim.total_steps=4", "checkpoint.every_steps=2",
                                 "checkpoint.async_save=False"), run)
    _flip_a_byte(os.path.join(run, "checkpoints", "4"))
    result = launch.run_pretraining(small(shards, "optim.total_steps=6", "checkpoint.every_steps=2"), run)
    assert result["start_step"] == 2 and result["step"] == 6  # resumed from 2, not from the damaged 4
    assert os.path.isdir(os.path.join(run, "checkpoints_damaged", "4"))
    assert [r["step"] for r in rows(run) if "train/loss" in r] == [1, 2, 3, 4, 5, 6]  # one row per step


def test_every_checkpoint_damaged_is_refused_not_restarted(shards, tmp_path):
    run = str(tmp_path / "run")
    launch.run_pretraining(small(shards, "optim.total_steps=2", "checkpoint.every_steps=2",
                                 "checkpoint.async_save=False"), run)
    _flip_a_byte(os.path.join(run, "checkpoints", "2"))
    with pytest.raises(launch.ConfigError, match=r"every checkpoint in .* is damaged.*Move .* aside"):
        launch.run_pretraining(small(shards, "optim.total_steps=4"), run)


def test_unverified_step_that_fails_to_read_is_refused_with_advice_that_works(shards, tmp_path):
    """The newest step has no checksum record (saved by an older bert-jax, or killed between its
    commit and its record) and a truncated file: resuming is refused in one line (exit 2) naming
    the step and the step to resume from, not a traceback; moving the step aside as advised works."""
    import re
    import shutil
    run = str(tmp_path / "run")
    args = ["--config", TINY, "--workdir", run, f"--config.data.train_dir={shards}", "--config.model.hidden_size=32",
            "--config.model.intermediate_size=64", "--config.global_batch_size=8", "--config.optim.warmup_steps=2",
            "--config.checkpoint.every_steps=2", "--config.checkpoint.async_save=False", "--config.log_every_steps=1"]
    assert cli(["pretrain", *args, "--config.optim.total_steps=4"]).returncode == 0
    step4 = os.path.join(run, "checkpoints", "4")
    os.remove(os.path.join(step4, checkpointing.CHECKSUMS))
    victim = max((p for p in glob.glob(os.path.join(step4, "state", "**", "*"), recursive=True) if os.path.isfile(p)),
                 key=os.path.getsize)
    with open(victim, "r+b") as f:
        f.truncate(10)
    res = cli(["pretrain", *args, "--config.optim.total_steps=6"])
    assert res.returncode == 2, res.stderr[-3000:]
    assert res.stderr.count("no checksum record") == 1, res.stderr  # the unverified step is said once
    # TensorStore's own threads may print "Event loop is closed" tracebacks at the same time
    # (docs/reliability.md), even onto the same line: find the message, not a line starting with it.
    line = re.findall(r"bert-jax pretrain: (.*)", res.stderr)
    assert len(line) == 1 and f"checkpoint step 4 in {run}/checkpoints" in line[0] and "reading it failed" in line[0]
    assert f'File "{os.path.join(ROOT, "bert_jax")}' not in res.stderr  # no traceback through bert-jax
    assert re.search(r"reading it failed \(\w+: .*(opt_state|params)\.", line[0])  # TensorStore's cause: the array
    advice = re.search(r"Step 2 is the newest usable step: move (\S+) aside", line[0])
    assert advice and advice.group(1) == step4
    shutil.move(step4, str(tmp_path / "step4-moved"))
    res = cli(["pretrain", *args, "--config.optim.total_steps=6"])
    assert res.returncode == 0, res.stderr[-3000:]
    assert [r["step"] for r in rows(run) if "train/loss" in r] == [1, 2, 3, 4, 5, 6]  # resumed from 2
    # the resumed step's check is reported once (it was read and checked twice, and said so twice)
    assert res.stderr.count(f"checkpoint step 2 in {run}/checkpoints: checksums") == 1, res.stderr


def test_eval_shards_of_another_vocabulary_are_refused_before_training(shards, tmp_path):
    """Held-out shards built with another vocabulary gave an accuracy of nothing (token ids mean
    other words), silently, from the first evaluation on; the run is refused before it starts, and
    rebuilding them with the vocabulary the message names makes it run."""
    import re
    tokenizers = pytest.importorskip("tokenizers")
    from data_pipeline import cli as data_cli
    faq = os.path.join(ROOT, "data", "corpus", "faq.txt")
    tok = tokenizers.BertWordPieceTokenizer(lowercase=True)
    tok.train([faq], vocab_size=300, min_frequency=2, show_progress=False)
    tok.save_model(str(tmp_path))

    def build_eval(*args):
        assert data_cli.main(["build", "--input", faq, "--max-seq-length", "64", "--max-predictions-per-seq", "10",
                              "--dupe-factor", "1", "--seed", "3", *args]) in (0, None)

    eval_dir = str(tmp_path / "eval")
    build_eval("--vocab", str(tmp_path / "vocab.txt"), "--output", eval_dir)
    run = str(tmp_path / "run")
    with pytest.raises(launch.ConfigError, match=r"eval shards in .*eval were built with another vocabulary "
                                                 r"\(300 tokens\) than the training shards .* \(1000 tokens\)") as info:
        launch.run_pretraining(small(shards, f"data.eval_dir={eval_dir!r}", "optim.total_steps=2"), run)
    assert not os.path.exists(run)
    build_eval(*re.search(r"rebuild them with (.+)\.$", str(info.value)).group(1).split())  # as advised
    result = launch.run_pretraining(small(shards, f"data.eval_dir={eval_dir!r}", "optim.total_steps=2",
                                          "eval_steps=1"), run)
    assert result["step"] == 2 and "mlm_accuracy" in result["eval"]


def test_metrics_after_resume_read_as_one_run(shards, tmp_path):
    """A run that logged steps past its last checkpoint and died: the resumed run drops
    those rows, so every step appears once."""
    import shutil
    run = str(tmp_path / "run")
    launch.run_pretraining(small(shards, "optim.total_steps=5", "checkpoint.every_steps=2",
                                 "checkpoint.keep=0"), run)
    shutil.rmtree(os.path.join(run, "checkpoints", "5"))  # died after logging 5, before its checkpoint
    shutil.rmtree(os.path.join(run, "checkpoints", "4"))
    result = launch.run_pretraining(small(shards, "optim.total_steps=5", "checkpoint.every_steps=2",
                                          "checkpoint.keep=0"), run)
    assert result["start_step"] == 2
    assert [r["step"] for r in rows(run) if "train/loss" in r] == [1, 2, 3, 4, 5]


def test_resuming_with_another_recipe_is_refused_and_writes_nothing(shards, tmp_path, caplog):
    """A resume with another seed and batch trained the remaining steps with them and rewrote
    config.json, so the record (and the report) described the first steps by settings they never
    had. It is refused naming both fields; more steps and other intervals still resume, and so does
    what a non-finite stop advises (a lower learning rate), said and recorded."""
    from bert_jax.run_config import ConfigError
    run = str(tmp_path / "run")
    launch.run_pretraining(small(shards, "optim.total_steps=4", "checkpoint.every_steps=2"), run)
    before = {name: open(os.path.join(run, name)).read() for name in ("config.json", "metrics.jsonl")}
    changed = ("global_batch_size=4", "seed=5", "model.hidden_size=48")
    with pytest.raises(ConfigError) as error:
        launch.run_pretraining(small(shards, "optim.total_steps=6", "checkpoint.every_steps=2", *changed,
                                     "optim.learning_rate=1e-3"), run)
    # the model's shape is named with the rest (it came as a second refusal, after the first was followed)
    assert "global_batch_size 8 -> 4; seed 0 -> 5; model.hidden_size 32 -> 48. Resuming" in str(error.value), \
        str(error.value)
    assert {name: open(os.path.join(run, name)).read() for name in before} == before
    flags = re.search(r"started with \((--config\.[^;]*);", str(error.value)).group(1).split()
    assert flags == ["--config.global_batch_size=8", "--config.seed=0", "--config.model.hidden_size=32"]
    result = launch.run_pretraining(small(shards, "optim.total_steps=6", "checkpoint.every_steps=3",
                                          "log_every_steps=2", *changed,
                                          *(f.removeprefix("--config.") for f in flags)), run)  # as advised
    assert result["start_step"] == 4 and result["step"] == 6
    with caplog.at_level("WARNING", logger="bert_jax"):
        result = launch.run_pretraining(small(shards, "optim.total_steps=8", "checkpoint.every_steps=3",
                                              "optim.learning_rate=1e-3"), run)
    assert result["start_step"] == 6 and result["step"] == 8
    assert "resuming at step 6 with optim.learning_rate 0.002 -> 0.001" in caplog.text
    recorded = json.load(open(os.path.join(run, "config.json")))
    assert recorded["optim"]["learning_rate"] == 1e-3
    assert recorded["resolved"]["resumed_with"] == [{"step": 6, "changes": ["optim.learning_rate 0.002 -> 0.001"]}]
    # run again once finished, with a learning rate that no step would take: refused, nothing
    # said as resuming or recorded (config.json described the whole run by it); as advised, the
    # run's own settings run its end again
    before = {name: open(os.path.join(run, name)).read() for name in before}
    caplog.clear()
    with caplog.at_level("WARNING", logger="bert_jax"), pytest.raises(ConfigError) as error:
        launch.run_pretraining(small(shards, "optim.total_steps=8", "optim.learning_rate=5e-4"), run)
    assert f"{run} is finished (step 8 of 8): optim.learning_rate 0.001 -> 0.0005 would change no step" \
        in str(error.value) and "resuming" not in caplog.text
    assert {name: open(os.path.join(run, name)).read() for name in before} == before
    result = launch.run_pretraining(small(shards, "optim.total_steps=8", "checkpoint.every_steps=3",
                                          "optim.learning_rate=1e-3"), run)
    assert result["start_step"] == 8


def test_init_from_missing_path_names_the_path(tmp_path):
    """...and the refused run leaves nothing, not even the folders above a new workdir."""
    (tmp_path / "mine").mkdir()
    code_out = cli(["finetune", "--config", DOCS, "--workdir", str(tmp_path / "mine" / "new" / "sub" / "ft"),
                    "--config.init_from=/does/not/exist"])
    assert code_out.returncode == 2
    assert "init_from='/does/not/exist' does not exist" in code_out.stderr
    assert "vocabulary" not in code_out.stderr
    assert os.listdir(tmp_path) == ["mine"] and os.listdir(tmp_path / "mine") == []


def test_init_from_with_another_vocabulary_size_gives_advice_that_works(shards, tmp_path):
    """The checkpoint embeds 1,000 tokens; a 2,000-token vocabulary is refused, naming both
    sizes and advising the checkpoint's own vocabulary. Following that advice runs, and the
    refused run wrote nothing."""
    import tokenizers
    pre = str(tmp_path / "pre")
    launch.run_pretraining(small(shards, "optim.total_steps=2", "checkpoint.every_steps=2"), pre)
    big = tmp_path / "big"
    big.mkdir()
    tok = tokenizers.BertWordPieceTokenizer(lowercase=True)
    tok.train(CORPUS, vocab_size=2000, min_frequency=2, show_progress=False)
    tok.save_model(str(big))
    args = [f"init_from={pre!r}", "model.hidden_size=32", "model.intermediate_size=64", "optim.total_steps=2",
            "eval_every_steps=0", "data.max_per_label=50", "global_batch_size=8"]
    ft = str(tmp_path / "ft")
    with pytest.raises(launch.ConfigError, match=r"has 2\d\d\d tokens but the model embeds 1000.*"
                                                  r"--config.data.vocab_file=") as info:
        launch.run_finetuning(launch.load_config(DOCS, args + [f"data.vocab_file={str(big / 'vocab.txt')!r}"]), ft)
    assert not os.path.exists(ft)
    assert "vocab_size" not in str(info.value)  # no advice to resize the embedding
    vocab = os.path.join(shards, "vocab.txt")
    result = launch.run_finetuning(launch.load_config(DOCS, args + [f"data.vocab_file={vocab!r}"]), ft)
    assert result["step"] == 2 and np.isfinite(result["loss"])


def test_refused_finetune_run_leaves_nothing(shards, tmp_path):
    pre = str(tmp_path / "pre")
    launch.run_pretraining(small(shards, "optim.total_steps=2", "checkpoint.every_steps=2"), pre)
    ft = tmp_path / "ft"
    ft.mkdir()  # a workdir the user made: it stays, empty
    with pytest.raises(launch.ConfigError, match=r"label 'tutorials'"):
        launch.run_finetuning(launch.load_config(DOCS, [f"init_from={pre!r}", "model.hidden_size=32",
                                                        "model.intermediate_size=64",
                                                        "data.labels=('tutorials', 'library')"]), str(ft))
    assert os.listdir(ft) == []


def test_dropout_beyond_the_counter_limit_is_refused_before_anything_is_written(tmp_path):
    """A sequence whose attention-dropout row needs more than 2**32 random counters is found when
    the train step is traced (before the workdir is written), refused as a config error naming
    the field; the advised setting traces. Only shapes are traced: nothing of that size is run."""
    from bert_jax import partitioning, train
    from bert_jax.tasks.pretraining import pretraining_job

    class NoBatches:  # the loader is never read: the refusal comes first
        manifest = {"vocab_size": 100}

    seq = 2 ** 16  # attention probs [batch, 4 heads, 65536, 65536]: 2**32 counters per row
    args = ["data.train_dir='unused'", "model.hidden_size=16", "model.num_attention_heads=4",
            "model.intermediate_size=32", "model.num_hidden_layers=1", f"model.max_position_embeddings={seq}",
            f"data.max_seq_length={seq}", "global_batch_size=1", "eval_every_steps=0"]
    work = str(tmp_path / "run")
    with pytest.raises(launch.ConfigError, match=r"more than 2\*\*32 random counters within one row.*"
                                                  r"model.attention_probs_dropout_prob\) to 0"):
        launch.run_pretraining(launch.load_config(TINY, args), work, make_loader=lambda *a: NoBatches())
    assert not os.path.exists(work)

    import ml_collections
    cfg = ml_collections.FrozenConfigDict(launch.load_config(TINY, args + ["model.attention_probs_dropout_prob=0.0"]))
    job = pretraining_job(make_loader=lambda *a: NoBatches())(cfg, jax.random.PRNGKey(0), resuming=False)
    mesh = partitioning.make_mesh((1, 1, 1), jax.devices()[:1])
    import optax
    tx, schedule = optax.sgd(0.1), lambda step: 0.1
    abstract = jax.eval_shape(lambda: train.create_train_state(job.task, tx, mesh, partitioning.DEFAULT_RULES,
                                                               jax.random.PRNGKey(0), jax.random.PRNGKey(1))[0])
    shardings = jax.tree.map(lambda _: partitioning.replicated(mesh), abstract)
    steps = train.jit_steps(job.task, tx, schedule, mesh, shardings, 1)
    train.trace_train_step(steps, jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype,
                                                                                 sharding=partitioning.replicated(mesh)),
                                               abstract), job.task, mesh, 1)


@pytest.mark.slow
def test_ctrl_c_saves_the_current_step_and_exits_130(shards, tmp_path):
    run = tmp_path / "run"
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.Popen([sys.executable, "-m", "bert_jax.cli", "pretrain", "--config", TINY, "--workdir", str(run),
                             f"--config.data.train_dir={shards}", "--config.model.hidden_size=32",
                             "--config.model.intermediate_size=64", "--config.log_every_steps=1",
                             "--config.optim.total_steps=100000", "--config.checkpoint.every_steps=1000"],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    while time.time() < deadline:
        if os.path.exists(run / "metrics.jsonl") and len(rows(str(run))) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "SIGINT: saving a checkpoint" in err
    assert "and stopping; the same command resumes from it" in err  # it said how to go on nowhere
    step = checkpointing.make_manager(str(run / "checkpoints")).latest_step()
    assert step is not None and step == max(r["step"] for r in rows(str(run)))


def test_user_mistakes_around_a_finished_run_are_one_line_refusals_with_advice_that_works(shards, tmp_path, capsys):
    """Each of these was a traceback or advice that could not be followed."""
    import shutil
    from bert_jax.convert import cli as convert_cli
    pre = str(tmp_path / "pre")
    launch.run_pretraining(small(shards, "optim.total_steps=4", "checkpoint.every_steps=2",
                                 "checkpoint.async_save=False"), pre)
    capsys.readouterr()

    def last_error(code, want=2):
        assert code == want
        lines = capsys.readouterr().err.strip().splitlines()
        assert lines and "Traceback" not in "\n".join(lines)
        return lines[-1]

    # convert --step that does not exist: named with the steps there are (was "step 3 is corrupt ... move it aside")
    err = last_error(convert_cli.main(["--from", "bert-jax", pre, "--step", "3", "--to-hf", str(tmp_path / "hf")]))
    assert err.endswith("has no step 3; it has steps 2, 4.") and not os.path.exists(tmp_path / "hf")
    # a pretraining config given to evaluate (was AttributeError: 'task')
    err = last_error(launch.evaluate_main(["--config", TINY, "--workdir", pre]))
    assert "is a pretraining config (mode='pretrain'): use it with bert-jax pretrain" in err
    # a --workdir that is a file (was "cannot create the lock file ... check that the workdir is writable")
    afile = tmp_path / "afile"
    afile.write_text("mine\n")
    err = last_error(launch.pretrain_main(["--config", TINY, "--workdir", str(afile), f"--config.data.train_dir={shards}"]))
    assert err.endswith(f"--workdir {afile} exists and is not a directory; pass a directory: a new one, or a run's "
                        "to resume it.") and afile.read_text() == "mine\n"
    # a batch larger than the shards (advised drop_remainder=False, which is no config field)
    num = json.load(open(os.path.join(shards, "manifest.json")))["num_examples"]
    err = last_error(launch.pretrain_main(["--config", TINY, "--workdir", str(tmp_path / "big"),
                                           f"--config.data.train_dir={shards}", f"--config.global_batch_size={num + 1}"]))
    assert f"use a global batch of at most {num} (--config.global_batch_size)" in err
    # init_from a workdir whose config.json is damaged: named with its line; the advice runs
    damaged = str(tmp_path / "damaged")
    shutil.copytree(pre, damaged)
    text = open(os.path.join(pre, "config.json")).read()
    open(os.path.join(damaged, "config.json"), "w").write(text[:100])
    args = ["model.hidden_size=32", "model.intermediate_size=64", "optim.total_steps=1", "eval_every_steps=0",
            "data.max_per_label=20", "global_batch_size=8"]
    with pytest.raises(launch.ConfigError, match=r"damaged/config.json:\d+: not a bert-jax run config") as info:
        launch.run_finetuning(launch.load_config(DOCS, args + [f"init_from={damaged!r}"]), str(tmp_path / "ft"))
    assert f"--config.init_from={os.path.join(damaged, 'checkpoints')}" in str(info.value)
    result = launch.run_finetuning(launch.load_config(DOCS, args + [
        f"init_from={os.path.join(damaged, 'checkpoints')!r}",
        f"data.vocab_file={os.path.join(shards, 'vocab.txt')!r}"]), str(tmp_path / "ft"))
    assert result["step"] == 1


def test_resume_trims_metrics_rows_past_the_checkpoint_and_counts_a_cut_line_apart(tmp_path):
    """A line cut by a kill mid-write was counted among the rows "logged after step 4"; the two
    are told apart, and what stays reads as one run up to the checkpoint."""
    from bert_jax.trainer import trim_metrics
    rows = [json.dumps({"step": s, "train/loss": 1.0}) + "\n" for s in (2, 4, 6)]
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(rows) + '{"step": 8, "train/lo', encoding="utf-8")
    assert trim_metrics(str(tmp_path), 4) == (1, 1)
    assert path.read_text(encoding="utf-8") == "".join(rows[:2])
    assert trim_metrics(str(tmp_path), 4) == (0, 0)
    assert path.read_text(encoding="utf-8") == "".join(rows[:2])
    evaluated = json.dumps({"step": 4, "eval/accuracy": 0.5}) + "\n"
    path.write_text("".join(rows[:2]) + evaluated, encoding="utf-8")
    assert trim_metrics(str(tmp_path), 4) == (0, 0)  # a resume keeps the evaluation of its step
    assert trim_metrics(str(tmp_path), 4, eval_again=True) == (1, 0)  # a finished run redoes it
    assert path.read_text(encoding="utf-8") == "".join(rows[:2])
