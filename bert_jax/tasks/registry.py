"""Fine-tuning tasks as plug-ins, registered by name. Imports no JAX.

A task is one module that defines a ``FinetuneTask`` subclass and registers an
instance with ``@register`` (or ``register(instance)``). The training loop,
the launcher and the other tasks never change when a task is added: the run
config names the task (``task = "mnli"``), and everything task-specific comes
from these methods:

  config_defaults(c)          add the task's ``data.*`` fields and recipe defaults
  label_names(cfg)            class names (None for regression / span tasks)
  load_split(cfg, split, tok) read + encode one split -> ``Split`` (arrays + host examples)
  eval_splits(cfg, split)     the named splits one evaluation covers (MNLI dev = matched + mismatched)
  postprocess(cfg, split, out) all predictions of a split -> (predictions, metrics over the whole split)
  write_predictions(...)      the official prediction / submission files

and ``head`` names the model head (see ``bert_jax.tasks.heads``), which brings its
loss, its metrics summed during training and its jitted ``predict`` step.

Built-in task modules are listed in ``BUILTIN_MODULES`` and imported on first
lookup; a task defined elsewhere registers itself when its module is imported
(for example by the config file that uses it). Task modules keep JAX imports
inside functions, so loading a config never imports JAX.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BUILTIN_MODULES = (
    "bert_jax.tasks.docs_section",
    "bert_jax.tasks.glue",
    "bert_jax.tasks.squad",
    "bert_jax.tasks.ner",
    "bert_jax.tasks.swag",
)

HEADS = ("sequence_classification", "token_classification", "question_answering", "multiple_choice")

_REGISTRY: dict[str, "FinetuneTask"] = {}
_IMPORTED = False


@dataclass
class Split:
    """One encoded split of a task.

    Attributes:
      name: e.g. ``"train"``, ``"dev"``, ``"dev_matched"``, ``"test"``.
      arrays: model inputs ``{name: [num_rows, ...]}`` (a row is an example, or a window /
        choice set for tasks that need them) plus the training targets when labelled.
      examples: host-side examples, in the order their predictions are post-processed.
      has_labels: the split carries gold labels (test splits usually do not).
      info: facts recorded in results and reports (counts, label distribution, baselines).
    """

    name: str
    arrays: dict[str, np.ndarray]
    examples: list = field(default_factory=list)
    has_labels: bool = True
    info: dict = field(default_factory=dict)

    @property
    def num_rows(self) -> int:
        return int(len(next(iter(self.arrays.values()))))


class FinetuneTask:
    """Base class of a registered fine-tuning task (see the module docstring)."""

    name: str = ""
    head: str = "sequence_classification"
    field_help: dict = {}  # "data.x" -> meaning, for the configuration reference

    def config_defaults(self, c) -> None:
        """Add ``c.data.*`` fields and change recipe defaults in place."""

    def label_names(self, cfg) -> list[str] | None:
        return None

    def num_labels(self, cfg) -> int:
        names = self.label_names(cfg)
        return len(names) if names else 1

    def splits(self, cfg) -> tuple[str, ...]:
        """Split names this task can read (for messages)."""
        return ("train", "dev", "test")

    def eval_splits(self, cfg, split: str) -> list[str]:
        return [split]

    def load_split(self, cfg, split: str, tokenizer) -> Split:
        raise NotImplementedError

    def postprocess(self, cfg, split: Split, outputs: dict[str, np.ndarray]) -> tuple[Any, dict]:
        """``outputs``: the head's predict outputs, one row per row of ``split.arrays``, in order."""
        raise NotImplementedError

    def write_predictions(self, cfg, split: Split, predictions, directory: str) -> list[str]:
        """Write prediction files under ``directory``; return their paths."""
        return []

    def baselines(self, cfg, split: Split) -> dict:
        """Trivial baselines on a labelled split (e.g. ``majority``), for results tables."""
        return {}


def register(task):
    """Register a ``FinetuneTask`` instance (or class, instantiated) under its ``name``."""
    instance = task() if isinstance(task, type) else task
    if not instance.name:
        raise ValueError(f"{type(instance).__name__} has no name")
    if instance.head not in HEADS:
        raise ValueError(f"task {instance.name!r}: head {instance.head!r} is not one of {HEADS}")
    _REGISTRY[instance.name] = instance
    return task


def _import_builtins() -> None:
    global _IMPORTED
    if not _IMPORTED:
        _IMPORTED = True
        for name in BUILTIN_MODULES:
            importlib.import_module(name)


def get(name: str) -> FinetuneTask:
    """The registered task ``name``; a ValueError lists the registered names otherwise."""
    _import_builtins()
    if name not in _REGISTRY:
        import difflib
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"task={name!r} is not a registered fine-tuning task.{hint} "
                         f"Registered: {', '.join(sorted(_REGISTRY))}.")
    return _REGISTRY[name]


def task_names() -> list[str]:
    _import_builtins()
    return sorted(_REGISTRY)
