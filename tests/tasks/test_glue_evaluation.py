"""GLUE through the task registry: evaluation predicts every example exactly once and
gives identical metrics and predictions on 1 device, 8 simulated devices and 2 processes;
`evaluate --split test` writes submission files the GLUE server takes; bad input is refused
with the file and line named, and nothing is written.

The model is a tiny one fine-tuned for a few steps on the RTE-layout set derived from the
bundled corpus (data/tasks/glue_nextsent: 250 dev examples, not a multiple of the batch of 32).
"""

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

jax = pytest.importorskip("jax")

from bert_jax import checkpointing, launch  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RTE = os.path.join(ROOT, "configs", "glue", "rte.py")
DATA = os.path.join(ROOT, "data", "tasks", "glue_nextsent")
CORPUS = sorted(glob.glob(os.path.join(ROOT, "data", "corpus", "*.txt")))
SHAPE = ["model.hidden_size=32", "model.num_hidden_layers=2", "model.num_attention_heads=4",
         "model.intermediate_size=64", "model.max_position_embeddings=64", "model.type_vocab_size=2"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A vocabulary trained on the corpus and a 6-step fine-tuning run from scratch."""
    tokenizers = pytest.importorskip("tokenizers")
    root = tmp_path_factory.mktemp("glue")
    tok = tokenizers.BertWordPieceTokenizer(lowercase=True)
    tok.train(CORPUS, vocab_size=1000, min_frequency=2, show_progress=False)
    tok.save_model(str(root))
    args = ["init_from='scratch'", f"data.vocab_file={str(root / 'vocab.txt')!r}", f"data.data_dir={DATA!r}",
            "data.max_seq_length=64", *SHAPE]
    workdir = str(root / "run")
    launch.run_finetuning(launch.load_config(RTE, args + ["optim.total_steps=6", "log_every_steps=3",
                                                          "checkpoint.every_steps=6"]), workdir)
    return {"workdir": workdir, "args": args, "root": root}


def _evaluate(run, workdir, devices, *extra, processes=1):
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
    base = [sys.executable, "-m", "bert_jax.cli", "evaluate", "--config", RTE, "--workdir", workdir,
            *[f"--config.{a}" for a in run["args"]], *extra]
    if processes == 1:
        res = subprocess.run(base, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        return
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    procs = [subprocess.Popen(base + ["--config.distributed.initialize=yes",
                                      f"--config.distributed.coordinator_address=localhost:{port}",
                                      f"--config.distributed.num_processes={processes}",
                                      f"--config.distributed.process_id={i}"],
                              env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(processes)]
    for p in procs:
        out, _ = p.communicate(timeout=600)
        assert p.returncode == 0, out[-3000:]


def _copy_run(run, name):
    target = str(run["root"] / name)
    shutil.copytree(run["workdir"], target, ignore=shutil.ignore_patterns("eval"))
    return target


def _results(workdir):
    """``(dev_results.json, predictions.tsv lines)``, without the results' ``model`` (what
    ``evaluate`` scored, asserted where it matters; a training run's own evaluation has none)."""
    with open(os.path.join(workdir, "eval", "dev_results.json")) as f:
        results = json.load(f)
    results.pop("model", None)
    with open(os.path.join(workdir, "eval", "dev", "predictions.tsv")) as f:
        rows = f.read().splitlines()
    return results, rows


def test_dev_evaluation_is_the_same_on_one_and_eight_devices(run):
    one, eight = _copy_run(run, "one"), _copy_run(run, "eight")
    _evaluate(run, one, 1, "--config.mesh_shape=(1,1,1)")
    _evaluate(run, eight, 8, "--config.mesh_shape=(8,1,1)")
    (r1, p1), (r8, p8) = _results(one), _results(eight)
    assert r1["num_examples"] == 250 and len(p1) == 251  # header + every example once
    assert [row.split("\t")[0] for row in p1[1:]] == [str(i) for i in range(250)]
    assert p1 == p8
    assert r1["accuracy"] == r8["accuracy"] and r1["step"] == r8["step"] == 6


@pytest.mark.slow
def test_dev_evaluation_is_the_same_on_two_processes(run):
    one, two = _copy_run(run, "one_p"), _copy_run(run, "two_p")
    _evaluate(run, one, 1, "--config.mesh_shape=(1,1,1)")
    _evaluate(run, two, 2, "--config.mesh_shape=(4,1,1)", processes=2)
    assert _results(one) == _results(two)


def test_test_split_writes_a_submission_file_the_server_takes(run, capsys):
    """`evaluate --split test` writes RTE.tsv as the GLUE server reads it; glue-submit gathers it,
    names the step its predictions came from, and warns once the run has trained past that step."""
    from bert_jax.tasks import glue, glue_data
    workdir = _copy_run(run, "test_split")
    code = launch.evaluate_main(["--config", RTE, "--workdir", workdir, "--split", "test",
                                 *[f"--config.{a}" for a in run["args"]]])
    assert code == 0
    path = os.path.join(workdir, "eval", "test", "RTE.tsv")
    rows = glue_data.read_glue_submission(path)
    assert len(rows) == 250 and [i for i, _ in rows] == list(range(250))
    assert {p for _, p in rows} <= {"entailment", "not_entailment"}
    out = str(run["root"] / "submission")
    capsys.readouterr()
    assert launch.glue_submit_main(["--output", out, workdir]) == 0
    assert os.listdir(out) == ["RTE.tsv"]
    assert capsys.readouterr().out.splitlines() == [f"RTE.tsv <- {path}: step 6", f"1 submission file(s) in {out}; "
                                                    "missing for a full GLUE submission: " + ", ".join(
                                                        sorted(set(f"{v}.tsv" for v in glue.SUBMISSION_FILES) - {"RTE.tsv"}))]
    assert launch.glue_submit_main(["--output", out, workdir]) == 0  # run again: the same bytes, no clash
    with open(os.path.join(out, "RTE.tsv"), "a") as f:
        f.write("edited\n")  # other predictions (the user's) are not replaced silently
    capsys.readouterr()
    assert launch.glue_submit_main(["--output", out, workdir]) == 2
    assert "already holds RTE.tsv with other predictions than the run's; pass --overwrite to replace it" in \
        capsys.readouterr().err
    assert open(os.path.join(out, "RTE.tsv")).read().endswith("edited\n")
    # trained on after the test predictions: gathering them names both steps (they were copied unnoticed)
    launch.run_finetuning(launch.load_config(RTE, run["args"] + ["optim.total_steps=8", "checkpoint.every_steps=8"]),
                          workdir)
    capsys.readouterr()
    assert launch.glue_submit_main(["--output", out, "--overwrite", workdir]) == 0
    ckpt = os.path.join(workdir, "checkpoints")
    assert capsys.readouterr().out.splitlines()[0] == (
        f"RTE.tsv <- {path}: step 6, but {ckpt} has step 8 since; to submit that one, run 'bert-jax evaluate "
        f"--config <its config> --workdir {workdir} --split test' and gather again with --overwrite")
    # the command copies files and lists step folders: it does not load JAX or Orbax (about 1 s)
    code = ("import sys; from bert_jax import cli; rc = cli.main(sys.argv[1:]); "
            "assert 'jax' not in sys.modules and 'orbax.checkpoint' not in sys.modules, 'jax imported'; sys.exit(rc)")
    res = subprocess.run([sys.executable, "-c", code, "glue-submit", "--output", out, "--overwrite", workdir],
                         capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0 and "has step 8 since" in res.stdout, res.stderr[-2000:]


def test_a_run_started_with_relative_paths_is_evaluated_and_converted_from_another_directory(run, monkeypatch):
    """config.json records paths as typed; a run started with data.vocab_file=vocab.txt (relative)
    and evaluated or converted from another directory stopped at "no vocabulary: set
    --config.data.vocab_file" and was converted without its vocab.txt. They are read relative to
    the directory the run was started in."""
    from bert_jax.convert import cli as convert_cli
    root = run["root"]
    monkeypatch.chdir(root)
    args = ["init_from='scratch'", "data.vocab_file='vocab.txt'", f"data.data_dir={DATA!r}", "data.max_seq_length=64",
            *SHAPE, "optim.total_steps=2", "checkpoint.every_steps=2"]
    launch.run_finetuning(launch.load_config(RTE, args), "relative_run")
    workdir = str(root / "relative_run")
    monkeypatch.chdir(ROOT)  # elsewhere: vocab.txt does not resolve here
    assert not os.path.exists("vocab.txt")
    assert launch.evaluate_main(["--config", RTE, "--workdir", workdir, f"--config.data.data_dir={DATA}",
                                 "--config.data.max_seq_length=64"]) == 0
    assert json.load(open(os.path.join(workdir, "eval", "dev_results.json")))["num_examples"] == 250
    out = str(root / "relative_hf")
    assert convert_cli.main(["--from", "bert-jax", workdir, "--to-hf", out]) == 0
    with open(os.path.join(out, "vocab.txt")) as a, open(root / "vocab.txt") as b:
        assert a.read() == b.read()


def test_glue_submit_refuses_a_run_without_test_predictions_and_a_file_as_output(run, capsys):
    """A run evaluated on dev only gave '0 submission file(s)' and exit 0 with an empty folder; an
    --output that is a file gave a FileExistsError traceback."""
    out = run["root"] / "sub_none"
    assert launch.glue_submit_main(["--output", str(out), run["workdir"]]) == 2
    assert "has no GLUE test predictions" in capsys.readouterr().err and not out.exists()
    afile = run["root"] / "afile"
    afile.write_text("mine\n")
    assert launch.glue_submit_main(["--output", str(afile), run["workdir"]]) == 2
    assert "is a file; pass a folder" in capsys.readouterr().err and afile.read_text() == "mine\n"
    typo = str(run["root"] / "rnu")  # was "has no eval/ folder; run 'bert-jax evaluate --split test' on it"
    assert launch.glue_submit_main(["--output", str(out), typo]) == 2
    assert f"{typo} does not exist or is not a folder" in capsys.readouterr().err and not out.exists()
    # a multi-seed run, and runs of other tasks: the advice to evaluate them on test could not help
    seeds = run["root"] / "seeds"
    os.makedirs(seeds / "seed_0"), os.makedirs(seeds / "seed_1"), os.makedirs(seeds / "eval")
    assert launch.glue_submit_main(["--output", str(out), str(seeds)]) == 2
    assert (f"{seeds} is a multi-seed run: its test predictions are in its seed runs; evaluate one with 'bert-jax "
            f"evaluate --split test --workdir {seeds / 'seed_0'}'") in capsys.readouterr().err
    for name, record, what in (("ner", {"mode": "finetune", "task": "conll2003", "model": {}},
                                "a task='conll2003' run"), ("pre", {"mode": "pretrain", "model": {}}, "a pretraining run")):
        os.makedirs(run["root"] / name / "eval" / "test")
        (run["root"] / name / "config.json").write_text(json.dumps(record))
        assert launch.glue_submit_main(["--output", str(out), str(run["root"] / name)]) == 2
        assert f"is {what}, not a GLUE fine-tuning run" in capsys.readouterr().err
    assert not out.exists()


def _bad_copy(run, name, edit):
    target = run["root"] / name
    shutil.copytree(DATA, target)
    edit(target)
    return str(target)


@pytest.mark.parametrize("case", ["missing_column", "unknown_label", "empty_split"])
def test_bad_glue_input_is_refused_naming_file_and_line(run, case, capsys):
    def missing_column(d):
        lines = (d / "train.tsv").read_text().splitlines()
        lines[5] = "\t".join(lines[5].split("\t")[:2])
        (d / "train.tsv").write_text("\n".join(lines) + "\n")

    def unknown_label(d):
        lines = (d / "train.tsv").read_text().splitlines()
        cols = lines[7].split("\t")
        lines[7] = "\t".join(cols[:-1] + ["entailed"])
        (d / "train.tsv").write_text("\n".join(lines) + "\n")

    def empty_split(d):
        (d / "dev.tsv").write_text((d / "dev.tsv").read_text().splitlines()[0] + "\n")

    data = _bad_copy(run, case, locals()[case])
    workdir = run["root"] / f"ft_{case}"
    args = [a for a in run["args"] if not a.startswith("data.data_dir")] + [f"data.data_dir={data!r}",
                                                                            "optim.total_steps=2"]
    code = launch.finetune_main(["--config", RTE, "--workdir", str(workdir), *[f"--config.{a}" for a in args]])
    err = capsys.readouterr().err
    assert code == 2, err
    want = {"missing_column": "train.tsv:6", "unknown_label": "train.tsv:8", "empty_split": "dev"}[case]
    assert want in err, err
    if case == "unknown_label":
        assert "entailed" in err and "not_entailment" in err
    assert not workdir.exists()


def test_non_numeric_stsb_score_is_refused_naming_file_and_line(run, capsys):
    def edit(d):
        lines = (d / "train.tsv").read_text().splitlines()
        cols = lines[4].split("\t")
        lines[4] = "\t".join(cols[:-1] + ["high"])
        (d / "train.tsv").write_text("\n".join(lines) + "\n")

    target = run["root"] / "stsb_bad"
    shutil.copytree(os.path.join(ROOT, "data", "tasks", "glue_similarity"), target)
    edit(target)
    workdir = run["root"] / "ft_stsb_bad"
    args = [a for a in run["args"] if not a.startswith("data.data_dir")] + [f"data.data_dir={str(target)!r}"]
    code = launch.finetune_main(["--config", os.path.join(ROOT, "configs", "glue", "stsb.py"), "--workdir",
                                 str(workdir), *[f"--config.{a}" for a in args]])
    err = capsys.readouterr().err
    assert code == 2 and "train.tsv:5" in err and "high" in err, err
    assert not workdir.exists()


def test_several_seeds_give_a_summary_with_mean_and_std(run, capsys):
    workdir = str(run["root"] / "seeds")
    code = launch.finetune_main(["--config", RTE, "--workdir", workdir, "--config.seeds=0,1",
                                 "--config.optim.total_steps=2", "--config.checkpoint.every_steps=0",
                                 *[f"--config.{a}" for a in run["args"]]])
    assert code == 0
    summary = json.load(open(os.path.join(workdir, "eval", "summary.json")))
    assert summary["seeds"] == [0, 1]
    acc = summary["metrics"]["accuracy"]
    per_seed = [json.load(open(os.path.join(workdir, f"seed_{s}", "eval", "dev_results.json")))["accuracy"]
                for s in (0, 1)]
    assert acc["values"] == per_seed
    assert acc["mean"] == pytest.approx(sum(per_seed) / 2)
    assert acc["std"] == pytest.approx(abs(per_seed[0] - per_seed[1]) / 2 ** 0.5)
    assert "mean +- std over seeds [0, 1]" in capsys.readouterr().out
    # a third seed at a lower learning rate (what a NaN stop of that seed advises): the finished
    # seeds train no step and keep their record, where the whole command was refused
    recorded = [json.load(open(os.path.join(workdir, f"seed_{s}", "config.json"))) for s in (0, 1)]
    code = launch.finetune_main(["--config", RTE, "--workdir", workdir, "--config.seeds=0,1,2",
                                 "--config.optim.total_steps=2", "--config.checkpoint.every_steps=0",
                                 *[f"--config.{a}" for a in run["args"]], "--config.optim.learning_rate=1e-5"])
    assert code == 0, capsys.readouterr().err
    assert [json.load(open(os.path.join(workdir, f"seed_{s}", "config.json"))) for s in (0, 1)] == recorded
    third = json.load(open(os.path.join(workdir, "seed_2", "config.json")))
    assert third["optim"]["learning_rate"] == 1e-5 and "resumed_with" not in third["resolved"]
    assert json.load(open(os.path.join(workdir, "eval", "summary.json")))["seeds"] == [0, 1, 2]


def test_evaluating_with_another_model_shape_is_refused_in_one_line(run, capsys):
    """A config whose model shape is not the run's: one line (exit 2) naming both shapes, not a
    traceback from the restore; following its advice (the checkpoint's shape, as flags; it advised
    a new --workdir, which holds no checkpoint to evaluate) evaluates."""
    workdir = _copy_run(run, "other_shape")
    args = ["--config", RTE, "--workdir", workdir, *[f"--config.{a}" for a in run["args"]]]
    capsys.readouterr()
    assert launch.evaluate_main(args + ["--config.model.intermediate_size=128"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bert-jax evaluate: ") and "different model shape" in err[0]
    assert "shape: intermediate_size=64 (config: 128). " in err[0], err
    assert not os.path.exists(os.path.join(workdir, "eval"))
    advised = err[0].split("give the checkpoint's shape (")[1].split(")")[0].split()
    assert advised == ["--config.model.intermediate_size=64"], err  # only what differs
    assert launch.evaluate_main(args + ["--config.model.intermediate_size=128"] + advised) == 0  # as advised
    shutil.rmtree(os.path.join(workdir, "eval"))
    assert launch.evaluate_main(args + ["--step", "99"]) == 2  # a step the run does not have
    err = capsys.readouterr().err.strip().splitlines()
    steps = sorted(int(n) for n in os.listdir(os.path.join(workdir, "checkpoints")) if n.isdigit())
    assert err == [f"bert-jax evaluate: {os.path.join(workdir, 'checkpoints')} has no step 99; it has steps "
                   f"{', '.join(map(str, steps))}."]
    assert launch.evaluate_main(args + ["--step", str(steps[0])]) == 0  # one it names
    assert launch.evaluate_main(args) == 0


def test_evaluating_a_model_without_the_task_head_is_refused(run, tmp_path, capsys):
    """A mistyped --workdir (no checkpoint) with init_from an encoder-only model scored a randomly
    initialised classifier (accuracy 0.5, exit 0, a dev_results.json that looked real); it is
    refused naming the missing head, and nothing is written."""
    from bert_jax.config import BertConfig
    from bert_jax.modeling import BertModel
    shape = {a.split("=")[0].split(".")[1]: int(a.split("=")[1]) for a in SHAPE}
    encoder = str(tmp_path / "encoder")
    BertModel(BertConfig(vocab_size=1000, **shape)).save_pretrained(encoder)
    args = [a for a in run["args"] if not a.startswith("init_from")] + [f"init_from={encoder!r}"]
    typo = str(tmp_path / "rnu")
    capsys.readouterr()
    for main, extra in ((launch.evaluate_main, []), (launch.predict_main, ["--split", "test"])):
        assert main(["--config", RTE, "--workdir", typo, *[f"--config.{a}" for a in args], *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"init_from={encoder} holds no classifier.bias, classifier.weight" in err[0], err
        assert "Evaluate a fine-tuning workdir" in err[0] and not os.path.exists(typo)


def test_a_run_is_evaluated_with_its_own_data_settings_unless_the_command_line_sets_them(run, capsys, caplog):
    """The run trained at data.max_seq_length=64; `evaluate --config rte.py --workdir W` (what
    glue-submit advises) stopped at "data.data_dir is empty", and with only the data folder given
    scored the run at the config file's 128, unsaid. Both now use what the run recorded; a length
    given on the command line wins."""
    workdir = _copy_run(run, "own_settings")
    with caplog.at_level("INFO", logger="bert_jax"):
        assert launch.evaluate_main(["--config", RTE, "--workdir", workdir]) == 0
    assert _results(workdir) == _results(run["workdir"])  # as the run's own final evaluation
    assert _results(workdir)[0]["inputs"]["max_seq_length"] == 64
    scored = json.load(open(os.path.join(workdir, "eval", "dev_results.json")))["model"]
    assert scored == os.path.join(os.path.abspath(workdir), "checkpoints", str(_results(workdir)[0]["step"]))
    taken = [r.getMessage() for r in caplog.records if "records them" in r.getMessage()]
    assert len(taken) == 1 and "data.max_seq_length=64" in taken[0] and f"data.data_dir={DATA}" in taken[0], taken
    caplog.clear()
    with caplog.at_level("INFO", logger="bert_jax"):
        assert launch.evaluate_main(["--config", RTE, "--workdir", workdir, "--config.data.max_seq_length=32"]) == 0
    assert "data.max_seq_length" not in " ".join(r.getMessage() for r in caplog.records if "records them" in
                                                   r.getMessage())
    scored = json.load(open(os.path.join(workdir, "eval", "dev_results.json")))
    assert scored["inputs"]["max_seq_length"] == 32 and scored["num_examples"] == 250  # as asked, and said


def test_a_run_of_another_task_given_as_init_from_is_scored_with_a_warning(run, tmp_path, capsys, caplog):
    """Scoring the RTE run as SST-2 through init_from (its 2-label head fits) gave accuracy 0.5 with
    nothing said. Scoring across tasks that share labels is a use (zero-shot), so it is said, not
    refused -- also for init_from the run's checkpoints/ folder."""
    sst2 = os.path.join(ROOT, "configs", "glue", "sst2.py")
    args = [f"--config.{a}" for a in run["args"] if not a.startswith(("init_from", "data.data_dir"))]
    step = os.path.join(run["workdir"], "checkpoints")
    with caplog.at_level("WARNING", logger="bert_jax"):
        assert launch.evaluate_main(["--config", sst2, "--workdir", str(tmp_path / "scored"), f"--config.init_from={step}",
                                     f"--config.data.data_dir={os.path.join(ROOT, 'data', 'tasks', 'glue_section')}",
                                     *args]) == 0
    said = [r.getMessage() for r in caplog.records if "fine-tuning run" in r.getMessage()]
    assert said == [f"init_from={step} is a task='rte' fine-tuning run (its config.json): its rte head is scored on "
                    "sst2 data as it is; to fine-tune it on sst2 first, pass it as --config.init_from to bert-jax "
                    "finetune."], said


def test_a_multi_seed_run_or_one_without_a_checkpoint_yet_is_named_as_such(run, tmp_path, capsys):
    """Both were told "holds no checkpoint and init_from is empty; evaluate a fine-tuning workdir,
    or pass --config.init_from", which was no help: a multi-seed run's checkpoints are in its seed
    runs, and a run still in its first steps has saved none yet."""
    args = [f"--config.{a}" for a in run["args"] if not a.startswith("init_from")]
    seeds = tmp_path / "seeds"
    for s in ("seed_0", "seed_1", "eval"):
        os.makedirs(seeds / s)
    capsys.readouterr()
    assert launch.evaluate_main(["--config", RTE, "--workdir", str(seeds), *args]) == 2
    assert (f"{seeds} is a multi-seed run: each of its runs (seed_0, seed_1) has its own checkpoints; evaluate one "
            f"with --workdir {seeds / 'seed_0'}") in capsys.readouterr().err
    going = tmp_path / "going"
    os.makedirs(going)
    shutil.copy(os.path.join(run["workdir"], "config.json"), going / "config.json")
    assert launch.evaluate_main(["--config", RTE, "--workdir", str(going), *args]) == 2
    assert f"{going} holds a run (its config.json) that has saved no checkpoint yet" in capsys.readouterr().err
    assert sorted(os.listdir(going)) == ["config.json"]


def test_a_converted_run_names_its_labels_and_scores_the_same_into_a_new_workdir_quietly(run, tmp_path, capsys, caplog):
    """The Hugging Face export of a fine-tuning run names its classes (id2label was LABEL_0, ..).
    docs/tasks.md scores such a model with init_from and a new --workdir; that printed
    "WARNING report not written: ... pass a run directory", about a report nobody asked for."""
    from bert_jax.convert import cli as convert_cli
    model = str(tmp_path / "model_hf")
    assert convert_cli.main(["--from", "bert-jax", run["workdir"], "--to-hf", model]) == 0
    with open(os.path.join(model, "config.json")) as f:
        hf_config = json.load(f)  # the task's class names, as a Hugging Face pipeline shows them (was LABEL_0, ..)
    assert hf_config["id2label"] == {"0": "entailment", "1": "not_entailment"}
    assert hf_config["label2id"] == {"entailment": 0, "not_entailment": 1}
    args = [a for a in run["args"] if not a.startswith("init_from")] + [f"init_from={model!r}"]
    workdir = str(tmp_path / "scored")
    capsys.readouterr()
    with caplog.at_level("INFO"):
        assert launch.evaluate_main(["--config", RTE, "--workdir", workdir, *[f"--config.{a}" for a in args]]) == 0
    out = capsys.readouterr()
    assert "report" not in caplog.text + out.err, caplog.text + out.err
    assert "accuracy" in out.out
    # the converted model scores what the run's own final evaluation scored
    assert _results(workdir)[0]["accuracy"] == _results(run["workdir"])[0]["accuracy"]
    # its results name the model scored (step 0: no fine-tuning step was taken in this workdir)
    scored = json.load(open(os.path.join(workdir, "eval", "dev_results.json")))
    assert (scored["model"], scored["step"]) == (os.path.abspath(model), 0)
    # scored on a task of another label count (STS-B: 1), its 2-label head was reported as missing
    stsb = os.path.join(ROOT, "configs", "glue", "stsb.py")
    similarity = os.path.join(ROOT, "data", "tasks", "glue_similarity")
    other = [a for a in args if not a.startswith("data.data_dir")] + [f"data.data_dir={similarity!r}"]
    capsys.readouterr()
    assert launch.evaluate_main(["--config", stsb, "--workdir", str(tmp_path / "stsb"),
                                 *[f"--config.{a}" for a in other]]) == 2
    err = capsys.readouterr().err
    assert (f"init_from={model} holds a head of another shape (its head is for another number of labels: "
            "classifier.bias: checkpoint (2,), needs (1,)") in err and "holds no" not in err, err


def test_resuming_with_another_task_or_changed_data_is_refused_in_one_line(run, tmp_path, capsys):
    """Resuming an RTE run with the SST-2 config (the same 2-label head) went on training it on the
    other data, and evaluating it with that config scored it on SST-2; resuming it on a training set that changed since the checkpoint was a 25-line
    traceback. Both are one line (exit 2) and write nothing."""
    workdir = _copy_run(run, "resumed")
    before = sorted(os.listdir(workdir))
    args = [f"--config.{a}" for a in run["args"]] + ["--config.optim.total_steps=8"]
    capsys.readouterr()
    sst2 = os.path.join(ROOT, "configs", "glue", "sst2.py")
    assert launch.finetune_main(["--config", sst2, "--workdir", workdir, *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"bert-jax finetune: {workdir} holds a task='rte' run (its config.json) and this config has "
                   "task='sst2': resuming would go on training that run on other data. Use a new --workdir, or "
                   "resume it with the config it was started with."]
    # evaluating it with that config would score the RTE model on SST-2 data
    assert launch.evaluate_main(["--config", sst2, "--workdir", workdir, *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"bert-jax evaluate: {workdir} holds a task='rte' run (its config.json) and this config has "
                   "task='sst2': evaluating would score that run's model on other data. Evaluate it with the "
                   "config it was trained with, or give this config's own fine-tuning workdir."]
    changed = tmp_path / "changed"
    shutil.copytree(DATA, changed)
    lines = (changed / "train.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
    (changed / "train.tsv").write_text("".join(lines[:-40]), encoding="utf-8")
    assert launch.finetune_main(["--config", RTE, "--workdir", workdir, *args,
                                 f"--config.data.data_dir={str(changed)!r}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the saved loader position is for 1600 examples but the data now has 1560" in err[0]
    assert sorted(os.listdir(workdir)) == before
    assert launch.finetune_main(["--config", RTE, "--workdir", workdir, *args]) == 0  # as it was started


def test_a_finished_run_evaluates_with_what_its_config_json_records(run, capsys):
    """`evaluate` on a fine-tuning workdir needs neither init_from, the vocabulary nor the model
    shape again (it refused "init_from is empty" although config.json records all three), and
    scores the same as with them given; a data.lowercase other than the run's -- a cased model fed
    lower-cased text, which scored low with exit 0 -- is refused, and its advice evaluates."""
    full, short = _copy_run(run, "full_args"), _copy_run(run, "recorded")
    _evaluate(run, full, 1)
    given = ["--config", RTE, "--workdir", short, f"--config.data.data_dir={DATA!r}", "--config.data.max_seq_length=64"]
    capsys.readouterr()
    assert launch.evaluate_main(given + ["--config.data.lowercase=False"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"bert-jax evaluate: {short} was trained with data.lowercase=True (its config.json) and this "
                   "config has data.lowercase=False: the model would read other tokens than it learned. Pass "
                   "--config.data.lowercase=True."]
    assert not os.path.exists(os.path.join(short, "eval"))
    assert launch.evaluate_main(given + ["--config.data.lowercase=True"]) == 0
    assert _results(short) == _results(full)


def test_a_finetuning_run_of_init_from_shape_can_itself_be_init_from(run, tmp_path):
    """A fine-tuning run whose shape came from init_from records model.* = -1; used as init_from
    (an intermediate task before the target one) it was refused as "a model of another shape:
    hidden_size=-1". Its config.json now records the model as built."""
    from bert_jax.config import BertConfig
    from bert_jax.modeling import BertModel
    shape = {a.split("=")[0].split(".")[1]: int(a.split("=")[1]) for a in SHAPE}
    encoder = str(tmp_path / "encoder")
    BertModel(BertConfig(vocab_size=1000, **shape)).save_pretrained(encoder)
    vocab = str(run["root"] / "vocab.txt")
    common = [f"data.vocab_file={vocab!r}", f"data.data_dir={DATA!r}", "data.max_seq_length=64",
              "optim.total_steps=2", "checkpoint.every_steps=2"]
    first = str(tmp_path / "first")
    launch.run_finetuning(launch.load_config(RTE, common + [f"init_from={encoder!r}"]), first)
    second = str(tmp_path / "second")
    result = launch.run_finetuning(launch.load_config(RTE, common + [f"init_from={first!r}"]), second)
    assert result["exit_code"] == 0 and result["step"] == 2
    with open(os.path.join(second, "config.json"), encoding="utf-8") as f:
        assert json.load(f)["resolved"]["model"]["hidden_size"] == 32
    # evaluated later without init_from, whose model directory is gone: the shape is the recorded one
    shutil.rmtree(encoder)
    shutil.rmtree(os.path.join(first, "eval"))
    assert launch.evaluate_main(["--config", RTE, "--workdir", first, f"--config.data.data_dir={DATA!r}",
                                 "--config.data.max_seq_length=64"]) == 0
    assert _results(first)[0]["step"] == 2


def test_odd_config_json_and_a_pretraining_workdir_are_refused_in_one_line(run, tmp_path, capsys):
    """A run config.json of valid JSON but another shape ("resolved": null) was an AttributeError
    traceback where a run's config is read; a pretraining workdir given to evaluate named advice
    that could not work ("evaluate it with the config it was trained with")."""
    from bert_jax import run_config
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "config.json").write_text(json.dumps({"mode": "finetune", "model": {}, "resolved": None}))
    with pytest.raises(ValueError, match=r"config.json: not a bert-jax run config \(its 'resolved' is null"):
        run_config.read_recorded(str(odd))
    assert run_config.recorded_run(str(odd)) is None  # nothing to compare with
    assert run_config.check_same_run({"mode": "finetune", "task": "rte"}, str(odd), "evaluate", None) == []
    pre = tmp_path / "pre"
    (pre / "checkpoints" / "2").mkdir(parents=True)
    (pre / "config.json").write_text(json.dumps({"mode": "pretrain", "model": {"hidden_size": 32}}))
    capsys.readouterr()
    assert launch.evaluate_main(["--config", RTE, "--workdir", str(pre), *[f"--config.{a}" for a in run["args"]]]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"bert-jax evaluate: {pre} holds a mode='pretrain' run (its config.json) and this config has mode='finetune': "
        f"a pretraining run is fine-tuned, not evaluated, by a fine-tuning config: pass --config.init_from={pre} "
        "with a new --workdir."]
    assert sorted(os.listdir(pre)) == ["checkpoints", "config.json"]


def test_convert_overwrite_onto_the_folder_of_the_runs_vocabulary_keeps_it(run, tmp_path):
    """The output's tokenizer files were removed before the run's recorded vocabulary was read, so
    exporting into the folder that holds it deleted the only copy."""
    from bert_jax.convert import cli as convert_cli
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    shutil.copy(run["root"] / "vocab.txt", model_dir / "vocab.txt")
    workdir = _copy_run(run, "vocab_elsewhere")
    with open(os.path.join(workdir, "config.json"), encoding="utf-8") as f:
        recorded = json.load(f)
    recorded["resolved"]["data"]["vocab_file"] = recorded["data"]["vocab_file"] = str(model_dir / "vocab.txt")
    with open(os.path.join(workdir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(recorded, f)
    assert convert_cli.main(["--from", "bert-jax", workdir, "--to-hf", str(model_dir), "--overwrite"]) == 0
    assert (model_dir / "vocab.txt").read_bytes() == (run["root"] / "vocab.txt").read_bytes()
    # with the tokenizer files made for the run's casing (data.lowercase), beside the model
    assert sorted(os.listdir(model_dir)) == ["config.json", "model.safetensors", "special_tokens_map.json",
                                             "tokenizer.json", "tokenizer_config.json", "vocab.txt"]


def test_a_finetuning_run_converts_with_its_vocabulary(run, tmp_path):
    """`convert --from bert-jax WORKDIR --to-hf` wrote no vocab.txt for a training run (a tokenizer
    could not be loaded from the export); it copies the vocabulary the run's config.json records."""
    from bert_jax.convert import cli as convert_cli
    from bert_jax.tokenization import BertTokenizerFast
    out = str(tmp_path / "hf")
    assert convert_cli.main(["--from", "bert-jax", run["workdir"], "--to-hf", out]) == 0
    with open(os.path.join(out, "vocab.txt"), "rb") as a, open(run["root"] / "vocab.txt", "rb") as b:
        assert a.read() == b.read()
    assert len(BertTokenizerFast.from_pretrained(out).get_vocab()) == 1000


def test_converting_a_run_whose_config_json_is_damaged_warns_with_advice_for_convert(run, tmp_path, caplog):
    """The warning for a run's unreadable config.json advised ``--config.init_from=...``, a flag
    that ``bert-jax convert`` does not take; it keeps to what works there."""
    import logging
    import shutil
    from bert_jax.convert import cli as convert_cli
    workdir = tmp_path / "run"
    shutil.copytree(run["workdir"], workdir)
    (workdir / "config.json").write_text('{"model": ', encoding="utf-8")
    out = tmp_path / "hf"
    with caplog.at_level(logging.WARNING):
        assert convert_cli.main(["--from", "bert-jax", str(workdir), "--to-hf", str(out)]) == 0
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name.startswith("bert_jax")]
    assert "config.json:1: not a bert-jax run config" in warning and "restore it from a copy)" in warning
    assert "--config" not in warning and "copy the vocab.txt it was trained with into the output" in warning
    shutil.copy(run["root"] / "vocab.txt", out / "vocab.txt")  # the advice, followed
    from bert_jax.tokenization import BertTokenizerFast
    assert len(BertTokenizerFast.from_pretrained(str(out)).get_vocab()) == 1000


def test_ctrl_c_while_reading_data_or_in_the_final_evaluation_is_one_line(run, tmp_path, capsys, monkeypatch):
    """Ctrl-C outside the training steps: while the data was read it was a traceback; in the final
    evaluation the first Ctrl-C was ignored (the run finished with exit 0) and a second one was a
    traceback. Now both are one line, exit 130; the final checkpoint is kept and the rerun the
    message advises evaluates it."""
    import signal
    from bert_jax import cli, finetuning
    workdir = str(tmp_path / "run")
    argv = ["finetune", "--config", RTE, "--workdir", workdir, *[f"--config.{a}" for a in run["args"]],
            "--config.optim.total_steps=4", "--config.checkpoint.every_steps=100"]
    message = ("bert-jax finetune: interrupted (Ctrl-C); checkpoints are written whole; run the same command again "
               "to go on (training resumes from its newest checkpoint, and a finished one is evaluated again).")

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt
    with monkeypatch.context() as m:
        m.setattr(finetuning, "_load_splits", ctrl_c)
        assert cli.main(argv) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1:] == [message] and not os.path.exists(workdir)

    evaluate = finetuning.SplitEvaluator.__call__

    def interrupted(self, context, params, step, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # as a terminal's Ctrl-C, delivered during the evaluation
        time.sleep(0.2)
        return evaluate(self, context, params, step, **kwargs)
    # a terminal's SIGINT handling: CI may run the tests from a background job, which ignores SIGINT
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with monkeypatch.context() as m:
            m.setattr(finetuning.SplitEvaluator, "__call__", interrupted)
            assert cli.main(argv) == 130
    finally:
        signal.signal(signal.SIGINT, previous)
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == message and not any("Traceback" in line for line in err), err
    assert os.listdir(os.path.join(workdir, "checkpoints")) == ["4"]
    assert not os.path.exists(os.path.join(workdir, "eval", "dev_results.json"))
    assert cli.main(argv) == 0  # the advised rerun: nothing to train, the evaluation runs
    assert _results(workdir)[0]["step"] == 4

    # A preemption's SIGTERM in the final evaluation stops nothing that is half done: training is
    # over and the last checkpoint is whole, so the evaluation finishes and writes its results.
    shutil.rmtree(workdir)

    def preempted(self, context, params, step, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)
        return evaluate(self, context, params, step, **kwargs)
    previous = signal.getsignal(signal.SIGTERM)
    with monkeypatch.context() as m:
        m.setattr(finetuning.SplitEvaluator, "__call__", preempted)
        assert cli.main(argv) == 0
    assert signal.getsignal(signal.SIGTERM) is previous  # the stop hook gave SIGTERM back
    assert checkpointing.verify_step(os.path.join(workdir, "checkpoints"), 4).status == "verified"
    assert _results(workdir)[0]["step"] == 4


def _recorded(workdir):
    with open(os.path.join(workdir, "config.json"), encoding="utf-8") as f:
        run = json.load(f)
    return run["data"]["lowercase"], run["resolved"]["model"]["hidden_act"], run["resolved"]["model"]["layer_norm_eps"]


def test_a_model_directorys_casing_and_activation_come_with_it_unless_set(run, tmp_path, capsys):
    """Fine-tuning took only the shape from init_from: a cased model directory (its
    tokenizer_config.json says do_lower_case false) had its text lower-cased, and an original
    TensorFlow model (GELU in its tanh form: gelu_new here) was fine-tuned with the exact GELU,
    both unsaid. Casing, activation and LayerNorm epsilon now come with the model (an original
    release says its casing by name, as the original code reads it); a value given still wins,
    and a resume with another activation is refused with the flag that matches the run."""
    from bert_jax.config import BertConfig
    from bert_jax.convert import cli as convert_cli
    from bert_jax.modeling import BertModel
    from bert_jax.warm_start import source_lowercase
    shape = {a.split("=")[0].split(".")[1]: int(a.split("=")[1]) for a in SHAPE}
    encoder = str(tmp_path / "encoder")
    BertModel(BertConfig(vocab_size=1000, hidden_act="gelu_new", layer_norm_eps=1e-7, **shape)).save_pretrained(encoder)
    shutil.copy(run["root"] / "vocab.txt", encoder)
    with open(os.path.join(encoder, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": False}, f)
    common = [f"data.data_dir={DATA!r}", "data.max_seq_length=64", "optim.total_steps=2", "checkpoint.every_steps=2"]
    inherited = str(tmp_path / "inherited")
    launch.run_finetuning(launch.load_config(RTE, common + [f"init_from={encoder!r}"]), inherited)
    assert _recorded(inherited) == (False, "gelu_new", 1e-7)
    given = str(tmp_path / "given")
    launch.run_finetuning(launch.load_config(RTE, common + [f"init_from={encoder!r}", "data.lowercase=True",
                                                            "model.hidden_act='gelu'", "model.layer_norm_eps=1e-12"]),
                          given)
    assert _recorded(given) == (True, "gelu", 1e-12)
    # resumed without restating them (as a run recorded by an older bert-jax is): what it was built
    # with, not init_from's -- it went on with gelu_new, unsaid
    launch.run_finetuning(launch.load_config(RTE, common[:-2] + [f"init_from={encoder!r}", "optim.total_steps=4",
                                                                 "checkpoint.every_steps=2"]), given)
    assert _recorded(given) == (True, "gelu", 1e-12)
    flags = ["--config", RTE, "--workdir", inherited, *[f"--config.{a}" for a in common],
             f"--config.init_from={encoder}"]
    capsys.readouterr()
    assert launch.finetune_main(flags + ["--config.model.hidden_act=gelu"]) == 2
    err = capsys.readouterr().err
    assert "model.hidden_act 'gelu_new' -> 'gelu'" in err and "--config.model.hidden_act=gelu_new" in err, err
    # the same command as before is the same run (nothing refused, nothing changed)
    assert launch.finetune_main(flags) == 0
    assert _recorded(inherited) == (False, "gelu_new", 1e-7)

    # a transformers 5 folder may hold tokenizer.json alone: its normaliser says the casing
    from bert_jax.tokenization import BertTokenizerFast
    BertTokenizerFast(str(run["root"] / "vocab.txt"), do_lower_case=False).save_pretrained(str(tmp_path / "tok"))
    shutil.copy(tmp_path / "tok" / "tokenizer.json", encoder)
    os.remove(os.path.join(encoder, "tokenizer_config.json"))
    assert source_lowercase(encoder) == (False, f"the tokenizer files in {encoder}")

    # an original TensorFlow folder: GELU is its tanh form, and the release's name says the casing
    tf_dir = str(tmp_path / "cased_L-2_H-32_A-4")
    assert convert_cli.main(["--from", "hf", encoder, "--to-tf", tf_dir]) == 0
    for name in ("tokenizer_config.json", "tokenizer.json", "special_tokens_map.json"):
        if os.path.exists(os.path.join(tf_dir, name)):
            os.remove(os.path.join(tf_dir, name))  # as Google's releases: vocab.txt alone
    assert source_lowercase(tf_dir) == (False, "the release name cased_L-2_H-32_A-4")
    from_tf = str(tmp_path / "from_tf")
    launch.run_finetuning(launch.load_config(RTE, common + [f"init_from={tf_dir!r}"]), from_tf)
    assert _recorded(from_tf)[:2] == (False, "gelu_new")
    for name, lowercase in (("uncased_L-2_H-32_A-4", True), ("wwm_uncased_L-2_H-32_A-4", True),
                            ("multi_cased_L-2_H-32_A-4", False), ("multilingual_L-2_H-32_A-4", True),
                            ("my_model", None)):
        renamed = str(tmp_path / name)
        os.rename(tf_dir, renamed)
        found = source_lowercase(renamed)
        assert (found and found[0]) == lowercase, (name, found)
        tf_dir = renamed
