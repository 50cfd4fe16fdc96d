"""What the integrity checks cost, next to the work they guard. One JSON line per result.

Usage::

    python benchmarks/reliability_overhead.py               # both cases
    python benchmarks/reliability_overhead.py --only data   # or: --only checkpoint
    python benchmarks/reliability_overhead.py --repeats 3

* ``checkpoint``: a BERT-base-sized training state (110M float32 parameters in
  BERT-base's shapes, plus Adam's two moments: 1.32 GB) saved with
  ``bert_jax.checkpointing``. Measured side by side in one run: the save (to
  commit, checksums excluded), ``record_checksums`` (sha256 of every file of
  the step), the restore (checksums excluded) and ``verify_step``; the ratios
  are checksum / save and verify / restore. With async saves the record is
  written in a background thread, so the training loop does not wait for it;
  the ratio is the extra I/O and CPU, not a stall.
* ``data``: input fingerprinting (path, size, mtime and sha256 of every input,
  plus the binary check) on the 10x corpus (the bundled corpus concatenated 10
  times, written under /tmp), as a ratio to the time of reading the inputs
  once and to a full shard build with the original recipe's options
  (seq 128, 20 predictions, dupe factor 5; 40 shards; 1 worker). Also the
  verification a re-run does on the shards already built (sha256 of each).

Best (minimum) of ``--repeats`` runs for each timing; the page cache is warm
after the first run, as on a re-run of a job.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import machine as machine_info  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def emit(record: dict) -> None:
    print(json.dumps({"cpu": machine_info.cpu_model(), "cpu_count": os.cpu_count(), **record}), flush=True)


def _best(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def bench_checkpoint(repeats: int) -> None:
    import jax
    import numpy as np
    import orbax.checkpoint as ocp

    from bert_jax import checkpointing
    from bert_jax.config import BertConfig
    from bert_jax.modeling.modules import build_module, param_shapes

    config = BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                        intermediate_size=3072)
    shapes = param_shapes(build_module(config, "BertModel", param_dtype=np.float32), config, "BertModel")
    rng = np.random.default_rng(0)
    leaves, treedef = jax.tree_util.tree_flatten(shapes)

    def random_tree():
        return jax.tree_util.tree_unflatten(
            treedef, [rng.standard_normal(tuple(x.shape), dtype=np.float32) for x in leaves])

    params = random_tree()
    state = {"params": params, "opt": {"mu": random_tree(), "nu": random_tree()}, "step": np.int32(1000)}
    num_params = sum(int(np.prod(x.shape)) for x in leaves)
    num_bytes = sum(x.nbytes for x in jax.tree_util.tree_leaves(state))
    cpu = jax.sharding.SingleDeviceSharding(jax.devices("cpu")[0])
    state = jax.device_put(state, cpu)
    abstract = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=cpu), state)
    meta = {"param_shapes": checkpointing.param_shapes(params)}

    root = tempfile.mkdtemp(prefix="bert-jax-ckpt-bench-", dir="/tmp")
    try:
        saves, records, restores, verifies = [], [], [], []
        for r in range(repeats):
            directory = os.path.join(root, f"run{r}")
            # A plain Orbax manager with the same options: the save and restore alone.
            manager = ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(
                enable_async_checkpointing=True, create=True), item_names=("state", "loader", "meta"))
            t = time.perf_counter()
            checkpointing.save(manager, 1, state, {"position": 1}, meta, force=True)
            manager.wait_until_finished()
            saves.append(time.perf_counter() - t)
            t = time.perf_counter()
            checkpointing.record_checksums(directory, 1)
            records.append(time.perf_counter() - t)
            t = time.perf_counter()
            manager.restore(1, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                                       loader=ocp.args.JsonRestore(), meta=ocp.args.JsonRestore()))
            restores.append(time.perf_counter() - t)
            t = time.perf_counter()
            check = checkpointing.verify_step(directory, 1)
            verifies.append(time.perf_counter() - t)
            assert check.status == "verified", check
            manager.close()
            shutil.rmtree(directory)
        emit({"case": "checkpoint", "num_params": num_params, "state_bytes": num_bytes,
              "save_s": round(min(saves), 3), "record_checksums_s": round(min(records), 3),
              "checksum_to_save_ratio": round(min(records) / min(saves), 3),
              "restore_s": round(min(restores), 3), "verify_s": round(min(verifies), 3),
              "verify_to_restore_ratio": round(min(verifies) / min(restores), 3),
              "verify_mb_per_s": round(num_bytes / 1e6 / min(verifies), 1), "repeats": repeats,
              "runs": {"save_s": [round(x, 3) for x in saves], "record_checksums_s": [round(x, 3) for x in records],
                       "restore_s": [round(x, 3) for x in restores], "verify_s": [round(x, 3) for x in verifies]}})
    finally:
        shutil.rmtree(root, ignore_errors=True)


def bench_data(repeats: int) -> None:
    import tokenizers

    from data_pipeline import build, shards, sources

    corpus = sorted((ROOT / "data" / "corpus").glob("*.txt"))
    root = tempfile.mkdtemp(prefix="bert-jax-data-bench-", dir="/tmp")
    try:
        big = os.path.join(root, "corpus-10x.txt")
        with open(big, "wb") as out:
            for _ in range(10):
                for path in corpus:
                    out.write(path.read_bytes().rstrip(b"\n") + b"\n\n")
        tok = tokenizers.BertWordPieceTokenizer(lowercase=True)
        tok.train([str(p) for p in corpus], vocab_size=8000, show_progress=False,
                  special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
        tok.save_model(root)
        files = [big]

        def read_all():
            n = 0
            with open(big, "rb") as f:
                for block in iter(lambda: f.read(1 << 22), b""):
                    n += len(block)
            return n

        read_s, size = _best(read_all, repeats)
        fingerprint_s, _ = _best(lambda: sources.fingerprint_inputs(files), repeats)
        opts = build.BuildOptions(inputs=(big,), vocab_file=os.path.join(root, "vocab.txt"), max_seq_length=128,
                                  max_predictions_per_seq=20, dupe_factor=5, num_shards=40)
        out_dir = os.path.join(root, "shards")
        t = time.perf_counter()
        manifest = build.build(opts, out_dir)
        build_s = time.perf_counter() - t
        verify_s, _ = _best(lambda: [shards.check_built_shard(out_dir, i, 40) for i in range(40)], repeats)
        shard_bytes = sum(s["num_bytes"] for s in manifest["shards"])
        emit({"case": "data", "corpus_bytes": size, "read_s": round(read_s, 3), "fingerprint_s": round(fingerprint_s, 3),
              "fingerprint_to_read_ratio": round(fingerprint_s / read_s, 2),
              "build_s": round(build_s, 2), "fingerprint_to_build_ratio": round(fingerprint_s / build_s, 4),
              "num_examples": manifest["num_examples"], "shard_bytes": shard_bytes,
              "verify_built_shards_s": round(verify_s, 3),
              "verify_to_build_ratio": round(verify_s / build_s, 4), "repeats": repeats})
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("checkpoint", "data"))
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if args.only in (None, "data"):
        bench_data(args.repeats)
    if args.only in (None, "checkpoint"):
        bench_checkpoint(args.repeats)


if __name__ == "__main__":
    main()
