"""SQuAD v1.1 / v2.0 as registered tasks: fine-tuning end to end on the bundled cloze set
(``data/tasks/squad_cloze``), the v2.0 threshold round trip, the same predictions on 1 and 8
devices, and bad input refused through the command line."""

import glob
import json
import os
import shutil
import subprocess
import sys

import pytest

jax = pytest.importorskip("jax")

from bert_jax import cli, finetuning, launch  # noqa: E402
from bert_jax.metrics import squad_evaluate  # noqa: E402
from bert_jax.tasks import squad_data  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "data", "tasks", "squad_cloze")
CONFIGS = {"1.1": os.path.join(ROOT, "configs", "squad", "v1.py"),
           "2.0": os.path.join(ROOT, "configs", "squad", "v2.py")}
TINY = ["model.hidden_size=32", "model.num_hidden_layers=2", "model.num_attention_heads=4",
        "model.intermediate_size=64", "model.max_position_embeddings=128", "data.max_seq_length=128",
        "data.doc_stride=32", "checkpoint.async_save=False", "log_every_steps=10", "eval_every_steps=0"]

pytestmark = pytest.mark.skipif(not os.path.isdir(DATA), reason="data/tasks/squad_cloze is not in this checkout")


@pytest.fixture(scope="module")
def vocab(tmp_path_factory):
    """A 1,000-token WordPiece vocabulary trained on the bundled corpus."""
    tokenizers = pytest.importorskip("tokenizers")
    root = tmp_path_factory.mktemp("squad_vocab")
    tok = tokenizers.BertWordPieceTokenizer(lowercase=True)
    tok.train(sorted(glob.glob(os.path.join(ROOT, "data", "corpus", "*.txt"))), vocab_size=1000, min_frequency=2,
              show_progress=False)
    tok.save_model(str(root))
    return str(root / "vocab.txt")


def data_file(split, version):
    return os.path.join(DATA, f"{split}-v{version}.json")


def overrides(vocab, version="1.1", train=None, dev=None, *extra):
    return ["init_from='scratch'", f"data.vocab_file={vocab!r}",
            f"data.train_file={train or data_file('train', version)!r}",
            f"data.dev_file={dev or data_file('dev', version)!r}", *TINY, *extra]


def config(vocab, version="1.1", *extra, train=None, dev=None):
    return launch.load_config(CONFIGS[version], overrides(vocab, version, train, dev, *extra))


def cli_args(command, vocab, workdir, version="1.1", *extra, train=None, dev=None):
    return [command, "--config", CONFIGS[version], "--workdir", str(workdir),
            *[f"--config.{o}" for o in overrides(vocab, version, train, dev, *extra)]]


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def question_ids(path):
    return [qa["id"] for a in load(path)["data"] for p in a["paragraphs"] for qa in p["qas"]]


# ----------------------------------------------------------------------------- v1.1 end to end


@pytest.fixture(scope="module")
def v1_run(vocab, tmp_path_factory):
    """A short v1.1 fine-tuning run from scratch (30 steps), its checkpoint kept."""
    workdir = str(tmp_path_factory.mktemp("squad_v1"))
    result = launch.run_finetuning(config(vocab, "1.1", "optim.total_steps=30", "optim.learning_rate=1e-3",
                                          "checkpoint.every_steps=30"), workdir)
    return workdir, result


def test_v1_run_writes_predictions_the_official_metric_scores(v1_run):
    workdir, result = v1_run
    results = load(os.path.join(workdir, "eval", "dev_results.json"))
    predictions = load(os.path.join(workdir, "eval", "dev", "predictions.json"))
    nbest = load(os.path.join(workdir, "eval", "dev", "nbest_predictions.json"))
    qids = question_ids(data_file("dev", "1.1"))
    assert sorted(predictions) == sorted(qids) == sorted(nbest) and len(qids) == 420
    assert all(isinstance(v, str) for v in predictions.values())
    assert not os.path.exists(os.path.join(workdir, "eval", "dev", "null_odds.json"))  # v2.0 only
    scores = squad_evaluate(load(data_file("dev", "1.1")), predictions, "1.1")
    assert results["exact_match"] == pytest.approx(scores["exact_match"])
    assert results["f1"] == pytest.approx(scores["f1"]) and results["missing"] == 0
    assert result["eval"]["f1"] == pytest.approx(results["f1"])
    # The data's README reports the first-sentence baseline as F1 8.9 (its sentence splitter
    # differs a little from the task's) and the first 3 words as 8.1.
    assert results["baseline_first_sentence_f1"] == pytest.approx(8.9, abs=0.3)
    assert results["baseline_first_3_words_f1"] == pytest.approx(8.1, abs=0.05)
    assert results["num_examples"] == 420 and results["skipped"] == 0
    assert results["prediction_files"] == ["eval/dev/predictions.json", "eval/dev/nbest_predictions.json"]
    for entries in nbest.values():
        assert sum(e["probability"] for e in entries) == pytest.approx(1.0)
    train_info = load(os.path.join(workdir, "config.json"))["resolved"]["data"]["train"]
    assert train_info["num_examples"] == 5616 and train_info["num_windows"] > 5616  # long contexts: several windows


@pytest.mark.slow
def test_v1_model_fits_its_training_questions_far_above_trivial_baselines(vocab, tmp_path):
    """The gold positions the windows train on and the spans decoding returns agree: a small
    model (hidden 64) trained 250 steps on 40 training paragraphs (113 questions) answers
    them with F1 93.2 / EM 92.9 (measured), against 8.4 for the best trivial baseline; the
    margin asserted leaves room. Held-out questions from a pretrained encoder are
    tests/train/test_squad_end_to_end.py's subject."""
    subset = load(data_file("train", "1.1"))
    subset["data"] = subset["data"][:40]
    path = tmp_path / "train40.json"
    path.write_text(json.dumps(subset))
    workdir = str(tmp_path / "run")
    launch.run_finetuning(config(vocab, "1.1", "model.hidden_size=64", "model.intermediate_size=128",
                                 "model.hidden_dropout_prob=0.0", "model.attention_probs_dropout_prob=0.0",
                                 "optim.total_steps=250", "optim.learning_rate=2e-3", "checkpoint.every_steps=0",
                                 train=str(path), dev=str(path)), workdir)
    results = load(os.path.join(workdir, "eval", "dev_results.json"))
    print({k: v for k, v in results.items() if "f1" in k or "exact" in k})
    baseline = max(results["baseline_first_sentence_f1"], results["baseline_first_3_words_f1"])
    assert results["num_examples"] == sum(len(a["paragraphs"][0]["qas"]) for a in subset["data"]) and baseline < 15
    assert results["f1"] > baseline + 30, results
    assert results["exact_match"] > 25, results


# ----------------------------------------------------------------------------- v2.0 and thresholds


@pytest.fixture(scope="module")
def v2_run(vocab, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("squad_v2"))
    launch.run_finetuning(config(vocab, "2.0", "optim.total_steps=20", "optim.learning_rate=1e-3",
                                 "checkpoint.every_steps=20"), workdir)
    return workdir


def test_v2_dev_results_have_unanswerable_scores_and_the_best_threshold(v2_run):
    results = load(os.path.join(v2_run, "eval", "dev_results.json"))
    directory = os.path.join(v2_run, "eval", "dev")
    predictions, null_odds = load(os.path.join(directory, "predictions.json")), load(os.path.join(directory,
                                                                                                  "null_odds.json"))
    dataset = load(data_file("dev", "2.0"))
    assert sorted(predictions) == sorted(null_odds) == sorted(question_ids(data_file("dev", "2.0")))
    assert results["HasAns_total"] == 420 and results["NoAns_total"] == 300 and results["total"] == 720
    assert results["null_score_diff_threshold"] == 0.0
    for key in ("best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh"):
        assert key in results
    assert results["best_f1"] >= results["f1"]  # 0.0 is one of the thresholds searched
    # The thresholded predictions file scores as the results say (the official script's way).
    assert squad_evaluate(dataset, predictions, "2.0")["f1"] == pytest.approx(results["f1"])
    for qid, text in predictions.items():
        assert (text == "") == (null_odds[qid] > 0.0) or null_odds[qid] == float("inf")
    assert results["baseline_no_answer_f1"] == pytest.approx(100 * 300 / 720)  # the README's 41.7
    best = load(os.path.join(directory, "best_null_threshold.json"))
    assert best["best_f1_thresh"] == results["best_f1_thresh"] and best["threshold_used"] == 0.0


def test_v2_best_threshold_is_used_by_later_evaluate_and_predict(v2_run, vocab, tmp_path):
    threshold_file = os.path.join(v2_run, "eval", "dev", "best_null_threshold.json")
    best = load(threshold_file)
    run = str(tmp_path / "run")
    shutil.copytree(v2_run, run)
    values = finetuning.run_evaluation(config(vocab, "2.0", f"data.null_threshold_file={threshold_file!r}"), run)
    # The dev scores at the stored best threshold are the best scores found on dev.
    assert values["null_score_diff_threshold"] == best["best_f1_thresh"]
    assert values["f1"] == pytest.approx(best["best_f1"])
    # A file without answers (the dev questions, answers removed): predictions only.
    questions = load(data_file("dev", "2.0"))
    for article in questions["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                del qa["answers"], qa["is_impossible"]
    test_file = tmp_path / "questions.json"
    test_file.write_text(json.dumps(questions))
    code = cli.main(cli_args("predict", vocab, run, "2.0", f"data.test_file={str(test_file)!r}",
                             f"data.null_threshold_file={threshold_file!r}"))
    assert code == 0
    record = load(os.path.join(run, "eval", "test_results.json"))
    assert "f1" not in record and record["null_score_diff_threshold"] == best["best_f1_thresh"]
    predicted = load(os.path.join(run, "eval", "test", "predictions.json"))
    null_odds = load(os.path.join(run, "eval", "test", "null_odds.json"))
    assert sorted(predicted) == sorted(question_ids(data_file("dev", "2.0")))
    assert not os.path.exists(os.path.join(run, "eval", "test", "best_null_threshold.json"))
    assert null_odds == load(os.path.join(run, "eval", "dev", "null_odds.json"))  # same questions, same model
    for qid, text in predicted.items():
        assert (text == "") == (null_odds[qid] > best["best_f1_thresh"]) or null_odds[qid] == float("inf")


def test_v1_task_refuses_v2_data_and_bad_threshold_file(vocab, tmp_path, capsys):
    code = cli.main(cli_args("finetune", vocab, tmp_path / "a", "1.1", train=data_file("train", "2.0")))
    assert code == 2
    assert "is unanswerable (SQuAD v2.0 data)" in capsys.readouterr().err
    code = cli.main(cli_args("finetune", vocab, tmp_path / "b", "2.0",
                             f"data.null_threshold_file={str(tmp_path / 'none.json')!r}"))
    assert code == 2
    assert "data.null_threshold_file=" in capsys.readouterr().err
    # a v2.0 threshold given to the v1.1 task was ignored without a word
    code = cli.main(cli_args("finetune", vocab, tmp_path / "c", "1.1", "data.null_score_diff_threshold=-1.5"))
    assert code == 2
    assert "data.null_score_diff_threshold=-1.5 applies to SQuAD v2.0" in capsys.readouterr().err
    assert not any(os.path.exists(tmp_path / d) for d in "abc")


@pytest.mark.parametrize("version", ["1.1", "2.0"])
def test_a_training_file_without_any_answer_is_refused(vocab, tmp_path, capsys, version):
    """A file to predict on given as data.train_file read as all-unanswerable: v1.1 trained every
    window towards [CLS] and exited 0. The advised route, such a file as data.test_file to
    `predict`, is what test_v2_best_threshold_is_used_by_later_evaluate_and_predict runs."""
    def strip(dataset):
        for article in dataset["data"]:
            for paragraph in article["paragraphs"]:
                for qa in paragraph["qas"]:
                    qa["answers"] = []
                    qa.pop("is_impossible", None)
    train = corrupt(tmp_path, version, strip, name="questions.json", split="dev")
    assert cli.main(cli_args("finetune", vocab, tmp_path / "run", version, train=train)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"bert-jax finetune: {train}: no question has an answer, so there is nothing to train on; this "
                   "looks like a file to predict on: pass it as --config.data.test_file=PATH to 'bert-jax predict', "
                   "and a training file with answers as data.train_file."]
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- devices


@pytest.mark.slow  # ~25 s; GLUE's dev evaluation on 1 and 8 devices stays in the default run
def test_predictions_are_identical_on_one_and_eight_devices(v1_run, vocab, tmp_path):
    """``bert-jax evaluate`` of the same checkpoint with the batch split over 8 simulated CPU
    devices writes the same predictions.json, byte for byte, as on one device."""
    workdir, _ = v1_run
    one, eight = str(tmp_path / "one"), str(tmp_path / "eight")
    for target in (one, eight):
        shutil.copytree(workdir, target, ignore=shutil.ignore_patterns("eval"))
    assert cli.main(cli_args("evaluate", vocab, one, "1.1", "mesh_shape=(1,1,1)", "global_batch_size=24")) == 0
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "bert_jax.cli",
                           *cli_args("evaluate", vocab, eight, "1.1", "mesh_shape=(8,1,1)", "global_batch_size=24")],
                          env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results_8 = load(os.path.join(eight, "eval", "dev_results.json"))
    assert results_8["f1"] == load(os.path.join(one, "eval", "dev_results.json"))["f1"]
    # The n-best lists hold the same answers; their logits agree to float32 rounding.
    nbest_1, nbest_8 = (load(os.path.join(w, "eval", "dev", "nbest_predictions.json")) for w in (one, eight))
    assert nbest_1.keys() == nbest_8.keys()
    for qid in nbest_1:
        assert [e["text"] for e in nbest_1[qid]] == [e["text"] for e in nbest_8[qid]]
        for a, b in zip(nbest_1[qid], nbest_8[qid]):
            assert a["start_logit"] == pytest.approx(b["start_logit"], abs=1e-4)
            assert a["end_logit"] == pytest.approx(b["end_logit"], abs=1e-4)
    with open(os.path.join(one, "eval", "dev", "predictions.json"), "rb") as a, \
            open(os.path.join(eight, "eval", "dev", "predictions.json"), "rb") as b:
        assert a.read() == b.read()


@pytest.mark.slow
def test_predictions_are_identical_on_one_and_two_processes(v1_run, vocab, tmp_path):
    """Two processes over localhost (2 CPU devices each, the batch split over all 4) write the
    same predictions.json, byte for byte, and the same scores as one process."""
    import socket
    workdir, _ = v1_run
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    for target in (one, two):
        shutil.copytree(workdir, target, ignore=shutil.ignore_patterns("eval"))
    assert cli.main(cli_args("evaluate", vocab, one, "1.1", "mesh_shape=(1,1,1)", "global_batch_size=24")) == 0
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    base = [sys.executable, "-m", "bert_jax.cli",
            *cli_args("evaluate", vocab, two, "1.1", "mesh_shape=(4,1,1)", "global_batch_size=24",
                      "distributed.initialize=yes", f"distributed.coordinator_address='localhost:{port}'",
                      "distributed.num_processes=2")]
    procs = [subprocess.Popen(base + [f"--config.distributed.process_id={i}"], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    for p in procs:
        out, _ = p.communicate(timeout=600)
        assert p.returncode == 0, out[-3000:]
    r1, r2 = (load(os.path.join(w, "eval", "dev_results.json")) for w in (one, two))
    assert r1["exact_match"] == r2["exact_match"] and r1["f1"] == r2["f1"]
    with open(os.path.join(one, "eval", "dev", "predictions.json"), "rb") as a, \
            open(os.path.join(two, "eval", "dev", "predictions.json"), "rb") as b:
        assert a.read() == b.read()
    assert sorted(load(os.path.join(two, "eval", "dev", "predictions.json"))) == \
        sorted(question_ids(data_file("dev", "1.1")))


# ----------------------------------------------------------------------------- bad input


def corrupt(tmp_path, version, change, name="train.json", split="train"):
    """A copy of a split with ``change(dataset)`` applied; returns its path."""
    dataset = load(data_file(split, version))
    change(dataset)
    path = tmp_path / name
    path.write_text(json.dumps(dataset))
    return str(path)


def first_qa(dataset):
    return dataset["data"][3]["paragraphs"][0]["qas"][1]


def test_answer_start_off_its_text_is_an_error_naming_the_question(vocab, tmp_path):
    def shift(dataset):
        first_qa(dataset)["answers"][0]["answer_start"] += 1
    train = corrupt(tmp_path, "1.1", shift)
    qid = first_qa(load(train))["id"]
    workdir = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "bert_jax.cli", *cli_args("finetune", vocab, workdir, train=train)],
                          env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True, timeout=600,
                          cwd=ROOT)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"{train}: question {qid!r}: answer" in proc.stderr and "is not at answer_start" in proc.stderr
    assert "--config.data.allow_skips=True" in proc.stderr  # the flag, as the command line takes it
    assert not workdir.exists()


def test_malformed_json_and_missing_file_are_errors(vocab, tmp_path, capsys):
    broken = tmp_path / "broken.json"
    broken.write_text(open(data_file("train", "1.1"), encoding="utf-8").read()[:5000])
    assert cli.main(cli_args("finetune", vocab, tmp_path / "run", train=str(broken))) == 2
    assert f"{broken}: not valid JSON at line 1, column" in capsys.readouterr().err
    assert cli.main(cli_args("finetune", vocab, tmp_path / "run", train=str(tmp_path / "nowhere.json"))) == 2
    err = capsys.readouterr().err
    assert "data.train_file=" in err and "no such file" in err
    assert not (tmp_path / "run").exists()
    # UTF-16 named with its file (was a bare "'utf-8' codec can't decode byte 0xff"), and the
    # advised iconv makes it read; a UTF-8 file with a byte-order mark reads as it is
    text = open(data_file("train", "1.1"), encoding="utf-8").read()
    wide = tmp_path / "wide.json"
    wide.write_text(text, encoding="utf-16")
    assert cli.main(cli_args("finetune", vocab, tmp_path / "run", train=str(wide))) == 2
    err = capsys.readouterr().err
    assert f"{wide}: not UTF-8 text" in err and f"then pass --config.data.train_file={wide}.utf8." in err, err
    subprocess.run(err.split("e.g. ")[1].split(" (with its own")[0], shell=True, check=True)  # as advised
    converted = squad_data.read_squad_file(f"{wide}.utf8")
    assert converted.examples == squad_data.read_squad_file(data_file("train", "1.1")).examples
    fixed = subprocess.run(["iconv", "-f", "UTF-16", "-t", "UTF-8", str(wide)], capture_output=True, check=True)
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + fixed.stdout)
    assert squad_data.read_squad_file(str(bom)).examples == squad_data.read_squad_file(data_file("train", "1.1")).examples


def lengthen(dataset):
    """Articles 5 and 6 ask each question as two whole contexts: real text of 100+ pieces, which
    at max_seq_length=128 leaves a window no more than doc_stride=32 context tokens."""
    long_question = " ".join(dataset["data"][k]["paragraphs"][0]["context"] for k in (5, 6))
    for k in (5, 6):
        for qa in dataset["data"][k]["paragraphs"][0]["qas"]:
            qa["question"] = long_question


def lengthened(path):
    return sum(len(load(path)["data"][k]["paragraphs"][0]["qas"]) for k in (5, 6))


def test_empty_context_and_too_long_question_are_errors_or_counted_skips(vocab, tmp_path, capsys):
    from bert_jax.tokenization import BertTokenizerFast

    def empty_context(dataset):
        dataset["data"][3]["paragraphs"][0]["context"] = ""
        lengthen(dataset)
    dev = corrupt(tmp_path, "1.1", empty_context, "dev_empty.json", "dev")
    empty_qids = [qa["id"] for qa in load(dev)["data"][3]["paragraphs"][0]["qas"]]
    assert cli.main(cli_args("finetune", vocab, tmp_path / "a", dev=dev)) == 2
    err = capsys.readouterr().err
    assert f"{dev}: question {empty_qids[0]!r}: the context" in err and "is empty" in err
    # Questions kept whole (max_query_length 200): those of 93+ tokens leave a 128-token
    # window no more than doc_stride=32 context tokens.
    train = corrupt(tmp_path, "1.1", lengthen)
    assert cli.main(cli_args("finetune", vocab, tmp_path / "b", "1.1", "data.max_query_length=200", train=train)) == 2
    err = capsys.readouterr().err
    assert f"{train}: question " in err and "max_seq_length=128" in err
    assert int(err.split(" takes ")[1].split()[0]) >= 93
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()

    # With allow_skips: counted, reported in the results, and scored as missing (0).
    tokenizer = BertTokenizerFast(vocab)
    kept = [qa["question"] for i, a in enumerate(load(dev)["data"]) if i != 3 for p in a["paragraphs"]
            for qa in p["qas"]]
    too_long = sum(len(ids) >= 93 for ids in tokenizer(kept, add_special_tokens=False)["input_ids"])
    assert too_long == lengthened(dev) > 0
    workdir = tmp_path / "c"
    assert cli.main(cli_args("finetune", vocab, workdir, "1.1", "data.allow_skips=True", "data.max_query_length=200",
                             "optim.total_steps=2", "checkpoint.every_steps=0", train=train, dev=dev)) == 0
    results = load(workdir / "eval" / "dev_results.json")
    assert results["skipped_empty_context"] == len(empty_qids)
    assert results["skipped_question_too_long"] == too_long
    assert results["skipped"] == results["missing"] == len(empty_qids) + too_long
    assert results["num_examples"] == 420 - results["skipped"]
    assert not set(empty_qids) & set(load(workdir / "eval" / "dev" / "predictions.json"))
    train_skips = load(workdir / "config.json")["resolved"]["data"]["train"]["skipped"]
    assert train_skips["question_too_long"] == lengthened(train) and train_skips["empty_context"] == 0
