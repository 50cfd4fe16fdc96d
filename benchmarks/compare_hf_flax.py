"""Side by side in one run: bert-jax vs Hugging Face Flax BERT train steps.

Runs, one after another on the same machine (never concurrently), the fp32
matmul peak, then for each config bert-jax (``train_step.py``, this
environment) and the reference (``hf_flax_train_step.py`` in its own
environment, created by ``setup_hf_flax_env.sh``), alternating for
``--rounds`` rounds, and prints every result plus one ``speedup`` line per
config and dtype: the best bert-jax seq/s over the best reference seq/s (best
of the rounds, so a burst of load from other processes on a shared machine
does not decide the ratio).

  bash benchmarks/setup_hf_flax_env.sh
  python benchmarks/compare_hf_flax.py [--hf-python /tmp/bert_jax_hf_flax_venv/bin/python] [--dtype bfloat16]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from machine import machine  # noqa: E402


def _run(cmd: list[str]) -> list[dict]:
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    for row in rows:
        print(json.dumps(row), flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hf-python", default="/tmp/bert_jax_hf_flax_venv/bin/python")
    parser.add_argument("--configs", nargs="+", default=["small", "base"])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    if not os.path.exists(args.hf_python):
        print(f"reference environment not found at {args.hf_python}; run benchmarks/setup_hf_flax_env.sh first",
              file=sys.stderr)
        return 2
    for name in args.configs:
        best_ours: dict[str, float] = {}
        best_ref = 0.0
        for _ in range(args.rounds):
            ours = _run([sys.executable, os.path.join(HERE, "train_step.py"), "--configs", name,
                         "--dtypes", *args.dtypes])
            peak = next(r["gflops"] for r in ours if r["benchmark"] == "fp32_matmul_peak")
            for row in ours:
                if row.get("impl") == "bert_jax":
                    best_ours[row["dtype"]] = max(best_ours.get(row["dtype"], 0.0), row["seq_per_s"])
            ref = _run([args.hf_python, os.path.join(HERE, "hf_flax_train_step.py"), "--configs", name,
                        "--peak-gflops", str(peak)])[0]
            best_ref = max(best_ref, ref["seq_per_s"])
        for dtype, seq_per_s in best_ours.items():
            print(json.dumps({"benchmark": "speedup_vs_hf_flax", "config": name, "dtype": dtype,
                              "rounds": args.rounds, "bert_jax_seq_per_s": seq_per_s,
                              "hf_flax_seq_per_s": best_ref, "speedup": round(seq_per_s / best_ref, 3), **machine()}),
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
