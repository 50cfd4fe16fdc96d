"""SQuAD v1.1 and v2.0: extractive question answering as registered tasks ``squad`` / ``squad_v2``.

Data: the official JSON files (``data.train_file``, ``data.dev_file``,
``data.test_file``), or on a machine with network the ``datasets`` hub
(``data.hub_name="squad"`` / ``"squad_v2"``; train and validation only). Every
question is checked on reading (``squad_data.parse_squad``); a bad one is an
error naming the file and question id, or with ``data.allow_skips=True`` a skip
counted by reason, logged once, and reported as ``skipped_*`` in the results
(train skips in ``config.json`` under ``resolved.data.train``). A skipped
question of an evaluated split still counts in the official scores, as a
missing prediction scoring 0.

Rows are windows (``squad_data.squad_features``): ``Split.arrays`` holds the model
inputs and, per window, what decoding needs (``example_index``, ``context_offsets``,
``max_context``, ``window_start``); ``Split.examples`` the questions.
``postprocess`` decodes all windows of a split at once (``squad_postprocess``) and
scores with ``bert_jax.metrics.squad_evaluate`` on the whole file.

v2.0 threshold: a question is predicted unanswerable when ``null score - best span
score > threshold``. The threshold is ``data.null_score_diff_threshold``, or, when
``data.null_threshold_file`` names a ``best_null_threshold.json``, the
``best_f1_thresh`` stored there. ``bert-jax evaluate`` on a labelled v2.0 split
writes that file beside its predictions (``W/eval/dev/best_null_threshold.json``);
a later ``bert-jax predict --config.data.null_threshold_file=W/eval/dev/best_null_threshold.json``
applies it. The dev results hold the scores at the threshold used (``exact``,
``f1``) and over all thresholds (``best_exact``, ``best_f1`` and their ``*_thresh``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from dataclasses import dataclass, field

import numpy as np

from bert_jax.tasks import registry

log = logging.getLogger("bert_jax")

_METADATA = ("example_index", "context_offsets", "max_context", "window_start")
_FIRST_SENTENCE = re.compile(r"(?<=[.!?])\s")


@dataclass
class SquadSplit(registry.Split):
    """A ``Split`` that also keeps the file's raw ``data`` list: the official scores count
    every question of the file, skipped ones included (as missing predictions)."""

    dataset: list = field(default_factory=list)
    source: str = ""


@dataclass
class SquadOutput:
    """What ``postprocess`` hands to ``write_predictions``: the decoded predictions at the
    threshold used, and (labelled v2.0) the best-threshold record."""

    predictions: object  # squad_postprocess.SquadPredictions
    best_threshold: dict | None = None


class SquadTask(registry.FinetuneTask):
    head = "question_answering"
    field_help = {
        "data.train_file": "official SQuAD JSON (train-v1.1.json / train-v2.0.json)",
        "data.dev_file": "official SQuAD JSON of the dev split",
        "data.test_file": "the same layout; answers may be absent (predict only)",
        "data.hub_name": "'squad' / 'squad_v2': load from the datasets hub instead (needs network)",
        "data.doc_stride": "context tokens shared by consecutive windows of a long context",
        "data.max_query_length": "question tokens kept",
        "data.max_answer_length": "longest predicted answer, in tokens",
        "data.n_best_size": "start and end candidates per window in the n-best search",
        "data.null_score_diff_threshold": "v2.0: predict no answer when null score - best span score exceeds this",
        "data.null_threshold_file": "v2.0: a best_null_threshold.json (from evaluate on dev) whose best_f1_thresh wins",
        "data.allow_skips": "count and skip bad questions instead of stopping",
    }

    def __init__(self, name: str, version: str):
        self.name, self.version = name, version

    @property
    def version_2(self) -> bool:
        return self.version == "2.0"

    def config_defaults(self, c):
        c.data.train_file = ""          # official JSON (train-v1.1.json / train-v2.0.json)
        c.data.dev_file = ""            # dev-v1.1.json / dev-v2.0.json
        c.data.test_file = ""           # same layout; answers may be absent (predict only)
        c.data.hub_name = ""            # "squad" / "squad_v2": the datasets hub (needs network)
        c.data.doc_stride = 128         # context tokens shared by consecutive windows
        c.data.max_query_length = 64    # question tokens kept
        c.data.max_answer_length = 30   # longest predicted answer, in tokens
        c.data.n_best_size = 20
        c.data.null_score_diff_threshold = 0.0  # v2.0: predict "" when null - best span > this
        c.data.null_threshold_file = ""  # v2.0: a best_null_threshold.json whose best_f1_thresh wins
        c.data.allow_skips = False      # count and skip bad questions instead of stopping
        c.num_epochs = 2.0
        c.optim.learning_rate = 3e-5
        c.global_batch_size = 32
        c.data.max_seq_length = 384
        c.optim.warmup_fraction = 0.1

    # ------------------------------------------------------------------ reading
    def _read(self, cfg, split):
        from bert_jax.tasks import squad_data
        if split not in self.splits(cfg):
            raise ValueError(f"{self.name} has the splits train, dev and test, not {split!r}.")
        allow = bool(cfg.data.allow_skips)
        if cfg.data.hub_name:
            if split == "test":
                raise ValueError(f"data.hub_name={cfg.data.hub_name!r} has no test split; pass "
                                 "--config.data.test_file=PATH (official JSON layout) instead.")
            return squad_data.load_squad_dataset(cfg.data.hub_name, "train" if split == "train" else "validation",
                                                 allow_skips=allow)
        key = f"{split}_file"
        path = cfg.data[key]
        if not path:
            hub = (f", or --config.data.hub_name={'squad_v2' if self.version_2 else 'squad'} on a machine with "
                   "network" if split != "test" else "")  # the hub sets have no test split
            raise ValueError(f"data.{key} is empty: pass --config.data.{key}=PATH (a SQuAD v{self.version} JSON "
                             f"file){hub}.")
        if not os.path.isfile(path):
            raise ValueError(f"data.{key}={path!r}: no such file; pass the path of a SQuAD JSON file.")
        data = squad_data.read_squad_file(path, allow_skips=allow, require_answers=split != "test", config_key=key)
        # A file to predict on (no answers at all) reads as all-unanswerable: no version to check.
        if not self.version_2 and data.version == "2.0" and any(e.answers for e in data.examples):
            impossible = next(e.qid for e in data.examples if e.is_impossible)
            raise ValueError(f"{path}: question {impossible!r} is unanswerable (SQuAD v2.0 data); task "
                             f"{self.name!r} is v1.1: give a SQuAD v1.1 file, or fine-tune with task squad_v2 (configs/squad/v2.py).")
        return data

    def _threshold(self, cfg) -> tuple[float, str]:
        """The v2.0 threshold and where it came from."""
        path = cfg.data.null_threshold_file
        if not path:
            return float(cfg.data.null_score_diff_threshold), "data.null_score_diff_threshold"
        try:
            with open(path, encoding="utf-8") as f:
                value = json.load(f)["best_f1_thresh"]
        except FileNotFoundError:
            raise ValueError(f"data.null_threshold_file={path!r}: no such file; write it with 'bert-jax evaluate "
                             "--split dev' on a squad_v2 run (it lands in <workdir>/eval/dev/).") from None
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ValueError(f"data.null_threshold_file={path!r} is not a best_null_threshold.json "
                             "(a JSON object with best_f1_thresh), as 'bert-jax evaluate' writes.") from None
        return float(value), path

    def load_split(self, cfg, split, tokenizer):
        from bert_jax.tasks import squad_data
        if self.version_2:
            self._threshold(cfg)  # a bad threshold file is refused before any compute
        else:  # v1.1 has no unanswerable questions: a threshold given to it was meant for a v2.0 run
            for key, unset in (("null_threshold_file", ""), ("null_score_diff_threshold", 0.0)):
                if cfg.data[key] != unset:
                    raise ValueError(f"data.{key}={cfg.data[key]!r} applies to SQuAD v2.0 (task squad_v2, "
                                     f"configs/squad/v2.py); task {self.name!r} is v1.1, where every question has "
                                     f"an answer, so it would be ignored: leave it out, or run the v2.0 config.")
        data = self._read(cfg, split)
        examples = data.examples
        skipped = dict(data.skipped)
        if cfg.data.allow_skips:
            examples, too_long = _drop_long_questions(examples, tokenizer, cfg)
            skipped["question_too_long"] = len(too_long)
            if too_long:
                log.warning("%s: skipped %d question(s) too long for data.max_seq_length=%d with "
                            "data.doc_stride=%d (first: %r).", data.source, len(too_long),
                            cfg.data.max_seq_length, cfg.data.doc_stride, too_long[0])
        if not examples:
            raise ValueError(f"{data.source}: no usable question (skipped: {skipped}).")
        try:
            features = squad_data.squad_features(examples, tokenizer, cfg.data.max_seq_length,
                                                 cfg.data.doc_stride, cfg.data.max_query_length)
        except ValueError as e:
            raise ValueError(f"{data.source}: {e}") from None
        arrays = {k: getattr(features, k) for k in ("input_ids", "attention_mask", "token_type_ids")}
        labelled = any(e.answers for e in examples)  # a file without any answer is one to predict on
        if split == "train" and not labelled:  # it trained every window towards [CLS], with exit 0
            raise ValueError(f"{data.source}: no question has an answer, so there is nothing to train on; this "
                             "looks like a file to predict on: pass it as --config.data.test_file=PATH to "
                             "'bert-jax predict', and a training file with answers as data.train_file.")
        if split == "train":
            arrays["start_positions"] = features.start_positions
            arrays["end_positions"] = features.end_positions
        arrays.update({k: getattr(features, k) for k in _METADATA})
        info = {"source": data.source, "num_examples": len(examples), "num_windows": len(features),
                "skipped": skipped, "version": data.version}
        return SquadSplit(split, arrays, examples=examples, has_labels=labelled, info=info,
                          dataset=data.dataset, source=data.source)

    # ------------------------------------------------------------------ decoding and scores
    def postprocess(self, cfg, split, outputs):
        from bert_jax.metrics import squad_evaluate
        from bert_jax.tasks import squad_data, squad_postprocess
        features = squad_data.SquadFeatures(
            **{k: split.arrays[k] for k in ("input_ids", "attention_mask", "token_type_ids", *_METADATA)},
            start_positions=np.zeros(split.num_rows, np.int32), end_positions=np.zeros(split.num_rows, np.int32))
        # Decode once with an infinite threshold: every question keeps its best span, and
        # null_odds says how the threshold would decide, so scores over all thresholds are exact.
        spans = squad_postprocess.postprocess_squad(
            split.examples, features, outputs["start_logits"], outputs["end_logits"], version_2=self.version_2,
            n_best_size=cfg.data.n_best_size, max_answer_length=cfg.data.max_answer_length,
            null_score_diff_threshold=math.inf)
        skipped = {f"skipped_{k}": v for k, v in split.info["skipped"].items()}
        skipped["skipped"] = sum(split.info["skipped"].values())
        if not self.version_2:
            metrics = squad_evaluate(split.dataset, spans.predictions, "1.1") if split.has_labels else {}
            return SquadOutput(spans), {**metrics, **skipped}
        threshold, source = self._threshold(cfg)
        final = squad_postprocess.SquadPredictions(
            {q: "" if spans.null_odds[q] > threshold else text for q, text in spans.predictions.items()},
            spans.nbest, spans.null_odds)
        metrics = {"null_score_diff_threshold": threshold}
        best = None
        if split.has_labels:
            metrics.update(squad_evaluate(split.dataset, spans.predictions, "2.0", na_probs=spans.null_odds,
                                          na_prob_thresh=threshold))
            best = {k: metrics[k] for k in ("best_f1_thresh", "best_f1", "best_exact_thresh", "best_exact")}
            best.update(split=split.name, source=split.source, threshold_used=threshold, threshold_from=source)
        return SquadOutput(final, best), {**metrics, **skipped}

    def baselines(self, cfg, split):
        """Official F1 of trivial predictors: the context's first sentence, its first 3 words,
        and (v2.0) always "no answer"."""
        from bert_jax.metrics import squad_evaluate
        version = self.version
        guesses = {
            "first_sentence": {e.qid: _FIRST_SENTENCE.split(e.context.strip(), 1)[0] for e in split.examples},
            "first_3_words": {e.qid: " ".join(e.context.split()[:3]) for e in split.examples},
        }
        if self.version_2:
            guesses["no_answer"] = {e.qid: "" for e in split.examples}
        return {f"{name}_f1": squad_evaluate(split.dataset, predicted, version)["f1"]
                for name, predicted in guesses.items()}

    def write_predictions(self, cfg, split, predictions, directory):
        from bert_jax.tasks.squad_postprocess import write_json_atomic, write_squad_predictions
        paths = list(write_squad_predictions(directory, predictions.predictions).values())
        if predictions.best_threshold is not None:
            path = os.path.join(directory, "best_null_threshold.json")
            write_json_atomic(path, predictions.best_threshold)
            paths.append(path)
        return paths


def _drop_long_questions(examples, tokenizer, cfg):
    """With ``allow_skips``: the questions that leave a window more than ``doc_stride`` context
    tokens (after truncation to ``max_query_length``), and the ids of the others."""
    if not examples:
        return examples, []
    lengths = [min(len(ids), cfg.data.max_query_length) for ids in
               tokenizer([e.question for e in examples], add_special_tokens=False)["input_ids"]]
    room = [cfg.data.max_seq_length - n - 3 for n in lengths]
    keep = [e for e, r in zip(examples, room) if r > cfg.data.doc_stride]
    dropped = [e.qid for e, r in zip(examples, room) if r <= cfg.data.doc_stride]
    return keep, dropped


registry.register(SquadTask("squad", "1.1"))
registry.register(SquadTask("squad_v2", "2.0"))
