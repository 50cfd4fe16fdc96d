"""SQuAD-like fine-tuning throughput: train step and evaluation at seq 384, and post-processing.

  python benchmarks/squad.py                       # small and base
  python benchmarks/squad.py --configs small --steps 5

Inputs are the windows of the bundled cloze set (``data/tasks/squad_cloze``, real corpus
paragraphs in the SQuAD layout) at max_seq_length 384, doc stride 128, tokenized with an
8,000-token vocabulary trained on the corpus. For each config: the question-answering
train step (windows/s, median of ``--steps`` timed steps after a compile + warm-up step)
and the jitted ``predict`` step over evaluation windows (windows/s, host gathering
included). Post-processing (n-best decoding of every dev question from the small model's
logits with non-context tokens pushed down, ``bert_jax.tasks.squad_postprocess``) is timed
once and reported per 1,000 questions and as a ratio to the evaluation time of the same
questions (their windows through ``predict``).

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
DATA = os.path.join(ROOT, "data", "tasks", "squad_cloze")
CONFIGS = {"small": (256, 4, 4, 1024, 16, 64), "base": (768, 12, 12, 3072, 2, 4)}  # + train batch, eval windows
SEQ, STRIDE = 384, 128


def windows(split: str, vocab_file: str):
    from bert_jax.tasks.squad_data import read_squad_file, squad_features
    from bert_jax.tokenization import BertTokenizerFast
    data = read_squad_file(os.path.join(DATA, f"{split}-v1.1.json"))
    features = squad_features(data.examples, BertTokenizerFast(vocab_file), SEQ, STRIDE, 64)
    return data, features


def setup(name: str, vocab_size: int):
    from bert_jax import optim, partitioning, train
    from bert_jax.config import BertConfig
    from bert_jax.modeling import BertForQuestionAnsweringModule
    from bert_jax.tasks.heads import HeadTask
    hidden, layers, heads, inter, batch, _ = CONFIGS[name]
    cfg = BertConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=inter, num_labels=2)
    task = HeadTask(BertForQuestionAnsweringModule(cfg), "question_answering", SEQ)
    ocfg = dict(name="adamw", learning_rate=3e-5, total_steps=10_000, warmup_steps=100, weight_decay=0.01)
    tx, schedule = optim.make_optimizer(ocfg), optim.make_schedule(ocfg)
    mesh = partitioning.make_mesh((1, 1, 1), jax.devices()[:1])
    state, shardings, _ = train.create_train_state(task, tx, mesh, partitioning.DEFAULT_RULES,
                                                   jax.random.PRNGKey(0), jax.random.PRNGKey(1))
    return task, mesh, state, train.jit_steps(task, tx, schedule, mesh, shardings, 1), batch


def bench(name: str, steps: int, train_features, dev_features) -> tuple[dict, float, dict | None]:
    """Train and predict throughput; returns the JSON line, eval seconds per window, and
    (for ``small``) the predicted logits of every dev window."""
    from bert_jax import partitioning
    from bert_jax.evaluation import predict_rows
    task, mesh, state, fns, batch = setup(name, int(train_features.input_ids.max()) + 1)
    arrays = train_features.model_inputs()
    batches = []
    for i in range(2):
        rows = {k: arrays[k][i * batch:(i + 1) * batch] for k in task.batch_spec if k != "row_weight"}
        rows["row_weight"] = np.ones((batch,), np.float32)
        batches.append(partitioning.make_global_batch(rows, mesh))
    state, m = fns.train(state, batches[0])  # compile
    jax.block_until_ready(m)
    times = []
    for i in range(steps + 1):  # the first timed step is a warm-up, dropped
        t = time.perf_counter()
        state, m = fns.train(state, batches[i % 2])
        jax.block_until_ready(m)
        times.append(time.perf_counter() - t)
    train_s = float(np.median(times[1:]))
    eval_windows = CONFIGS[name][5] if name != "small" else len(dev_features)
    dev = {k: getattr(dev_features, k)[:eval_windows] for k in ("input_ids", "attention_mask", "token_type_ids")}
    warm = {k: v[:batch] for k, v in dev.items()}
    predict_rows(fns.predict, state.params, warm, task.predict_spec, mesh, batch)  # compile
    t = time.perf_counter()
    out = predict_rows(fns.predict, state.params, dev, task.predict_spec, mesh, batch)
    eval_s = time.perf_counter() - t
    line = {"benchmark": "squad_finetune", "config": name, "seq_len": SEQ, "batch": batch, "timed_steps": steps,
            "train_examples_per_s": round(batch / train_s, 2), "eval_examples_per_s": round(eval_windows / eval_s, 2),
            "eval_windows": eval_windows, **machine()}
    return line, eval_s / eval_windows, (out if name == "small" else None)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=["small", "base"], choices=sorted(CONFIGS))
    parser.add_argument("--steps", type=int, default=3, help="timed train steps per config")
    args = parser.parse_args(argv)
    from bert_jax.tasks.squad_postprocess import postprocess_squad
    from bert_jax.vocab import train_wordpiece
    with tempfile.TemporaryDirectory() as tmp:
        train_wordpiece(sorted(glob.glob(os.path.join(ROOT, "data", "corpus", "*.txt"))), 8000, lowercase=True,
                        output_dir=tmp, progress=False)
        vocab_file = os.path.join(tmp, "vocab.txt")
        _, train_features = windows("train", vocab_file)
        dev_data, dev_features = windows("dev", vocab_file)
    eval_per_window, logits = {}, None
    for name in args.configs:
        line, eval_per_window[name], out = bench(name, args.steps, train_features, dev_features)
        logits = out if out is not None else logits
        print(json.dumps(line), flush=True)
    if logits is None:  # post-processing needs real logits: the small model's
        _, _, logits = bench("small", 1, train_features, dev_features)
    # A trained model scores question, special and padding tokens far below context tokens;
    # pushing them down here makes every top-n candidate a context token: the most spans to
    # check, so the timing is an upper bound (random-init logits would leave most pairs invalid).
    in_context = dev_features.context_offsets[..., 0] >= 0
    start, end = (np.where(in_context, logits[k], logits[k] - 1e4) for k in ("start_logits", "end_logits"))
    t = time.perf_counter()
    result = postprocess_squad(dev_data.examples, dev_features, start, end)
    post_s = time.perf_counter() - t
    assert len(result.predictions) == len(dev_data.examples)
    questions = len(dev_data.examples)
    windows_per_question = len(dev_features) / questions
    line = {"benchmark": "squad_postprocess", "questions": questions, "windows": len(dev_features),
            "n_best_size": 20, "seconds_per_1000_questions": round(1000 * post_s / questions, 3)}
    for name, per_window in eval_per_window.items():
        # Evaluating the same questions takes windows_per_question predict rows each.
        line[f"ratio_to_eval_{name}"] = round(post_s / (per_window * windows_per_question * questions), 4)
    print(json.dumps({**line, **machine()}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
