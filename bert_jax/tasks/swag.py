"""swag: multiple choice in the SWAG layout (which ending continues the sentence).

Registered task ``swag`` (head ``multiple_choice``). Data comes from a local directory
(``data.data_dir`` with ``train.csv``, ``val.csv``, ``test.csv``; read by ``swag_data.read_swag``)
or, on a machine with network, from the ``datasets`` hub (``data.hub_name="swag"``, its
``regular`` configuration). The number of choices is the number of ``ending<i>`` columns.
Every choice is encoded as ``[CLS] sent1 [SEP] sent2 ending_i [SEP]``; the head scores each
choice and a softmax over the choices is trained against the label.

Metric: accuracy over the whole split. Predictions are written as ``predictions.csv``
(``index,prediction,prob_0,..,prob_<N-1>`` and ``label`` on labelled splits), ``index``
being the example's id (the file's unnamed index column, else its row number from 0).
"""

from __future__ import annotations

import csv
import os

import numpy as np

from bert_jax.tasks import registry, swag_data

SPLIT_FILES = {"train": "train.csv", "dev": "val.csv", "test": "test.csv"}
_HUB_SPLITS = {"train": "train", "dev": "validation", "test": "test"}


def examples_from_hub(dataset, split: str) -> list[swag_data.SwagExample]:
    """A hub SWAG split (a ``datasets.Dataset``; ``label`` -1 or absent on test) -> ``SwagExample``s."""
    columns = dataset.column_names
    num_choices, missing = swag_data.choice_columns(columns)
    if missing:
        raise ValueError(f"the hub split {split!r} lacks columns {missing} (has {columns}); data.hub_name must name "
                         "a SWAG style dataset (sent1, sent2, ending0 .. ending<N-1>, label).")
    out = []
    for k, row in enumerate(dataset):
        label = row.get("label")
        if label is not None and label >= 0 and not 0 <= int(label) < num_choices:
            raise ValueError(f"hub split {split!r}, row {k}: label {label} is not a choice index 0..{num_choices - 1}.")
        out.append(swag_data.SwagExample(str(k), row["sent1"], row["sent2"],
                                         tuple(row[f"ending{i}"] for i in range(num_choices)),
                                         None if label is None or label < 0 else int(label)))
    return out


class Swag(registry.FinetuneTask):
    name = "swag"
    head = "multiple_choice"
    field_help = {"data.data_dir": "folder in the SWAG layout: train.csv, val.csv (the dev split), test.csv",
                  "data.hub_name": "'swag' = load from the datasets hub instead (needs network)"}

    def config_defaults(self, c):
        c.data.data_dir = ""
        c.data.hub_name = ""
        # Hugging Face run_swag recipe (the BERT paper's SWAG run: lr 2e-5, batch 16, 3 epochs)
        c.num_epochs = 3.0
        c.optim.learning_rate = 2e-5
        c.global_batch_size = 16
        c.data.max_seq_length = 128
        c.optim.warmup_fraction = 0.1  # as the BERT paper's fine-tuning (run_ner / run_swag default to 0)

    def _examples(self, cfg, split: str) -> tuple[list[swag_data.SwagExample], str]:
        if split not in SPLIT_FILES:
            raise ValueError(f"swag has the splits train, dev (val.csv) and test, not {split!r}.")
        if cfg.data.hub_name:
            import datasets  # optional dependency, only for this route
            dataset = datasets.load_dataset(cfg.data.hub_name, "regular", split=_HUB_SPLITS[split])
            return examples_from_hub(dataset, split), f"{cfg.data.hub_name}:{split}"
        if not cfg.data.data_dir:
            raise ValueError("data.data_dir is empty: pass --config.data.data_dir=DIR (a folder with train.csv, "
                             "val.csv, test.csv in the SWAG layout), or --config.data.hub_name=swag on a machine "
                             "with network.")
        path = os.path.join(cfg.data.data_dir, SPLIT_FILES[split])
        return swag_data.read_swag(path), path

    def load_split(self, cfg, split, tokenizer):
        examples, source = self._examples(cfg, split)
        arrays = swag_data.encode_swag(examples, tokenizer, int(cfg.data.max_seq_length))
        labelled = [e.label is not None for e in examples]
        if any(labelled) and not all(labelled):
            k = labelled.index(False)
            raise ValueError(f"{source}: example {examples[k].guid} has no label but others do; label every "
                             "example or none (a test file).")
        if split != "test" and not labelled[0]:  # a KeyError in the train step, or a dev score of nothing
            raise ValueError(f"{source}: no label column; the {split} split is "
                             f"{'trained on' if split == 'train' else 'scored'}, so each row needs the index of its "
                             "right ending in a 'label' column (only test files have none).")
        info = {"source": source, "num_examples": len(examples), "num_choices": int(arrays["input_ids"].shape[1])}
        if not labelled[0]:
            del arrays["labels"]
            return registry.Split(split, arrays, examples=examples, has_labels=False, info=info)
        counts = np.bincount(arrays["labels"], minlength=info["num_choices"])
        info["label_counts"] = counts.tolist()
        info["majority_baseline"] = float(counts.max() / counts.sum())
        return registry.Split(split, arrays, examples=examples, info=info)

    def postprocess(self, cfg, split, outputs):
        """``logits [examples, choices]`` -> ``(probabilities [examples, choices], metrics)``."""
        logits = outputs["logits"].astype(np.float64)
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        if not split.has_labels:
            return probs, {}
        return probs, {"accuracy": float(np.mean(probs.argmax(-1) == split.arrays["labels"]))}

    def baselines(self, cfg, split):
        return {"majority": split.info["majority_baseline"]}

    def write_predictions(self, cfg, split, predictions, directory):
        """``predictions.csv``: ``index,prediction,prob_0..prob_<N-1>[,label]``, one row per example."""
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, "predictions.csv")
        num_choices = predictions.shape[1]
        with open(path + ".tmp", "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["index", "prediction", *(f"prob_{i}" for i in range(num_choices))]
                            + (["label"] if split.has_labels else []))
            for e, p in zip(split.examples, predictions):
                # full precision: near-uniform choices must keep their order when read back
                writer.writerow([e.guid, int(p.argmax()), *(repr(float(x)) for x in p)]
                                + ([e.label] if split.has_labels else []))
        os.replace(path + ".tmp", path)
        return [path]


registry.register(Swag)
