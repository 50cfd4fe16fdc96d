"""GLUE end to end, offline: the encoder pretrained by the quickstart recipe, fine-tuned on
three GLUE-layout sets derived from the bundled corpus (data/tasks/*/README.md says how each
was made), beats each task's baseline -- the majority class, or a constant prediction for the
regression task -- by a margin asserted here; then ``evaluate --split test`` writes the
submission file and it parses back.

Measured from this session fixture's pretraining (dev sizes 300 / 250 / 240): glue_section
(SST-2 layout) accuracy 0.703, and 0.657 on a later run (seed 0; bert_jax's own dropout masks by
then); glue_similarity (STS-B layout) Pearson 0.46 / 0.548; glue_nextsent (RTE layout) 0.548 and
0.560 at lr 5e-4 (seed 0, two pretraining runs), and at lr 2e-4 (used here) means of 0.573-0.601
over 3 seeds on three quickstart pretraining runs (scratch 0.488-0.492) and 0.548 (0.540, 0.552,
0.552) / 0.645 (0.632, 0.656, 0.648) on this fixture's. The classification margins swing with the
pretraining run and the fine-tuning seed, so both classification tasks are fine-tuned with three
seeds and their mean asserted.
"""

import csv
import os

import pytest

jax = pytest.importorskip("jax")

from bert_jax import cli, launch  # noqa: E402
from train_helpers import ROOT  # noqa: E402

pytestmark = pytest.mark.slow

# task config, derived set, metric, its baseline value, asserted margin, epochs, learning rate
CASES = {
    "sst2": ("glue_section", "accuracy", 0.5, 0.12, 5, 5e-4),
    # The quickstart's rate: at 5e-4 this task's result swings with the pretraining run
    # (docs/benchmarks.md, "Quickstart").
    "rte": ("glue_nextsent", "accuracy", 0.5, 0.02, 5, 2e-4),
    "stsb": ("glue_similarity", "pearson", 0.0, 0.25, 10, 5e-4),
}


def overrides(init_from, task):
    data, _, _, _, epochs, lr = CASES[task]
    return [f"init_from={init_from!r}", f"data.data_dir={os.path.join(ROOT, 'data', 'tasks', data)!r}",
            "data.max_seq_length=64", f"optim.learning_rate={lr}", f"num_epochs={epochs}",
            "checkpoint.every_steps=0", "log_every_steps=100"]


@pytest.mark.parametrize("task", sorted(CASES))
def test_pretrained_tiny_model_beats_the_task_baseline(quickstart_pretrained, task, tmp_path):
    data, metric, baseline, margin, _, _ = CASES[task]
    config_file = os.path.join(ROOT, "configs", "glue", f"{task}.py")
    workdir = str(tmp_path / task)
    seeds = ["seeds=(0,1,2)"] if task in ("rte", "sst2") else []
    result = launch.run_finetuning(launch.load_config(
        config_file, overrides(quickstart_pretrained["workdir"], task) + seeds), workdir)
    if seeds:  # the mean over seeds; the submission below comes from seed 0's run
        dev = {k: v["mean"] for k, v in result["summary"].items()}
        print(task, data, {k: v["values"] for k, v in result["summary"].items()})
        workdir = os.path.join(workdir, "seed_0")
    else:
        dev = result["eval"]
        print(task, data, {k: v for k, v in dev.items() if isinstance(v, float)})
    if metric == "accuracy":
        assert dev["baseline_majority_accuracy"] == baseline
    assert dev[metric] > baseline + margin, (task, dev)

    # The test split through the command line: the submission file parses back with one row per
    # test example, GLUE's header and the task's label vocabulary.
    args = ["evaluate", "--config", config_file, "--workdir", workdir, "--split", "test",
            *[f"--config.{o}" for o in overrides(quickstart_pretrained["workdir"], task)]]
    assert cli.main(args) == 0
    name = {"sst2": "SST-2.tsv", "rte": "RTE.tsv", "stsb": "STS-B.tsv"}[task]
    found = [os.path.join(d, f) for d, _, files in os.walk(os.path.join(workdir, "eval")) for f in files if f == name]
    assert len(found) == 1, found
    with open(found[0], newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    with open(os.path.join(ROOT, "data", "tasks", data, "test_labels.tsv"), encoding="utf-8") as f:
        gold = {row[0]: row[1] for row in csv.reader(f, delimiter="\t")}
    assert rows[0] == ["index", "prediction"] and len(rows) == len(gold)  # gold also has a header
    assert [r[0] for r in rows[1:]] == [str(i) for i in range(len(gold) - 1)]
    predictions = [r[1] for r in rows[1:]]
    if task == "stsb":
        assert all(0.0 <= float(p) <= 5.0 for p in predictions)
    else:
        allowed = {"rte": {"entailment", "not_entailment"}, "sst2": {"0", "1"}}[task]
        assert set(predictions) <= allowed and len(set(predictions)) == 2
