"""docs_section: which part of the Python documentation a sentence comes from.

A registered fine-tuning task on the bundled corpus (offline): each corpus file
(``tutorial.txt``, ``library.txt`` ...) is one label; train/dev are split by
*document* (see ``text_classification_data.docs_section_splits``). Accuracy on dev.
"""

from __future__ import annotations

import numpy as np

from bert_jax.tasks import registry
from bert_jax.tasks import text_classification_data as tcd


class DocsSection(registry.FinetuneTask):
    name = "docs_section"
    head = "sequence_classification"
    field_help = {"data.corpus_dir": "folder of the corpus files (one per label)",
                  "data.labels": "label names = corpus file names without .txt",
                  "data.dev_percent": "share of documents held out for dev",
                  "data.max_per_label": "cap on sentences per label and split (0 = all)",
                  "data.max_train_per_label": "further cap on train sentences per label (0 = none); dev keeps all",
                  "data.balance": "cap every label at the smallest label's count (baseline 1 / num_labels)"}

    def config_defaults(self, c):
        c.data.corpus_dir = ""
        c.data.labels = ("tutorial", "library", "reference", "whatsnew")
        c.data.dev_percent = 15
        c.data.max_per_label = 0
        c.data.max_train_per_label = 0
        c.data.balance = True

    def label_names(self, cfg):
        return list(cfg.data.labels)

    def splits(self, cfg):
        return ("train", "dev")

    def load_split(self, cfg, split, tokenizer):
        if split not in ("train", "dev"):
            raise ValueError(f"docs_section has the splits train and dev, not {split!r}.")
        data = tcd.docs_section_splits(cfg.data.corpus_dir, tuple(cfg.data.labels),
                                       dev_percent=cfg.data.dev_percent, max_per_label=cfg.data.max_per_label,
                                       max_train_per_label=cfg.data.max_train_per_label,
                                       balance=cfg.data.balance, seed=int(cfg.seed))[split]
        arrays = tcd.encode(data, tokenizer, cfg.data.max_seq_length)
        return registry.Split(split, arrays, examples=list(zip(data.texts, data.labels.tolist())),
                              info=data.info)

    def postprocess(self, cfg, split, outputs):
        predicted = np.argmax(outputs["logits"], axis=-1)
        gold = split.arrays["labels"]
        return predicted, {"accuracy": float(np.mean(predicted == gold))}

    def baselines(self, cfg, split):
        return {"majority": float(split.info["majority_baseline"])}

    def write_predictions(self, cfg, split, predictions, directory):
        import os
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, "predictions.tsv")
        names = list(cfg.data.labels)
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write("index\tprediction\n")
            f.writelines(f"{i}\t{names[p]}\n" for i, p in enumerate(predictions))
        os.replace(path + ".tmp", path)
        return [path]


registry.register(DocsSection)
