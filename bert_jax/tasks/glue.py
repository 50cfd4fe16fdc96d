"""GLUE: CoLA, SST-2, MRPC, STS-B, QQP, MNLI (+ the AX diagnostic), QNLI, RTE, WNLI.

Registered tasks ``cola sst2 mrpc stsb qqp mnli qnli rte wnli``. Data comes from a
local directory in the original GLUE distribution layout (``data.data_dir``, read by
``glue_data.read_glue`` with each task's own columns and quirks) or, on a machine
with network, from the ``datasets`` hub (``data.hub_name="glue"``). Metrics are
GLUE's own (``bert_jax.metrics.glue_metrics``) over the whole split; test
predictions are written as GLUE server submission files (``CoLA.tsv``, ...,
``MNLI-m.tsv``, ``MNLI-mm.tsv``, ``AX.tsv``), and ``bert-jax glue-submit`` gathers
those of all tasks into one folder.

MNLI evaluates ``dev`` as ``dev_matched`` + ``dev_mismatched``; its ``test`` covers
``test_matched``, ``test_mismatched`` and the AX diagnostic (``data.ax_dir``).
"""

from __future__ import annotations

import filecmp
import json
import os

import numpy as np

from bert_jax.tasks import registry
from bert_jax.tasks import glue_data

TASKS = ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli")
SINGLE_SENTENCE = ("cola", "sst2")
# every GLUE server file name, for checking a gathered submission
SUBMISSION_FILES = [name[:-4] for spec in glue_data.GLUE_TASKS.values() for name in spec.submission.values()]


def _index(guid: str) -> str:
    """The example's id in its file (``glue_data`` guids are ``<split>-<id>``)."""
    return str(guid).rsplit("-", 1)[-1]


def _labels(task: str):
    labels = glue_data.get_task(task).labels
    return None if labels is None else list(labels)


class GlueTask(registry.FinetuneTask):
    head = "sequence_classification"
    field_help = {"data.data_dir": "the task's folder in the GLUE distribution layout",
                  "data.hub_name": "'glue' = load from the datasets hub instead (needs network)",
                  "data.ax_dir": "MNLI: folder of the AX diagnostic.tsv ('' = <data_dir>/../diagnostic if present)"}

    def __init__(self, name: str):
        self.name = name

    def config_defaults(self, c):
        c.data.data_dir = ""       # the task's folder in the GLUE layout (e.g. glue_data/MNLI)
        c.data.hub_name = ""       # "glue": load from the datasets hub instead (needs network)
        if self.name == "mnli":
            c.data.ax_dir = ""     # folder of diagnostic.tsv ("" = <data_dir>/../diagnostic if present)
        c.num_epochs = 3.0
        c.optim.learning_rate = 2e-5
        c.global_batch_size = 32
        c.data.max_seq_length = 128
        c.optim.warmup_fraction = 0.1

    def label_names(self, cfg):
        return _labels(self.name)

    def splits(self, cfg):
        if self.name == "mnli":
            return ("train", "dev_matched", "dev_mismatched", "test_matched", "test_mismatched", "ax")
        return ("train", "dev", "test")

    def eval_splits(self, cfg, split):
        if self.name == "mnli" and split in ("dev", "test"):
            names = [f"{split}_matched", f"{split}_mismatched"]
            if split == "test" and self._ax_dir(cfg):
                names.append("ax")
            return names
        return [split]

    def _ax_dir(self, cfg) -> str:
        given = cfg.data.get("ax_dir", "")
        if given:
            return given
        guess = os.path.join(os.path.dirname(os.path.abspath(cfg.data.data_dir)), "diagnostic")
        return guess if os.path.isfile(os.path.join(guess, "diagnostic.tsv")) else ""

    def _examples(self, cfg, split):
        if split not in self.splits(cfg):
            raise ValueError(f"GLUE {self.name} has the splits {', '.join(self.splits(cfg))}, not {split!r}.")
        if cfg.data.hub_name:
            return glue_data.load_glue_hub(self.name if split != "ax" else "ax", split)
        if not cfg.data.data_dir:
            raise ValueError("data.data_dir is empty: pass --config.data.data_dir=DIR (the task's folder in the "
                             "GLUE distribution layout), or --config.data.hub_name=glue on a machine with network.")
        if split == "ax":
            return glue_data.read_glue("ax", self._ax_dir(cfg), "test")
        return glue_data.read_glue(self.name, cfg.data.data_dir, split)

    def load_split(self, cfg, split, tokenizer):
        examples = self._examples(cfg, split)
        labelled = bool(examples) and examples[0].label is not None
        first = [e.text_a for e in examples]
        second = None if self.name in SINGLE_SENTENCE else [e.text_b for e in examples]
        enc = tokenizer(first, second, padding="max_length", truncation=True,
                        max_length=cfg.data.max_seq_length, return_tensors="np")
        arrays = {k: enc[k].astype(np.int32) for k in ("input_ids", "attention_mask", "token_type_ids")}
        info = {"num_examples": len(examples)}
        if labelled:
            labels = self._label_ids(examples)
            arrays["labels"] = labels
            if self.name != "stsb":
                counts = np.bincount(labels, minlength=len(_labels(self.name)))
                info["label_counts"] = dict(zip(_labels(self.name), counts.tolist()))
                info["majority_baseline"] = float(counts.max() / max(counts.sum(), 1))
        return registry.Split(split, arrays, examples=examples, has_labels=labelled, info=info)

    def _label_ids(self, examples) -> np.ndarray:
        if self.name == "stsb":
            return np.asarray([float(e.label) for e in examples], np.float32)
        names = _labels(self.name)
        return np.asarray([names.index(str(e.label)) if not isinstance(e.label, (int, np.integer))
                           else int(e.label) for e in examples], np.int32)

    def _metric_task(self, split) -> str:
        if split.name == "ax":
            return "ax"
        if self.name == "mnli":
            return "mnli_mismatched" if "mismatched" in split.name else "mnli_matched"
        return self.name

    def postprocess(self, cfg, split, outputs):
        from bert_jax.metrics import glue_metrics
        logits = outputs["logits"]
        if self.name == "stsb":
            predicted = logits[:, 0].astype(np.float64)
        else:
            predicted = np.argmax(logits, axis=-1)
        if not split.has_labels:
            return predicted, {}
        return predicted, glue_metrics(self._metric_task(split), predicted, split.arrays["labels"])

    def baselines(self, cfg, split):
        from bert_jax.metrics import glue_metrics
        labels = split.arrays["labels"]
        if self.name == "stsb":
            return {}
        majority = np.full_like(labels, np.bincount(labels).argmax())
        return {f"majority_{k}": v for k, v in glue_metrics(self._metric_task(split), majority, labels).items()}

    def write_predictions(self, cfg, split, predictions, directory):
        """Test splits: the GLUE server file (``CoLA.tsv``, ``MNLI-m.tsv``, ``AX.tsv`` ...);
        labelled splits: ``predictions.tsv`` (index, prediction, label)."""
        task = "ax" if split.name == "ax" else self.name
        names = _labels(task)
        values = [float(v) for v in predictions] if names is None else [names[int(p)] for p in predictions]
        os.makedirs(directory, exist_ok=True)
        if split.has_labels:
            path = os.path.join(directory, "predictions.tsv")
            gold = split.arrays["labels"]
            with open(path + ".tmp", "w", encoding="utf-8") as f:
                f.write("index\tprediction\tlabel\n")
                for e, v, g in zip(split.examples, values, gold):
                    f.write(f"{_index(e.guid)}\t{v}\t{g if names is None else names[int(g)]}\n")
            os.replace(path + ".tmp", path)
            return [path]
        spec = glue_data.get_task(task)
        test_split = split.name if task == "mnli" else "test"
        path = os.path.join(directory, spec.submission[test_split])
        glue_data.write_glue_submission(task, values, path + ".tmp", split=test_split,
                                        indices=[int(_index(e.guid)) for e in split.examples])
        os.replace(path + ".tmp", path)
        return [path]


for _name in TASKS:
    registry.register(GlueTask(_name))


def gather_submission(workdirs: list[str], output: str, *, overwrite: bool = False) -> dict[str, str]:
    """Copy each run's GLUE test submission files (``W/eval/<split>/<Task>.tsv``) into ``output``.

    Returns ``{file name: source path}``; a file found in two runs, or an existing output file
    without ``overwrite``, is an error.
    """
    import shutil
    wanted = set(SUBMISSION_FILES)
    found: dict[str, str] = {}
    if os.path.exists(output) and not os.path.isdir(output):
        raise ValueError(f"--output {output} is a file; pass a folder to gather the submission files in.")
    for workdir in workdirs:
        root = os.path.join(workdir, "eval")
        if not os.path.isdir(workdir):
            raise ValueError(f"{workdir} does not exist or is not a folder; pass the workdirs of fine-tuning runs "
                             "evaluated with --split test.")
        if not os.path.isdir(root):
            raise ValueError(_nothing_to_gather(workdir))
        before = len(found)
        for split in sorted(os.listdir(root)):
            if (not split.startswith("test") and split != "ax") or not os.path.isdir(os.path.join(root, split)):
                continue
            for name in sorted(os.listdir(os.path.join(root, split))):
                if name.endswith(".tsv") and name[:-4] in wanted:
                    if name in found:
                        raise ValueError(f"{name} is in both {found[name]} and {os.path.join(root, split, name)}; "
                                         "pass each task's run once.")
                    found[name] = os.path.join(root, split, name)
        if len(found) == before:
            raise ValueError(_nothing_to_gather(workdir))
    os.makedirs(output, exist_ok=True)
    # A file of the same bytes (this command run again) is no clash; other predictions are kept.
    clash = sorted(n for n in found if os.path.exists(os.path.join(output, n))
                   and not filecmp.cmp(os.path.join(output, n), found[n], shallow=False))
    if clash and not overwrite:
        it = "it" if len(clash) == 1 else "them"
        raise ValueError(f"{output} already holds {', '.join(clash)} with other predictions than the run's; pass "
                         f"--overwrite to replace {it}, or gather into a new --output folder.")
    for name, source in found.items():
        shutil.copyfile(source, os.path.join(output, name))
    return found


def _nothing_to_gather(workdir: str) -> str:
    """Why ``workdir`` gave no GLUE test predictions, and what to pass or run instead."""
    from bert_jax.run_config import read_recorded, seed_runs
    seeds = seed_runs(workdir)
    if seeds:
        return (f"{workdir} is a multi-seed run: its test predictions are in its seed runs; evaluate one with "
                f"'bert-jax evaluate --split test --workdir {os.path.join(workdir, seeds[0])}' (and its config) "
                "and pass that folder.")
    try:
        recorded = read_recorded(workdir)
        mode, task = recorded.get("mode"), recorded.get("task")
    except (OSError, ValueError):
        mode = task = None
    if mode == "pretrain" or (task and task not in glue_data.GLUE_TASKS):
        what = "a pretraining run" if mode == "pretrain" else f"a task={task!r} run"
        return (f"{workdir} is {what}, not a GLUE fine-tuning run; glue-submit gathers the test predictions of "
                f"runs of the GLUE tasks ({', '.join(TASKS)}).")
    return (f"{workdir} has no GLUE test predictions (no eval/test*/<Task>.tsv); run 'bert-jax evaluate --split "
            "test' on it (with the config it was trained with) first.")


def submission_provenance(found: dict[str, str]) -> list[str]:
    """One line per gathered file naming its run and the checkpoint step its predictions came
    from -- with a warning when the run has a newer checkpoint, since test predictions are not
    redone when training goes on (a submission could hold an early step's answers unnoticed)."""
    from bert_jax.checkpoint_steps import saved_steps  # not checkpointing: no JAX to list folders
    lines = []
    for name, source in sorted(found.items()):
        split_dir = os.path.dirname(source)
        eval_dir, split = os.path.dirname(split_dir), os.path.basename(split_dir)
        workdir = os.path.dirname(eval_dir)
        results = os.path.join(eval_dir, f"{split}_results.json")
        try:
            with open(results, encoding="utf-8") as f:
                step = int(json.load(f)["step"])
        except (OSError, ValueError, KeyError, TypeError):
            lines.append(f"{name} <- {source}: step unknown ({results} is missing or unreadable)")
            continue
        ckpt = os.path.join(workdir, "checkpoints")
        newest = max(saved_steps(ckpt), default=step)
        if newest > step:
            lines.append(f"{name} <- {source}: step {step}, but {ckpt} has step {newest} since; to submit that "
                         f"one, run 'bert-jax evaluate --config <its config> --workdir {workdir} --split {split}' "
                         "and gather again with --overwrite")
        else:
            lines.append(f"{name} <- {source}: step {step}")
    return lines
