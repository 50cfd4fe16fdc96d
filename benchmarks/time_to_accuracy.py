"""Time to accuracy: wall time until held-out MLM accuracy reaches a fixed value, bert-jax beside
a reference trainer (Hugging Face's PyTorch ``BertForPreTraining``), same data and recipe, one run.

Data: a WordPiece vocabulary (``--vocab-size``, default 2,000) and MLM+NSP shards built from the
bundled corpus with the project's own tools, as ``bert-jax quickstart`` builds them: every
documentation part but ``faq.txt`` for training, ``faq.txt`` held out for evaluation. Both sides
read the same batches from ``data_pipeline.loader.PretrainingLoader`` (opened by
``bert_jax.tasks.pretraining.open_loader`` with the run config, so the order and masks are
identical) and evaluate on the same ``--eval-steps`` held-out batches every
``--eval-every`` steps.

Recipe: ``configs/pretrain/tiny.py`` (hidden 128, 2 layers, 4 heads, intermediate 512, seq 64,
10 predictions, batch 32, dropout 0.1, float32), AdamW lr 2e-3, b1 0.9, b2 0.999, eps 1e-6,
weight decay 0.01 except biases and LayerNorm, gradient clipping at global norm 1.0, linear warmup
over a tenth of ``--schedule-steps`` (default 1,000) then linear decay to 0 at its end (tiny.py's
proportions); ``--max-steps`` only caps the run, so the step where the target is crossed does
not depend on it. The reference reads these values from the same resolved config.

  bert-jax   the project's own loop: ``run_training(cfg, workdir, pretraining_job())``
             (MLM logits only at the masked positions); checkpoints only at the end.
  reference  ``transformers.BertForPreTraining`` on CPU, ``torch.set_num_threads(cores)``
             (``--torch-threads``), in a plain loop: HF's own loss (MLM at the masked positions via ``labels=-100``
             elsewhere, plus NSP), ``torch.optim.AdamW`` with the same decay groups,
             ``clip_grad_norm_`` and a ``LambdaLR`` of the same schedule. Its MLM head
             computes logits at every position; that is part of what is compared.

Clocks: each side's clock starts before it builds its model and loader (bert-jax: at the call of
``run_training``, so state creation and the jit compile of the first step are counted) and
stops at the evaluation where ``eval/mlm_accuracy`` first reaches ``--target``. Evaluation time
is EXCLUDED from both clocks (paused before, resumed after each evaluation; bert-jax's
parameters are synchronised first, so asynchronous dispatch does not hide training work
in the evaluation). The end-of-run checkpoint and data building are outside the clocks.

On a machine shared with other jobs, the reference's two OpenMP threads wait on each other at
every barrier while the other load holds a core, which slowed it about tenfold in our runs;
``--torch-threads 1`` gives its rate without that effect (docs/benchmarks.md records both).

  python benchmarks/time_to_accuracy.py                                  # target 0.10
  python benchmarks/time_to_accuracy.py --torch-threads 1                # shared machine
  python benchmarks/time_to_accuracy.py --target 0.05 --max-steps 100    # smoke
  python benchmarks/time_to_accuracy.py --compilation-cache /tmp/xla      # twice: cold, then warm

Target 0.10: about 3x the best context-free guess on the held-out text (always the most
frequent masked token), reached by the tiny recipe in a few hundred steps. A side that does
not reach it within ``--max-steps`` is reported as not reached, with its final accuracy.

One JSON line per side on stdout, then a ratio line (bert-jax wall time to target / the
reference's), each with the CPU model and the load average around each side (on a shared machine
the sides run one after the other, so their loads can differ); progress on stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

TINY = os.path.join(ROOT, "configs", "pretrain", "tiny.py")
HELD_OUT = "faq.txt"  # as bert-jax quickstart: a whole documentation part, unseen in training


def progress(msg: str) -> None:
    print(f"[time_to_accuracy] {msg}", file=sys.stderr, flush=True)


def build_data(work: str, vocab_size: int, seq: int, pred: int) -> tuple[str, str]:
    """Vocabulary and train / held-out shards under ``work`` (reused when already built)."""
    from bert_jax.vocab import train_wordpiece
    from data_pipeline.build import BuildOptions, build
    files = sorted(glob.glob(os.path.join(ROOT, "data", "corpus", "*.txt")))
    train = [f for f in files if os.path.basename(f) != HELD_OUT]
    held = [f for f in files if os.path.basename(f) == HELD_OUT]
    vocab_dir = os.path.join(work, "vocab")
    if not os.path.exists(os.path.join(vocab_dir, "vocab.txt")):
        train_wordpiece(train, vocab_size, lowercase=True, output_dir=vocab_dir, progress=False)
    common = dict(vocab_file=os.path.join(vocab_dir, "vocab.txt"), max_seq_length=seq,
                  max_predictions_per_seq=pred, seed=0)
    train_dir, eval_dir = os.path.join(work, "shards", "train"), os.path.join(work, "shards", "eval")
    if not os.path.exists(os.path.join(train_dir, "manifest.json")):
        build(BuildOptions(inputs=tuple(train), num_shards=4, dupe_factor=5, **common), train_dir)
    if not os.path.exists(os.path.join(eval_dir, "manifest.json")):
        build(BuildOptions(inputs=tuple(held), num_shards=1, dupe_factor=1, **common), eval_dir)
    return train_dir, eval_dir


class Clock:
    """Wall time with the evaluations taken out: ``pause()`` before one, ``resume()`` after."""

    def __init__(self):
        self.start, self.excluded, self._paused_at = time.perf_counter(), 0.0, None

    def pause(self) -> float:
        self._paused_at = time.perf_counter()
        return self._paused_at - self.start - self.excluded

    def resume(self) -> None:
        self.excluded += time.perf_counter() - self._paused_at


def summarise(side: str, points: list[tuple[int, float, float]], target: float, max_steps: int) -> dict:
    """Result line from ``(step, training seconds, held-out MLM accuracy)`` per evaluation.

    ``steps_per_s`` is measured between the first and the last evaluation, so it leaves out
    start-up (state creation, compilation); ``startup_s`` is what the clock holds beyond that
    rate at the first evaluation.
    """
    hit = next((p for p in points if p[2] >= target), None)
    last = points[-1]
    first = points[0]
    rate = (last[0] - first[0]) / (last[1] - first[1]) if len(points) > 1 and last[1] > first[1] else None
    return {
        "benchmark": "time_to_accuracy", "side": side, "target_mlm_accuracy": target,
        "reached": hit is not None, "steps_to_target": hit[0] if hit else None,
        "wall_s_to_target": round(hit[1], 2) if hit else None,
        "steps_per_s": round(rate, 3) if rate else None,
        "startup_s": round(first[1] - first[0] / rate, 2) if rate else None,
        "final_step": last[0], "final_mlm_accuracy": round(last[2], 4), "wall_s_at_final_step": round(last[1], 2),
        "max_steps": max_steps, "eval_points": [[s, round(t, 2), round(a, 4)] for s, t, a in points],
    }


def run_bert_jax(cfg, workdir: str, target: float, max_steps: int) -> list[tuple[int, float, float]]:
    """The project's own loop; the wrapped ``evaluate`` pauses the clock and stops at the target."""
    import jax
    from bert_jax.tasks.pretraining import pretraining_job
    from bert_jax.train import StopTraining
    from bert_jax.trainer import run_training

    points, stopped = [], {}
    make_inner = pretraining_job()

    def make_job(c, params_key, *, resuming):
        job = make_inner(c, params_key, resuming=resuming)
        inner = job.evaluate

        def evaluate(context, params, step):
            if step in stopped:  # the end-of-run evaluation of the step that stopped the loop
                return stopped[step]
            jax.block_until_ready(params)  # the steps dispatched so far belong to training
            seconds = clock.pause()
            values = inner(context, params, step)
            clock.resume()
            points.append((step, seconds, float(values["mlm_accuracy"])))
            progress(f"bert-jax  step {step:5d}: held-out MLM accuracy {values['mlm_accuracy']:.4f} "
                     f"at {seconds:.1f} s")
            if values["mlm_accuracy"] >= target or step >= max_steps:
                stopped[step] = values
                raise StopTraining  # the loop's own clean stop; the end hooks still run
            return values

        return dataclasses.replace(job, evaluate=evaluate)

    clock = Clock()
    run_training(cfg, workdir, make_job)
    # The accuracies as the run recorded them (the same values the wrapper saw).
    with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
        logged = {r["step"]: r["eval/mlm_accuracy"] for r in map(json.loads, f) if "eval/mlm_accuracy" in r}
    return [(step, seconds, float(logged.get(step, acc))) for step, seconds, acc in points]


def run_reference(cfg, target: float, max_steps: int, threads: int) -> list[tuple[int, float, float]]:
    """Hugging Face ``BertForPreTraining`` (PyTorch, CPU) with a plain loop over the same batches."""
    import itertools
    import numpy as np
    import torch
    import transformers
    from bert_jax.tasks.pretraining import open_loader
    from bert_jax.optim import is_decayed

    torch.set_num_threads(threads)
    torch.manual_seed(cfg.seed)
    eval_loader = open_loader(cfg.data.eval_dir, cfg, seed=int(cfg.seed) + 1)  # as bert-jax's evaluate
    eval_batches = list(itertools.islice(eval_loader, cfg.eval_steps or eval_loader.steps_per_epoch))
    eval_loader.close()

    def tensors(batch):
        return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}

    def mlm_labels(b):
        """[batch, length] labels: the masked token at each real prediction, -100 elsewhere."""
        labels = torch.full(b["input_ids"].shape, -100, dtype=torch.long)
        keep = b["masked_lm_weights"] > 0
        rows = torch.arange(labels.shape[0])[:, None].expand_as(keep)
        labels[rows[keep], b["masked_lm_positions"].long()[keep]] = b["masked_lm_ids"].long()[keep]
        return labels

    @torch.no_grad()
    def evaluate(model):
        model.eval()
        correct = weight = 0.0
        for b in map(tensors, eval_batches):
            out = model(input_ids=b["input_ids"].long(), attention_mask=b["attention_mask"].long(),
                        token_type_ids=b["token_type_ids"].long())
            logits = torch.gather(out.prediction_logits, 1,
                                  b["masked_lm_positions"].long()[..., None].expand(-1, -1, out.prediction_logits.shape[-1]))
            w = b["masked_lm_weights"]
            correct += float(((logits.argmax(-1) == b["masked_lm_ids"].long()) * w).sum())
            weight += float(w.sum())
        model.train()
        return correct / max(weight, 1.0)

    clock = Clock()
    m, o = cfg.model, cfg.optim
    loader = open_loader(cfg.data.train_dir, cfg, seed=int(cfg.seed))
    config = transformers.BertConfig(
        vocab_size=int(loader.manifest["vocab_size"]), hidden_size=m.hidden_size,
        num_hidden_layers=m.num_hidden_layers, num_attention_heads=m.num_attention_heads,
        intermediate_size=m.intermediate_size, hidden_act=m.hidden_act, hidden_dropout_prob=m.hidden_dropout_prob,
        attention_probs_dropout_prob=m.attention_probs_dropout_prob,
        max_position_embeddings=m.max_position_embeddings, type_vocab_size=m.type_vocab_size,
        initializer_range=m.initializer_range, layer_norm_eps=m.layer_norm_eps)
    model = transformers.BertForPreTraining(config)
    model.train()
    named = list(model.named_parameters())  # tied embeddings appear once
    groups = [{"params": [p for n, p in named if is_decayed(n.split("."))], "weight_decay": o.weight_decay},
              {"params": [p for n, p in named if not is_decayed(n.split("."))], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=o.learning_rate, betas=(o.b1, o.b2), eps=o.eps)
    total, warmup = int(o.total_steps), int(o.warmup_steps)

    def lr_factor(step):  # bert_jax.optim.make_schedule, linear: 0 at the first update
        if step < warmup:
            return step / max(warmup, 1)
        return max(0.0, 1.0 - (step - warmup) / max(total - warmup, 1))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    points = []
    try:
        for step, batch in enumerate(loader, start=1):
            b = tensors(batch)
            out = model(input_ids=b["input_ids"].long(), attention_mask=b["attention_mask"].long(),
                        token_type_ids=b["token_type_ids"].long(), labels=mlm_labels(b),
                        next_sentence_label=b["next_sentence_label"].long())
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), o.clip_grad_norm)
            opt.step()
            sched.step()
            if step % cfg.eval_every_steps == 0 or step == max_steps:
                seconds = clock.pause()
                acc = evaluate(model)
                clock.resume()
                points.append((step, seconds, acc))
                progress(f"reference step {step:5d}: held-out MLM accuracy {acc:.4f} at {seconds:.1f} s")
                if acc >= target:
                    break
            if step >= max_steps:
                break
    finally:
        loader.close()
    return points


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", type=float, default=0.10, help="held-out MLM accuracy to reach (default 0.10)")
    parser.add_argument("--max-steps", type=int, default=1000, help="step cap per side")
    parser.add_argument("--schedule-steps", type=int, default=1000,
                        help="learning-rate schedule length (warmup = a tenth of it), both sides")
    parser.add_argument("--eval-every", type=int, default=25, help="evaluate every N steps (both sides)")
    parser.add_argument("--eval-steps", type=int, default=10, help="held-out batches per evaluation")
    parser.add_argument("--vocab-size", type=int, default=2000)
    parser.add_argument("--workdir", default="", help="keep the vocabulary, shards and run here (default: a temp dir)")
    parser.add_argument("--torch-threads", type=int, default=os.cpu_count(),
                        help="reference intra-op threads (default: the CPU count)")
    parser.add_argument("--sides", nargs="+", default=["bert-jax", "reference"], choices=["bert-jax", "reference"])
    parser.add_argument("--compilation-cache", default="",
                        help="bert-jax's compilation_cache_dir; run twice with the same DIR to time a restart that "
                             "loads its compiled steps (the first run fills it; the output says cold or warm)")
    args = parser.parse_args(argv)
    if args.max_steps % args.eval_every or not 0 < args.max_steps <= args.schedule_steps:
        parser.error("--max-steps must be a multiple of --eval-every and at most --schedule-steps")

    from machine import machine
    from bert_jax.run_config import load_config

    info = machine()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or tmp
        tiny = load_config(TINY)
        progress(f"building the vocabulary and shards under {work}")
        t = time.perf_counter()
        train_dir, eval_dir = build_data(work, args.vocab_size, tiny.data.max_seq_length,
                                         tiny.data.max_predictions_per_seq)
        progress(f"data ready in {time.perf_counter() - t:.1f} s")
        cfg = load_config(TINY, [
            f"data.train_dir={train_dir!r}", f"data.eval_dir={eval_dir!r}",
            f"optim.total_steps={args.schedule_steps}", f"optim.warmup_steps={args.schedule_steps // 10}",
            f"eval_every_steps={args.eval_every}", f"eval_steps={args.eval_steps}",
            f"log_every_steps={args.eval_every}", "checkpoint.every_steps=0",
            f"compilation_cache_dir={args.compilation_cache!r}"])
        run_dir = os.path.join(work, "bert_jax_run")
        if os.path.exists(run_dir):
            raise SystemExit(f"{run_dir} exists (a resumed run would not be timed from the start); remove it")
        results = {}
        for side in args.sides:
            progress(f"{side}: training to held-out MLM accuracy {args.target} (at most {args.max_steps} steps)")
            load_before = os.getloadavg()[0]
            cache = None
            if side == "bert-jax":
                if args.compilation_cache:
                    from bert_jax.compile_cache import machine_tag
                    cache = "warm" if glob.glob(os.path.join(args.compilation_cache, machine_tag(),
                                                             "jit_train_step-*")) else "cold"
                points = run_bert_jax(cfg, run_dir, args.target, args.max_steps)
            else:
                points = run_reference(cfg, args.target, args.max_steps, args.torch_threads)
            results[side] = summarise(side, points, args.target, args.max_steps)
            print(json.dumps({**results[side], "vocab_size": args.vocab_size, "eval_every_steps": args.eval_every,
                              "eval_steps": args.eval_steps, "schedule_steps": args.schedule_steps,
                              "recipe": "configs/pretrain/tiny.py, float32",
                              **({"torch_threads": args.torch_threads} if side == "reference" else {}),
                              **({"compilation_cache": cache} if cache else {}),
                              "load_avg_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                              **info}), flush=True)
    if len(results) == 2:
        jx, ref = results["bert-jax"], results["reference"]
        both = jx["reached"] and ref["reached"]
        ratio = jx["wall_s_to_target"] / ref["wall_s_to_target"] if both else None
        print(json.dumps({
            "benchmark": "time_to_accuracy", "side": "ratio", "target_mlm_accuracy": args.target,
            "wall_time_ratio_bert_jax_over_reference": round(ratio, 3) if ratio else None,
            "steps_per_s_ratio_bert_jax_over_reference":
                round(jx["steps_per_s"] / ref["steps_per_s"], 3) if jx["steps_per_s"] and ref["steps_per_s"] else None,
            "meets_half": ratio is not None and ratio <= 0.5, "meets_third": ratio is not None and ratio <= 1 / 3,
            "note": None if both else "a side did not reach the target; no time ratio",
            **info}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
