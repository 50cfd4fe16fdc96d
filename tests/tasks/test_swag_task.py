"""The registered ``swag`` task on the derived set ``data/tasks/swag_next``: a short run from
scratch writes dev and test predictions that read back, score as the results say, cover every
question once and equal the model's own choice scores; bad files are refused through the CLI.

A tiny model trained from scratch for a few hundred steps stays at chance on this task, and so
does one started from a 300-step tiny pretraining run (docs/ner_swag.md has the measured
accuracies); the end-to-end test therefore checks the plumbing exactly, not a learned margin.
"""

import csv
import glob
import json
import os

import numpy as np
import pytest

jax = pytest.importorskip("jax")

from bert_jax import checkpointing, cli, launch  # noqa: E402
from bert_jax.tasks import registry, swag_data  # noqa: E402
from bert_jax.tasks.swag import examples_from_hub  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(ROOT, "configs", "swag", "swag_next.py")
DATA = os.path.join(ROOT, "data", "tasks", "swag_next")
TINY = ["model.vocab_size=-1", "model.hidden_size=32", "model.intermediate_size=64", "model.num_hidden_layers=2",
        "model.num_attention_heads=4", "model.type_vocab_size=2", "eval_every_steps=0", "log_every_steps=20"]
STEPS = 40


@pytest.fixture(scope="module")
def vocab(tmp_path_factory):
    """A 2,000-token uncased WordPiece vocabulary trained on the bundled corpus."""
    from bert_jax.vocab import train_wordpiece
    out = tmp_path_factory.mktemp("vocab")
    train_wordpiece(sorted(glob.glob(os.path.join(ROOT, "data", "corpus", "*.txt"))), 2000, lowercase=True,
                    output_dir=str(out), progress=False, overwrite=True)
    return str(out / "vocab.txt")


def overrides(vocab):
    return ["init_from='scratch'", f"data.vocab_file={vocab!r}", *TINY]


@pytest.fixture(scope="module")
def trained(vocab, tmp_path_factory):
    """A short run from scratch (hidden 32, 2 layers, 4 choices x seq 64), evaluated on dev."""
    workdir = str(tmp_path_factory.mktemp("swag_run"))
    config = launch.load_config(CONFIG, [*overrides(vocab), f"optim.total_steps={STEPS}", "checkpoint.every_steps=0"])
    return {"workdir": workdir, "result": launch.run_finetuning(config, workdir)}


def read_predictions(path):
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    index = [r["index"] for r in rows]
    predicted = np.array([int(r["prediction"]) for r in rows])
    probs = np.array([[float(r[f"prob_{i}"]) for i in range(4)] for r in rows])
    labels = np.array([int(r["label"]) for r in rows]) if rows and "label" in rows[0] else None
    return index, predicted, probs, labels


def test_throughput_counts_every_choice_row(trained):
    """An example is 4 rows of 64 positions: tokens/s counts all of them (it counted one row),
    and real tokens/s the non-padding ones among them (it was not logged)."""
    with open(os.path.join(trained["workdir"], "metrics.jsonl"), encoding="utf-8") as f:
        rows = [r for r in map(json.loads, f) if "train/tokens_per_s" in r]
    assert rows
    for r in rows:
        assert r["train/tokens_per_s"] / r["train/seq_per_s"] == pytest.approx(4 * 64)
        assert 0 < r["train/real_tokens_per_s"] < r["train/tokens_per_s"]


def test_dev_predictions_read_back_and_give_the_reported_accuracy(trained):
    results = json.load(open(os.path.join(trained["workdir"], "eval", "dev_results.json")))
    assert results["task"] == "swag" and results["step"] == STEPS and results["num_examples"] == 150
    assert results["baseline_majority"] == pytest.approx(38 / 150)  # README: labels 38 38 37 37
    index, predicted, probs, labels = read_predictions(os.path.join(trained["workdir"], results["prediction_files"][0]))
    gold = [e.label for e in swag_data.read_swag(os.path.join(DATA, "val.csv"))]
    assert index == [str(i) for i in range(150)]  # every question once, in file order
    np.testing.assert_array_equal(labels, gold)
    np.testing.assert_array_equal(predicted, probs.argmax(-1))
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    assert np.mean(predicted == labels) == pytest.approx(results["accuracy"], abs=1e-12)
    assert results["accuracy"] == pytest.approx(trained["result"]["eval"]["accuracy"])


def test_predict_test_split_matches_the_models_own_choice_scores(trained, vocab, capsys):
    """``bert-jax predict --split test`` (test.csv has no labels): one row per question, and the
    written probabilities equal a softmax over the choices of the restored model's logits."""
    from bert_jax.config import BertConfig
    from bert_jax.modeling.modules import build_module
    from bert_jax.tokenization import BertTokenizerFast
    code = cli.main(["predict", "--config", CONFIG, "--workdir", trained["workdir"], "--split", "test",
                     *[f"--config.{o}" for o in overrides(vocab)]])
    assert code == 0, capsys.readouterr().err
    results = json.load(open(os.path.join(trained["workdir"], "eval", "test_results.json")))
    assert results["split"] == "test" and results["num_examples"] == 150 and "accuracy" not in results
    index, predicted, probs, labels = read_predictions(os.path.join(trained["workdir"], "eval", "test",
                                                                    "predictions.csv"))
    assert labels is None and index == [str(i) for i in range(150)]
    # scored offline against the labels kept beside the test file (a figure, not a claim of learning)
    with open(os.path.join(DATA, "test_labels.tsv"), encoding="utf-8") as f:
        gold = np.array([int(line.split("\t")[1]) for line in f.read().splitlines()[1:]])
    assert len(gold) == 150 and 0.0 <= np.mean(predicted == gold) <= 1.0

    params, _ = checkpointing.restore_params_to_cpu(os.path.join(trained["workdir"], "checkpoints"))
    resolved = json.load(open(os.path.join(trained["workdir"], "config.json")))
    model_cfg = BertConfig(vocab_size=resolved["resolved"]["vocab_size"], hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=4, intermediate_size=64, max_position_embeddings=128)
    module = build_module(model_cfg, "BertForMultipleChoice")
    examples = swag_data.read_swag(os.path.join(DATA, "test.csv"))[:8]
    enc = swag_data.encode_swag(examples, BertTokenizerFast(vocab, do_lower_case=True), 64)
    logits = np.asarray(module.apply({"params": params}, enc["input_ids"], enc["attention_mask"],
                                     enc["token_type_ids"], deterministic=True).logits, np.float64)
    assert logits.shape == (8, 4)
    want = np.exp(logits - logits.max(-1, keepdims=True))
    np.testing.assert_allclose(probs[:8], want / want.sum(-1, keepdims=True), atol=2e-6)


def test_hub_rows_become_examples():
    datasets = pytest.importorskip("datasets")
    rows = list(csv.DictReader(open(os.path.join(DATA, "val.csv"), encoding="utf-8", newline="")))[:3]
    columns = {k: [r[k] for r in rows] for k in ("sent1", "sent2", "ending0", "ending1", "ending2", "ending3")}
    labelled = datasets.Dataset.from_dict({**columns, "label": [int(r["label"]) for r in rows]})
    unlabelled = datasets.Dataset.from_dict({**columns, "label": [-1, -1, -1]})  # the hub's test split
    examples = examples_from_hub(labelled, "dev")
    want = swag_data.read_swag(os.path.join(DATA, "val.csv"))[:3]
    assert [(e.context, e.start, e.endings, e.label) for e in examples] == \
        [(e.context, e.start, e.endings, e.label) for e in want]
    assert [e.label for e in examples_from_hub(unlabelled, "test")] == [None] * 3


def test_cli_refuses_a_label_outside_the_choices(vocab, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    lines = open(os.path.join(DATA, "train.csv"), encoding="utf-8").read().splitlines(keepends=True)
    k = 5  # the 5th example (line 6 of the file, after the header)
    assert lines[k].rstrip("\r\n")[-2:] in (",0", ",1", ",2", ",3")
    lines[k] = lines[k].rstrip("\r\n")[:-1] + "4\n"
    (data / "train.csv").write_text("".join(lines), encoding="utf-8")
    for name in ("val.csv", "test.csv"):
        (data / name).write_text(open(os.path.join(DATA, name), encoding="utf-8").read(), encoding="utf-8")
    workdir = tmp_path / "run"
    code = cli.main(["finetune", "--config", CONFIG, "--workdir", str(workdir), f"--config.data.data_dir={data}",
                     *[f"--config.{o}" for o in overrides(vocab)]])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"{data}/train.csv:{k + 1}: label '4' is not a choice index 0..3" in err
    assert not workdir.exists()


def test_split_names_and_missing_data_dir_are_explained(vocab):
    task = registry.get("swag")
    cfg = launch.load_config(CONFIG, [*overrides(vocab), "data.data_dir=''"])
    with pytest.raises(ValueError, match=r"data\.data_dir is empty.*hub_name=swag"):
        task.load_split(cfg, "dev", None)
    with pytest.raises(ValueError, match=r"splits train, dev \(val\.csv\) and test, not 'validation'"):
        task.load_split(cfg, "validation", None)


@pytest.mark.parametrize("name,split,role", [("train.csv", "train", "trained on"), ("val.csv", "dev", "scored")])
def test_a_train_or_dev_file_without_labels_is_refused_and_writes_nothing(vocab, tmp_path, capsys, name, split,
                                                                          role):
    """A train.csv without its label column was a KeyError traceback from the train step (leaving
    config.json, metrics.jsonl and checkpoints/ behind); a val.csv without one printed a dev
    result of no metrics with exit 0."""
    data = tmp_path / "data"
    data.mkdir()
    for file in ("train.csv", "val.csv", "test.csv"):
        rows = list(csv.reader(open(os.path.join(DATA, file), encoding="utf-8", newline="")))
        if file == name:
            at = rows[0].index("label")
            rows = [r[:at] + r[at + 1:] for r in rows]
        with open(data / file, "w", encoding="utf-8", newline="") as f:
            csv.writer(f).writerows(rows)
    workdir = tmp_path / "run"
    code = cli.main(["finetune", "--config", CONFIG, "--workdir", str(workdir), f"--config.data.data_dir={data}",
                     *[f"--config.{o}" for o in overrides(vocab)]])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"bert-jax finetune: {data}/{name}: no label column; the {split} split is {role}, "
                                 "so each row needs the index of its right ending in a 'label' column (only test "
                                 "files have none)."], err
    assert not workdir.exists()
