"""conll2003: named-entity recognition (token classification) in the CoNLL-2003 layout.

Registered task ``conll2003`` (head ``token_classification``). Data comes from a local
directory (``data.data_dir`` with ``train.txt``, ``dev.txt`` or ``valid.txt``, ``test.txt``;
read by ``conll_data.read_conll``) or, on a machine with network, from the ``datasets`` hub
(``data.hub_name="conll2003"``). Any data set in that layout works once ``data.labels`` lists
its tags (``configs/ner/conll_docs.py`` does so for the derived set under ``data/tasks``).

Each word is labelled at its first word piece (or at every piece with ``data.label_all_tokens``);
a sentence longer than ``max_seq_length - 2`` pieces becomes several windows that share up to
``data.doc_stride`` pieces. Evaluation merges the windows back to one label per word (the
window giving the word most context wins) and scores entities over the whole split with
``bert_jax.metrics.ner_metrics`` (seqeval's rules: ``data.mode``, ``data.scheme``).
Predictions are written as ``predictions.txt``: the input rows with the predicted label as an
extra last column (``token ... gold predicted``, the input of ``conlleval``).
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from bert_jax.tasks import conll_data, registry

SPLIT_FILES = {"train": ("train.txt",), "dev": ("dev.txt", "valid.txt"), "test": ("test.txt",)}
_HUB_SPLITS = {"train": "train", "dev": "validation", "test": "test"}


@dataclass
class NerSplit(registry.Split):
    """A ``Split`` whose rows are windows; ``alignment`` maps them back to words.

    Attributes:
      alignment: ``word_ids`` int32 ``[windows, len]``, ``first_piece`` bool ``[windows, len]``,
        ``example_index`` int32 ``[windows]``, ``word_range`` int32 ``[windows, 2]``
        (see ``conll_data.encode_conll``).
      source: the file the sentences came from (or the hub name), for messages.
    """

    alignment: dict = field(default_factory=dict)
    source: str = ""


def sentences_from_hub(dataset, split: str) -> list[conll_data.ConllSentence]:
    """A hub CoNLL-2003 split (a ``datasets.Dataset`` with ``tokens`` and class-id ``ner_tags``)
    -> ``ConllSentence``s with rows ``(token, label)``; ``-DOCSTART-`` rows start documents."""
    missing = [c for c in ("tokens", "ner_tags") if c not in dataset.column_names]
    if missing:
        raise ValueError(f"the hub split {split!r} lacks columns {missing} (has {dataset.column_names}); "
                         "data.hub_name must name a CoNLL-2003 style dataset (tokens, ner_tags).")
    names = dataset.features["ner_tags"].feature.names
    out, document = [], -1
    for k, row in enumerate(dataset):
        words = tuple(row["tokens"])
        if words and words[0] == conll_data.DOCSTART:
            document += 1
            continue
        if not words:
            continue
        labels = tuple(names[int(t)] for t in row["ner_tags"])
        out.append(conll_data.ConllSentence(words, labels, tuple(zip(words, labels)), document, k + 1))
    return out


class Conll2003(registry.FinetuneTask):
    name = "conll2003"
    head = "token_classification"
    field_help = {
        "data.data_dir": "folder in the CoNLL-2003 layout: train.txt, dev.txt (or valid.txt), test.txt",
        "data.hub_name": "'conll2003' = load from the datasets hub instead (needs network)",
        "data.labels": "the tag set, in classifier order; every tag in the files must be in it",
        "data.label_column": "column holding the tag (-1 = the last)",
        "data.num_columns": "columns on every token line (0 = any, but the same on every line)",
        "data.label_all_tokens": "label every word piece (B- continues as I-), not only the first",
        "data.scheme": "tagging scheme for mode='strict': IOB1, IOB2 or IOBES",
        "data.mode": "entity reading: 'default' (conlleval rules) or 'strict' (seqeval strict)",
        "data.doc_stride": "word pieces shared by consecutive windows of a sentence longer than max_seq_length - 2",
    }

    def config_defaults(self, c):
        c.data.data_dir = ""
        c.data.hub_name = ""
        c.data.labels = conll_data.CONLL2003_LABELS
        c.data.label_column = -1
        c.data.num_columns = 4
        c.data.label_all_tokens = False
        c.data.scheme = "IOB2"
        c.data.mode = "default"
        c.data.doc_stride = 32
        # BERT paper / Hugging Face run_ner recipe
        c.num_epochs = 3.0
        c.optim.learning_rate = 5e-5
        c.global_batch_size = 32
        c.data.max_seq_length = 128
        c.optim.warmup_fraction = 0.1  # as the BERT paper's fine-tuning (run_ner / run_swag default to 0)

    def label_names(self, cfg):
        return list(cfg.data.labels)

    def _path(self, cfg, split: str) -> str:
        if split not in SPLIT_FILES:
            raise ValueError(f"{self.name} has the splits train, dev and test, not {split!r}.")
        if not cfg.data.data_dir:
            raise ValueError("data.data_dir is empty: pass --config.data.data_dir=DIR (a folder with train.txt, "
                             "dev.txt, test.txt in the CoNLL-2003 layout), or --config.data.hub_name=conll2003 on "
                             "a machine with network.")
        names = SPLIT_FILES[split]
        for name in names:
            path = os.path.join(cfg.data.data_dir, name)
            if os.path.isfile(path):
                return path
        raise FileNotFoundError(f"{os.path.join(cfg.data.data_dir, names[0])} not found (the {split} split of "
                                f"data.data_dir; the CoNLL-2003 layout has train.txt, dev.txt or valid.txt, "
                                "test.txt).")

    def _sentences(self, cfg, split: str) -> tuple[list[conll_data.ConllSentence], str]:
        labels = tuple(cfg.data.labels)
        if cfg.data.hub_name:
            import datasets  # optional dependency, only for this route
            if split not in _HUB_SPLITS:
                raise ValueError(f"{self.name} has the splits train, dev and test, not {split!r}.")
            sentences = sentences_from_hub(datasets.load_dataset(cfg.data.hub_name, split=_HUB_SPLITS[split]), split)
            unknown = sorted({lab for s in sentences for lab in s.labels} - set(labels))
            if unknown:
                raise ValueError(f"hub {cfg.data.hub_name} ({split}): tags {unknown} are not in data.labels "
                                 f"{list(labels)}; add them to --config.data.labels.")
            return sentences, f"{cfg.data.hub_name}:{split}"
        path = self._path(cfg, split)
        return conll_data.read_conll(path, labels, label_column=int(cfg.data.label_column),
                                     num_columns=int(cfg.data.num_columns) or None,
                                     tokens_only_ok=split == "test"), path

    def load_split(self, cfg, split, tokenizer):
        sentences, source = self._sentences(cfg, split)
        features = conll_data.encode_conll(sentences, tokenizer, tuple(cfg.data.labels),
                                           int(cfg.data.max_seq_length),
                                           label_all_tokens=bool(cfg.data.label_all_tokens),
                                           stride=int(cfg.data.doc_stride))
        arrays = {k: features[k] for k in ("input_ids", "attention_mask", "token_type_ids", "labels")}
        alignment = {k: features[k] for k in ("word_ids", "first_piece", "example_index", "word_range")}
        counts = Counter(lab for s in sentences for lab in s.labels)
        info = {"source": source, "num_examples": len(sentences), "num_windows": int(len(arrays["input_ids"])),
                "num_words": int(sum(len(s.words) for s in sentences)),
                "sentences_in_several_windows": int(np.sum(np.bincount(alignment["example_index"]) > 1)),
                "label_counts": {lab: int(counts[lab]) for lab in cfg.data.labels}}
        return NerSplit(split, arrays, examples=sentences, info=info, alignment=alignment, source=source,
                        has_labels=all(s.labels for s in sentences))  # a test file of tokens only has none

    def predicted_tags(self, cfg, split: NerSplit, logits: np.ndarray) -> list[list[str]]:
        """``logits [windows, len, labels]`` -> one tag per word per sentence."""
        names = list(cfg.data.labels)
        features = {**split.alignment, "input_ids": split.arrays["input_ids"]}
        ids = conll_data.merge_word_predictions(features, logits, [len(s.words) for s in split.examples])
        return [[names[i] for i in sentence] for sentence in ids]

    def scores(self, cfg, sentences, predicted: list[list[str]]) -> dict:
        """Entity P/R/F1 (overall and per type) and word accuracy of ``predicted`` against the gold tags."""
        from bert_jax.metrics import ner_metrics
        gold = [list(s.labels) for s in sentences]
        m = ner_metrics(gold, predicted, scheme=cfg.data.scheme, mode=cfg.data.mode)
        words = sum(len(g) for g in gold)
        right = sum(a == b for g, p in zip(gold, predicted) for a, b in zip(g, p))
        return {"precision": m["precision"], "recall": m["recall"], "f1": m["f1"], "accuracy": right / max(words, 1),
                "per_type": m["per_type"], "counts": {"gold_entities": m["support"], "words": words}}

    def postprocess(self, cfg, split, outputs):
        predicted = self.predicted_tags(cfg, split, outputs["logits"])
        return predicted, self.scores(cfg, split.examples, predicted) if split.has_labels else {}

    def baselines(self, cfg, split):
        """``lookup_f1``: each word gets the most frequent training tag of its (lower-cased when
        the tokenizer lower-cases) form, ``O`` when unseen -- what memorising tokens reaches."""
        if cfg.data.hub_name:
            return {}
        train, _ = self._sentences(cfg, "train")
        norm = (lambda w: w.lower()) if cfg.data.lowercase else (lambda w: w)
        seen = defaultdict(Counter)
        for s in train:
            for w, lab in zip(s.words, s.labels):
                seen[norm(w)][lab] += 1
        # ties go to the tag listed first in data.labels, so the baseline is deterministic
        order = {lab: i for i, lab in enumerate(cfg.data.labels)}
        best = {w: min(c, key=lambda lab: (-c[lab], order.get(lab, len(order)))) for w, c in seen.items()}
        predicted = [[best.get(norm(w), "O") for w in s.words] for s in split.examples]
        return {"lookup_f1": self.scores(cfg, split.examples, predicted)["f1"]}

    def write_predictions(self, cfg, split, predictions, directory):
        """``predictions.txt``: the split's rows with the predicted tag appended (``token ... gold
        predicted``, or ``token predicted`` for a file of tokens only);
        ``conll_data.read_conll(path, num_columns=None)`` reads it back."""
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, "predictions.txt")
        conll_data.write_conll(path + ".tmp", split.examples, predictions, keep_gold=True)
        os.replace(path + ".tmp", path)
        return [path]


registry.register(Conll2003)
