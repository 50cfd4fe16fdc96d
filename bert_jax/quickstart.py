"""``bert-jax quickstart``: the whole pipeline, tiny, on the bundled corpus, offline.

Trains a WordPiece vocabulary on ``data/corpus``, builds MLM+NSP shards (one
documentation part held out for evaluation), pretrains the tiny config
(``configs/pretrain/tiny.py``) with the same code path as ``bert-jax pretrain``,
then fine-tunes it on docs_section (``configs/finetune/docs_section.py``: which
documentation part a sentence comes from) as ``bert-jax finetune`` does.
Everything lands under ``--workdir``; rerunning the command resumes or skips
what is already there.
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import pathlib
import sys
import time

_ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = _ROOT / "data" / "corpus"
TINY_CONFIG = _ROOT / "configs" / "pretrain" / "tiny.py"
FINETUNE_CONFIG = _ROOT / "configs" / "finetune" / "docs_section.py"
HELD_OUT = "faq.txt"  # a whole documentation part, so evaluation text is unseen


def _corpus_files(corpus: pathlib.Path) -> tuple[list[str], list[str]]:
    files = sorted(glob.glob(str(corpus / "*.txt")))
    if not files:
        raise FileNotFoundError(
            f"no *.txt corpus files under {corpus}; run from a checkout of bert-jax "
            "(the corpus ships in data/corpus) or pass --corpus DIR")
    train = [f for f in files if os.path.basename(f) != HELD_OUT]
    held = [f for f in files if os.path.basename(f) == HELD_OUT] or train[-1:]
    return train, held


def _read_metrics(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bert-jax quickstart", description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default="runs/quickstart", help="where everything is written")
    parser.add_argument("--corpus", type=pathlib.Path, default=DEFAULT_CORPUS,
                        help="directory of BERT-format .txt files (default: the bundled corpus)")
    parser.add_argument("--vocab-size", type=int, default=4000)
    parser.add_argument("--steps", type=int, default=300, help="pretraining steps")
    parser.add_argument("--finetune-steps", type=int, default=300, help="docs_section fine-tuning steps")
    args, overrides = parser.parse_known_args(argv)

    from bert_jax.launch import ConfigError, load_config, run_finetuning, run_pretraining
    from bert_jax.vocab import train_wordpiece
    from data_pipeline.build import BuildOptions, build

    work = pathlib.Path(args.workdir)
    t0 = time.perf_counter()
    try:
        train_files, held_files = _corpus_files(args.corpus)
    except FileNotFoundError as e:
        print(f"bert-jax quickstart: {e}", file=sys.stderr)
        return 2

    vocab_dir = work / "vocab"
    if not (vocab_dir / "vocab.txt").exists():
        print(f"[1/4] training a {args.vocab_size}-token WordPiece vocabulary -> {vocab_dir}")
        train_wordpiece(train_files, args.vocab_size, lowercase=True, output_dir=vocab_dir)
    vocab_file = str(vocab_dir / "vocab.txt")

    print(f"[2/4] building pretraining shards -> {work / 'shards'}")
    common = dict(vocab_file=vocab_file, max_seq_length=64, max_predictions_per_seq=10, dupe_factor=2, seed=0)
    build(BuildOptions(inputs=tuple(train_files), num_shards=4, **common), str(work / "shards" / "train"))
    build(BuildOptions(inputs=tuple(held_files), num_shards=1, **common), str(work / "shards" / "eval"))

    print(f"[3/4] pretraining the tiny config for {args.steps} steps -> {work / 'pretrain'}")
    try:
        config = load_config(str(TINY_CONFIG), [
            f"data.train_dir={work / 'shards' / 'train'}",
            f"data.eval_dir={work / 'shards' / 'eval'}",
            f"optim.total_steps={args.steps}",
            *[o.removeprefix("--config.") for o in overrides],
        ])
        result = run_pretraining(config, str(work / "pretrain"))
        print(f"[4/4] fine-tuning on docs_section for {args.finetune_steps} steps -> {work / 'finetune'}")
        ft_config = load_config(str(FINETUNE_CONFIG), [
            f"init_from={work / 'pretrain'}", f"optim.total_steps={args.finetune_steps}"])
        ft_result = run_finetuning(ft_config, str(work / "finetune"))
    except (ConfigError, ValueError) as e:
        print(f"bert-jax quickstart: {e}", file=sys.stderr)
        return 2

    rows = _read_metrics(str(work / "pretrain" / "metrics.jsonl"))
    train_rows = [r for r in rows if "train/mlm_accuracy" in r]
    eval_rows = [r for r in rows if "eval/mlm_accuracy" in r]
    summary = {
        "steps": result.get("step"),
        "first_train_mlm_accuracy": train_rows[0]["train/mlm_accuracy"] if train_rows else None,
        "last_train_mlm_accuracy": train_rows[-1]["train/mlm_accuracy"] if train_rows else None,
        "last_eval_mlm_accuracy": eval_rows[-1]["eval/mlm_accuracy"] if eval_rows else None,
        "docs_section_dev_accuracy": ft_result.get("eval", {}).get("accuracy"),
        "docs_section_majority_baseline": json.loads(
            (work / "finetune" / "eval" / "dev_results.json").read_text())["baseline_majority"],
        "wall_s": round(time.perf_counter() - t0, 1),
        "workdir": str(work),
    }
    print(json.dumps(summary))
    return 0
