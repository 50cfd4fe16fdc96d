"""Token classification (conll2003) and multiple choice (swag) throughput: fine-tuning train step
and evaluation (predict) examples/s on the ``small`` and ``base`` shapes.

  python benchmarks/ner_swag.py                          # small and base, both tasks
  python benchmarks/ner_swag.py --configs small --steps 10

Inputs are the derived sets under ``data/tasks`` encoded by the registered tasks themselves
(``conll_docs`` dev windows at seq 128; ``swag_next`` dev questions, 4 choices x seq 128), with a
vocabulary trained on the bundled corpus; throughput depends on the shapes, not the words. An
example is a window (NER) or a whole question with its 4 choices (SWAG). Evaluation goes through
``predict_rows`` (host gathering included) on a count that is not a batch multiple.

One JSON line per result on stdout, each with the CPU model.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import machine  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {"small": (256, 4, 4, 1024), "base": (768, 12, 12, 3072)}  # hidden, layers, heads, intermediate
BATCH = {("small", "conll2003"): 32, ("base", "conll2003"): 8, ("small", "swag"): 16, ("base", "swag"): 4}
DATA = {"conll2003": ("configs/ner/conll_docs.py", "dev"), "swag": ("configs/swag/swag_next.py", "dev")}
SEQ = 128


def task_split(task: str, vocab_file: str):
    """The registered task's encoded dev split of its derived set, at seq 128."""
    from bert_jax.run_config import load_config
    from bert_jax.tasks import registry
    from bert_jax.tokenization import BertTokenizerFast
    config_file, split = DATA[task]
    cfg = load_config(os.path.join(ROOT, config_file), [f"data.max_seq_length={SEQ}"])
    tok = BertTokenizerFast(vocab_file, do_lower_case=True)
    task_def = registry.get(task)
    return task_def, task_def.load_split(cfg, split, tok), task_def.num_labels(cfg)


def bench(name: str, task: str, steps: int, vocab_file: str, vocab_size: int) -> dict:
    from bert_jax import optim, partitioning, train
    from bert_jax.config import BertConfig
    from bert_jax.evaluation import predict_rows
    from bert_jax.modeling.modules import build_module
    from bert_jax.tasks.heads import MODULE_CLASSES, HeadTask
    task_def, split, num_labels = task_split(task, vocab_file)
    hidden, layers, heads, inter = CONFIGS[name]
    batch = BATCH[(name, task)]
    cfg = BertConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=inter, num_labels=num_labels)
    num_choices = int(split.arrays["input_ids"].shape[1]) if task_def.head == "multiple_choice" else 0
    head = HeadTask(build_module(cfg, MODULE_CLASSES[task_def.head]), task_def.head, SEQ, num_labels=num_labels,
                    num_choices=num_choices)
    ocfg = dict(name="adamw", learning_rate=2e-5, total_steps=10_000, warmup_steps=100, weight_decay=0.01)
    tx, schedule = optim.make_optimizer(ocfg), optim.make_schedule(ocfg)
    mesh = partitioning.make_mesh((1, 1, 1), jax.devices()[:1])
    state, shardings, _ = train.create_train_state(head, tx, mesh, partitioning.DEFAULT_RULES,
                                                   jax.random.PRNGKey(0), jax.random.PRNGKey(1))
    fns = train.jit_steps(head, tx, schedule, mesh, shardings, 1)
    batches = []
    for i in range(2):
        rows = {k: split.arrays[k][i * batch:(i + 1) * batch] for k in head.batch_spec if k != "row_weight"}
        rows["row_weight"] = np.ones((batch,), np.float32)
        batches.append(partitioning.make_global_batch(rows, mesh))
    state, m = fns.train(state, batches[0])  # compile
    jax.block_until_ready(m)
    times = []
    for i in range(steps):
        t = time.perf_counter()
        state, m = fns.train(state, batches[i % 2])
        jax.block_until_ready(m)
        times.append(time.perf_counter() - t)
    train_s = float(np.median(times))
    n_eval = 3 * batch - 3  # not a batch multiple: the padded path is timed too
    eval_arrays = {k: split.arrays[k][:n_eval] for k in head.input_spec}
    predict_rows(fns.predict, state.params, eval_arrays, head.predict_spec, mesh, batch)  # compile
    t = time.perf_counter()
    predict_rows(fns.predict, state.params, eval_arrays, head.predict_spec, mesh, batch)
    eval_s = time.perf_counter() - t
    return {"benchmark": "finetune_ner_swag", "config": name, "task": task, "head": task_def.head,
            "seq_len": SEQ, "choices": num_choices or None, "batch": batch, "timed_steps": steps,
            "train_examples_per_s": round(batch / train_s, 2), "eval_examples_per_s": round(n_eval / eval_s, 2),
            "eval_examples": n_eval, **machine()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=["small", "base"], choices=sorted(CONFIGS))
    parser.add_argument("--tasks", nargs="+", default=["conll2003", "swag"], choices=sorted(DATA))
    parser.add_argument("--steps", type=int, default=0, help="timed train steps (default: 3 small, 1 base)")
    args = parser.parse_args(argv)
    from bert_jax.vocab import train_wordpiece
    with tempfile.TemporaryDirectory() as tmp:
        train_wordpiece(sorted(glob.glob(os.path.join(ROOT, "data", "corpus", "*.txt"))), 8000, lowercase=True,
                        output_dir=tmp, progress=False, overwrite=True)
        vocab_file = os.path.join(tmp, "vocab.txt")
        vocab_size = sum(1 for _ in open(vocab_file, encoding="utf-8"))
        for name in args.configs:
            for task in args.tasks:
                steps = args.steps or (3 if name == "small" else 1)
                print(json.dumps(bench(name, task, steps, vocab_file, vocab_size)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
