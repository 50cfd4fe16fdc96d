"""``bert-jax quickstart``: the whole system, small, on the bundled corpus, offline -- and proof
that pretraining pays off.

Stages (each prints one line; rerunning resumes or skips what is already there):
  1. a WordPiece vocabulary trained on the corpus;
  2. MLM + NSP shards: every documentation part but one for training, the held-out part
     (``faq.txt``) for evaluation;
  3. pretraining (``configs/pretrain/quickstart.py``), evaluated on the held-out shards before
     and after;
  4. fine-tuning the pretrained encoder, and the same architecture from scratch, on an
     embedded task derived from the corpus (``data/tasks/``; see QUICKSTART_TASK);
  5. a summary: held-out MLM accuracy before/after beside the best context-free guess (always
     the held-out text's most frequent masked token), NSP accuracy, downstream dev metric of
     pretrained vs scratch vs majority, wall time per stage, where everything is.
The exit status is 1 when pretraining does not reach ``MLM_GUESS_RATIO`` x the context-free
guess on held-out text, or the pretrained encoder does not beat scratch by ``FINETUNE_MARGIN`` on
the mean over the fine-tuning seeds (``--seeds``, default three); ``--no-check`` reports the
checks without enforcing them (for shortened runs such as ``--steps 200``).
The measurements behind the recipe are in ``configs/pretrain/quickstart.py`` and
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import pathlib
import sys
import time

_ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = _ROOT / "data" / "corpus"
PRETRAIN_CONFIG = _ROOT / "configs" / "pretrain" / "quickstart.py"
HELD_OUT = "faq.txt"  # a whole documentation part, so evaluation text is unseen
# The embedded downstream task: (registered task, config file, overrides, metric). Does sentence 2
# follow sentence 1 in the same document (data/tasks/glue_nextsent, RTE layout: 1,600 train / 250
# dev pairs)? Word overlap alone reaches 0.656 on dev; the discourse cues beyond it are what
# pretraining on the corpus teaches. (docs_section, the lexical task, gains nothing from this
# much pretraining: docs/benchmarks.md, "quickstart".)
QUICKSTART_TASK = ("rte", "configs/glue/rte.py",
                   [f"data.data_dir={str(_ROOT / 'data' / 'tasks' / 'glue_nextsent')!r}"], "accuracy")
MLM_GUESS_RATIO = 3.0   # held-out MLM accuracy must reach this multiple of the context-free guess
FINETUNE_MARGIN = 0.03  # pretrained must beat scratch on the mean task metric by at least this


def _corpus_files(corpus: pathlib.Path) -> tuple[list[str], list[str]]:
    files = sorted(glob.glob(str(corpus / "*.txt")))
    if not files:
        raise FileNotFoundError(
            f"no *.txt corpus files under {corpus}; run from a checkout of bert-jax "
            "(the corpus ships in data/corpus) or pass --corpus DIR")
    train = [f for f in files if os.path.basename(f) != HELD_OUT]
    held = [f for f in files if os.path.basename(f) == HELD_OUT] or train[-1:]
    return train, held


def context_free_guess(eval_dir: str, global_batch_size: int, batches: int) -> tuple[float, int]:
    """Accuracy of always predicting the most frequent masked token, over the batches an
    evaluation reads (one pass over the eval shards, as ``eval_steps=0`` does)."""
    import numpy as np
    from data_pipeline.loader import PretrainingLoader
    loader = PretrainingLoader(eval_dir, global_batch_size, seed=1, drop_remainder=True, num_epochs=1)
    counts = None
    for i, batch in enumerate(loader):
        if batches and i >= batches:
            break
        ids = batch["masked_lm_ids"][batch["masked_lm_weights"] > 0]
        c = np.bincount(ids, minlength=int(loader.manifest["vocab_size"]))
        counts = c if counts is None else counts + c
    if hasattr(loader, "close"):
        loader.close()
    return float(counts.max() / counts.sum()), int(counts.argmax())


SETTINGS_FILE = "quickstart_settings.json"


def _claim_workdir(work: pathlib.Path, settings: dict) -> None:
    """Record the settings of the run in ``work``; a rerun with the same settings resumes (every
    stage reuses what is done), with others it is refused: the stages would mix two runs."""
    record = work / SETTINGS_FILE
    if record.is_file():
        try:
            old = json.loads(record.read_text(encoding="utf-8"))
        except ValueError:
            old = None
        if old != settings:
            diff = (", ".join(f"{k} {old.get(k)!r} -> {v!r}" for k, v in settings.items() if old.get(k) != v)
                    if isinstance(old, dict) else f"{record} is damaged")
            raise ValueError(f"{work} holds a quickstart run with other settings ({diff}); its vocabulary, shards "
                             "and runs would be reused with these. Use a new --workdir (or delete this one).")
        return
    if work.exists() and (not work.is_dir() or not {p.name for p in work.iterdir()} <= _STAGE_NAMES):
        raise ValueError(f"--workdir {work} exists and is not a quickstart workdir (no {SETTINGS_FILE}); "
                         "pass a new --workdir.")
    # New, or made by a bert-jax that kept no record (only the stages' own names in it): claim it.
    work.mkdir(parents=True, exist_ok=True)
    from bert_jax.trainer import atomic_write_text
    atomic_write_text(str(record), json.dumps(settings, indent=2) + "\n")


# What the stages write under the workdir (an older quickstart's workdir holds only these).
_STAGE_NAMES = {"vocab", "shards", "pretrain", "finetune_pretrained", "finetune_scratch", "summary.json"}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bert-jax quickstart", description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default="runs/quickstart", help="where everything is written")
    parser.add_argument("--corpus", type=pathlib.Path, default=DEFAULT_CORPUS,
                        help="directory of BERT-format .txt files (default: the bundled corpus)")
    parser.add_argument("--vocab-size", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=0, help="pretraining steps (default: the recipe's)")
    parser.add_argument("--finetune-steps", type=int, default=0, help="fine-tuning steps (default: 250)")
    parser.add_argument("--seeds", default="0,1,2",
                        help="fine-tuning seeds, comma-separated; the check compares the means")
    parser.add_argument("--no-check", dest="check", action="store_false",
                        help="report the margin checks but exit 0 when they are missed (for shortened runs)")
    args = parser.parse_args(argv)
    try:
        seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip())
    except ValueError:
        parser.error(f"--seeds {args.seeds!r}: give whole numbers separated by commas, e.g. --seeds 0,1,2")
    if not seeds:
        parser.error("--seeds: give at least one seed, e.g. --seeds 0")

    from bert_jax.finetuning import run_finetuning
    from bert_jax.checkpointing import CheckpointError
    from bert_jax.config import SHAPE_FIELDS
    from bert_jax.run_config import ConfigError, load_config
    from bert_jax.tasks.pretraining import pretraining_job
    from bert_jax.trainer import run_training
    from bert_jax.vocab import train_wordpiece
    from data_pipeline.build import BuildOptions, build

    work = pathlib.Path(args.workdir)
    times, t_all = {}, time.perf_counter()
    try:
        train_files, held_files = _corpus_files(args.corpus)
        pre_cfg = load_config(str(PRETRAIN_CONFIG), [
            f"data.train_dir={str(work / 'shards' / 'train')!r}", f"data.eval_dir={str(work / 'shards' / 'eval')!r}",
            *([f"optim.total_steps={args.steps}"] if args.steps else [])])
        finetune_steps = args.finetune_steps or QUICKSTART_FINETUNE_STEPS
        # Resolved values: "--steps 0" (the recipe's) and the recipe's own number are the same run.
        _claim_workdir(work, {"corpus": str(args.corpus.resolve()), "vocab_size": args.vocab_size,
                              "steps": int(pre_cfg.optim.total_steps), "finetune_steps": finetune_steps,
                              "seeds": sorted(seeds)})
    except (FileNotFoundError, ValueError) as e:  # ConfigError is a ValueError
        print(f"bert-jax quickstart: {e}", file=sys.stderr)
        return 2

    t = time.perf_counter()
    vocab_dir = work / "vocab"
    print(f"[1/5] WordPiece vocabulary ({args.vocab_size} tokens) -> {vocab_dir}", flush=True)
    vocab_file = str(vocab_dir / "vocab.txt")
    common = dict(vocab_file=vocab_file, max_seq_length=pre_cfg.data.max_seq_length,
                  max_predictions_per_seq=pre_cfg.data.max_predictions_per_seq, seed=0)
    try:  # bad corpus files are named here (encoding, binary, empty), as by the commands themselves
        if not (vocab_dir / "vocab.txt").exists():
            train_wordpiece(train_files, args.vocab_size, lowercase=True, output_dir=vocab_dir)
        times["vocabulary"] = time.perf_counter() - t

        t = time.perf_counter()
        print(f"[2/5] MLM+NSP shards (held out for evaluation: {HELD_OUT}) -> {work / 'shards'}", flush=True)
        build(BuildOptions(inputs=tuple(train_files), num_shards=4, dupe_factor=5, **common),
              str(work / "shards" / "train"))
        build(BuildOptions(inputs=tuple(held_files), num_shards=1, dupe_factor=1, **common),
              str(work / "shards" / "eval"))
    except (ValueError, OSError) as e:
        print(f"bert-jax quickstart: {e}", file=sys.stderr)
        return 2
    times["shards"] = time.perf_counter() - t

    task, task_config, task_overrides, metric = QUICKSTART_TASK
    t = time.perf_counter()
    steps = int(pre_cfg.optim.total_steps)
    print(f"[3/5] pretraining ({steps} steps) -> {work / 'pretrain'}", flush=True)
    try:
        pre = run_training(pre_cfg, str(work / "pretrain"), pretraining_job())
    except (ConfigError, CheckpointError) as e:  # a rerun resumes: its checkpoint may not read
        print(f"bert-jax quickstart: {e}", file=sys.stderr)
        return 2
    if pre.get("exit_code"):
        return pre["exit_code"]
    times["pretraining"] = time.perf_counter() - t
    evals = [json.loads(line) for line in open(work / "pretrain" / "metrics.jsonl", encoding="utf-8")
             if '"eval/mlm_accuracy"' in line]
    before, after = evals[0], evals[-1]
    guess, guess_id = context_free_guess(str(work / "shards" / "eval"), pre_cfg.global_batch_size,
                                         pre_cfg.eval_steps)

    results = {}
    for kind, init in (("pretrained", str(work / "pretrain")), ("scratch", "scratch")):
        t = time.perf_counter()
        out = work / f"finetune_{kind}"
        print(f"[{4 if kind == 'pretrained' else 5}/5] fine-tuning the {kind} encoder on {task} -> {out}",
              flush=True)
        shape = [] if kind == "pretrained" else [
            f"model.{k}={pre_cfg.model[k]}" for k in SHAPE_FIELDS if k != "vocab_size"
        ] + [f"data.vocab_file={vocab_file!r}"]
        try:
            cfg = load_config(str(_ROOT / task_config), [
                f"init_from={init!r}", *task_overrides, f"seeds={seeds!r}",
                f"data.max_seq_length={pre_cfg.data.max_seq_length}", "log_every_steps=50",
                "checkpoint.every_steps=0", *QUICKSTART_FINETUNE, *shape,
                *([f"optim.total_steps={args.finetune_steps}"] if args.finetune_steps else [])])
            results[kind] = run_finetuning(cfg, str(out))
            if results[kind].get("exit_code"):
                return results[kind]["exit_code"]
        except (ConfigError, CheckpointError) as e:
            print(f"bert-jax quickstart: {e}", file=sys.stderr)
            return 2
        times[f"finetune ({kind})"] = time.perf_counter() - t
    dev = json.loads((work / "finetune_pretrained" / f"seed_{seeds[0]}" / "eval" / "dev_results.json").read_text())
    majority = dev.get(f"baseline_majority_{metric}", dev.get("baseline_majority"))
    means = {kind: results[kind]["summary"][metric]["mean"] for kind in results}

    summary = {
        "held_out_mlm_accuracy_before": before["eval/mlm_accuracy"], "held_out_mlm_accuracy_after": after["eval/mlm_accuracy"],
        "context_free_guess": guess, "held_out_nsp_accuracy_before": before["eval/nsp_accuracy"],
        "held_out_nsp_accuracy_after": after["eval/nsp_accuracy"], "task": task, "metric": metric,
        "seeds": list(seeds), f"dev_{metric}_pretrained": means["pretrained"], f"dev_{metric}_scratch": means["scratch"],
        f"dev_{metric}_majority": majority,
        **{f"dev_{metric}_{kind}_per_seed": results[kind]["summary"][metric]["values"] for kind in results},
        "wall_s": {k: round(v, 1) for k, v in times.items()}, "total_wall_s": round(time.perf_counter() - t_all, 1),
    }
    checks = {
        f"held-out MLM accuracy >= {MLM_GUESS_RATIO:g} x the context-free guess":
            summary["held_out_mlm_accuracy_after"] >= MLM_GUESS_RATIO * guess,
        f"pretrained beats scratch on {task} mean {metric} by >= {FINETUNE_MARGIN}":
            summary[f"dev_{metric}_pretrained"] >= summary[f"dev_{metric}_scratch"] + FINETUNE_MARGIN,
    }
    summary["checks"] = checks
    (work / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    from bert_jax.launch import write_report_quietly
    for run in ["pretrain"] + [f"finetune_{kind}/seed_{seed}" for kind in results for seed in seeds]:
        write_report_quietly(str(work / run))
    print(_table(summary, work))
    for what, ok in checks.items():
        print(f"  {'ok ' if ok else 'MISSED'} {what}")
    return 1 if args.check and not all(checks.values()) else 0


# Fine-tuning overrides for the tiny encoder (the GLUE recipe's 2e-5 is for BERT-base).
QUICKSTART_FINETUNE_STEPS = 250
QUICKSTART_FINETUNE = ["optim.learning_rate=2e-4", f"optim.total_steps={QUICKSTART_FINETUNE_STEPS}"]


def _table(s: dict, work: pathlib.Path) -> str:
    m = s["metric"]
    rows = [
        ("held-out MLM accuracy", f"{s['held_out_mlm_accuracy_before']:.3f} -> {s['held_out_mlm_accuracy_after']:.3f}",
         f"context-free guess {s['context_free_guess']:.3f} "
         f"(x{s['held_out_mlm_accuracy_after'] / max(s['context_free_guess'], 1e-9):.1f})"),
        ("held-out NSP accuracy", f"{s['held_out_nsp_accuracy_before']:.3f} -> {s['held_out_nsp_accuracy_after']:.3f}",
         "chance 0.5"),
        (f"{s['task']} dev {m}", f"pretrained {s[f'dev_{m}_pretrained']:.3f}",
         f"scratch {s[f'dev_{m}_scratch']:.3f}, majority {s[f'dev_{m}_majority']:.3f} "
         f"(means over seeds {','.join(map(str, s['seeds']))})"),
    ]
    lines = ["", "summary", *[f"  {a:<24} {b:<26} {c}" for a, b, c in rows], "  wall time: " + ", ".join(
        f"{k} {v:.0f}s" for k, v in s["wall_s"].items()) + f"; total {s['total_wall_s']:.0f}s",
        f"  everything under {work}: pretrain/ (report.html, checkpoints, tensorboard, metrics.jsonl), "
        "finetune_*/ (report.html, eval/), summary.json"]
    return "\n".join(lines)
