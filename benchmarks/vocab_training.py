"""Cost of deterministic vocabulary training: ``train_wordpiece`` (two passes over the corpus)
beside the ``tokenizers`` WordPiece trainer alone (one pass, same settings, token ids in
hash order), on the bundled corpus repeated ``--repeats`` times.

The two are alternated round by round (best of ``--rounds``); each round also checks whether
the result is the same as the previous round's: ``train_wordpiece`` must always give the same
``vocab.txt``, the single pass usually does not.

  python benchmarks/vocab_training.py                       # 8,000 tokens, corpus x 10 (33 MB)
  python benchmarks/vocab_training.py --vocab-size 30522 --repeats 3

One JSON line per implementation, then the time ratio; each with the CPU model.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import machine  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from bert_jax.vocab import SPECIAL_TOKENS, train_wordpiece, trainer_pass  # noqa: E402


def single_pass(files, vocab_size: int) -> list[str]:
    """The upstream trainer alone with ``train_wordpiece``'s settings, one pass: tokens by id."""
    vocab = trainer_pass(files, vocab_size, SPECIAL_TOKENS)
    return sorted(vocab, key=vocab.get)


def two_passes(files, vocab_size: int) -> list[str]:
    with tempfile.TemporaryDirectory() as out:
        train_wordpiece(files, vocab_size, lowercase=True, output_dir=out, progress=False)
        with open(os.path.join(out, "vocab.txt"), encoding="utf-8") as f:
            return f.read().split("\n")[:-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--repeats", type=int, default=10, help="copies of the corpus to train on")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    files = sorted(glob.glob(os.path.join(ROOT, "data", "corpus", "*.txt"))) * args.repeats
    size_mb = sum(os.path.getsize(f) for f in files) / 1e6
    impls = {"train_wordpiece (two passes)": two_passes, "tokenizers trainer (one pass)": single_pass}
    best = {name: float("inf") for name in impls}
    results = {name: [] for name in impls}
    for _ in range(args.rounds):
        for name, fn in impls.items():
            start = time.perf_counter()
            results[name].append(fn(files, args.vocab_size))
            best[name] = min(best[name], time.perf_counter() - start)
    info = machine()
    for name in impls:
        distinct = len({tuple(r) for r in results[name]})
        print(json.dumps({"benchmark": "vocab_training", "impl": name, "vocab_size": args.vocab_size,
                          "corpus_mb": round(size_mb, 1), "rounds": args.rounds, "best_s": round(best[name], 3),
                          "distinct_vocabularies": distinct, **info}))
    names = list(impls)
    print(json.dumps({"benchmark": "vocab_training", "impl": "ratio",
                      "time_two_passes_over_one": round(best[names[0]] / best[names[1]], 3), **info}))


if __name__ == "__main__":
    main()
