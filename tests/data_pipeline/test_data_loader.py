"""The per-host loader: disjoint host slices, exact resume, dynamic masks, partial batches, shard checks."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from data_pipeline import build, shards
from data_pipeline.loader import PretrainingLoader
from dp_helpers import make_options, masked_fraction_estimate


@pytest.fixture(scope="module", params=["static", "dynamic"])
def built(request, tmp_path_factory, small_corpus, vocab_file):
    out = str(tmp_path_factory.mktemp(request.param))
    build.build(make_options([small_corpus], vocab_file, num_shards=3, dynamic_masking=request.param == "dynamic"), out)
    return out


def epoch_batches(loader, steps):
    return [loader.batch_at(s) for s in steps]


def test_fields_shapes_and_dtypes(built):
    with PretrainingLoader(built, 16, seed=1) as loader:
        batch = next(iter(loader))
        assert loader.manifest["max_seq_length"] == 64
        for name in ("input_ids", "attention_mask", "token_type_ids"):
            assert batch[name].shape == (16, 64) and batch[name].dtype == np.int32
        for name in ("masked_lm_positions", "masked_lm_ids"):
            assert batch[name].shape == (16, 10) and batch[name].dtype == np.int32
        assert batch["masked_lm_weights"].dtype == np.float32 and batch["masked_lm_weights"].shape == (16, 10)
        assert batch["next_sentence_label"].shape == (16,) and batch["next_sentence_label"].dtype == np.int32
        assert (batch["masked_lm_weights"].sum(1) >= 1).all()
        json.dumps(loader.state())


def test_four_processes_partition_the_single_process_epoch(built):
    single = PretrainingLoader(built, 32, seed=5, return_example_index=True, prefetch=0)
    hosts = [PretrainingLoader(built, 32, seed=5, process_index=p, process_count=4, return_example_index=True)
             for p in range(4)]
    steps = range(single.steps_per_epoch)
    seen = []
    for step, ref in zip(steps, epoch_batches(single, steps)):
        parts = [h.batch_at(step) for h in hosts]
        assert all(p["input_ids"].shape == (8, 64) for p in parts)
        for name in ref:
            assert np.array_equal(np.concatenate([p[name] for p in parts]), ref[name]), name
        seen.extend(np.concatenate([p["example_index"] for p in parts]).tolist())
    assert len(seen) == len(set(seen)) == single.steps_per_epoch * 32
    assert single.num_examples - len(seen) < 32  # only the dropped remainder is missing
    # Iteration (with prefetch) yields exactly batch_at for each host.
    it = iter(hosts[2])
    for step in range(3):
        assert np.array_equal(next(it)["example_index"], hosts[2].batch_at(step)["example_index"])
    for h in hosts:
        h.close()


def test_resume_at_step_k_is_exact(built):
    loader = PretrainingLoader(built, 16, seed=3, num_epochs=2)
    spe = loader.steps_per_epoch
    uninterrupted = list(loader)
    assert len(uninterrupted) == 2 * spe
    k = spe - 2  # resume just before an epoch boundary
    first = PretrainingLoader(built, 16, seed=3, num_epochs=2)
    it = iter(first)
    for _ in range(k):
        next(it)
    state = json.loads(json.dumps(first.state()))
    first.close()
    assert state["step"] == k
    for resumed in (PretrainingLoader(built, 16, seed=3, num_epochs=2), PretrainingLoader(built, 16, seed=3, num_epochs=2, start_step=k)):
        if resumed._step == 0:
            resumed.restore(state)
        rest = list(resumed)
        assert len(rest) == 2 * spe - k
        for a, b in zip(rest, uninterrupted[k:]):
            for name in a:
                assert np.array_equal(a[name], b[name]), name


def test_restore_refuses_other_order(built):
    loader = PretrainingLoader(built, 16, seed=3)
    with pytest.raises(ValueError, match="seed"):
        loader.restore({"step": 4, "seed": 9})


def test_dynamic_masks_fresh_each_epoch_and_reproducible(tmp_path, small_corpus, vocab_file):
    out = str(tmp_path)
    build.build(make_options([small_corpus], vocab_file, num_shards=2, dynamic_masking=True), out)
    a = PretrainingLoader(out, 8, seed=11, return_example_index=True, prefetch=0)
    b = PretrainingLoader(out, 8, seed=11, return_example_index=True, prefetch=0)
    spe = a.steps_per_epoch
    # Same example in two epochs: find example 0 in epoch 0 and epoch 1.
    found = {}
    for epoch in (0, 1):
        for s in range(epoch * spe, (epoch + 1) * spe):
            batch = a.batch_at(s)
            hit = np.flatnonzero(batch["example_index"] == 0)
            if hit.size:
                found[epoch] = {k: v[hit[0]] for k, v in batch.items()}
    assert found[0]["masked_lm_positions"].tolist() != found[1]["masked_lm_positions"].tolist() or (
        found[0]["input_ids"].tolist() != found[1]["input_ids"].tolist()
    )
    for s in (0, spe + 1):
        x, y = a.batch_at(s), b.batch_at(s)
        assert all(np.array_equal(x[k], y[k]) for k in x)
    # Over a full epoch, masks cover 15% of the maskable tokens, within 4 sd of the stochastic
    # rounding (the full statistics of loader masks are in test_data_statistics).
    num_candidates, num_masked = [], []
    for s in range(spe):
        batch = a.batch_at(s)
        original = batch["input_ids"].copy()
        r, c = np.nonzero(batch["masked_lm_weights"] > 0)
        original[r, batch["masked_lm_positions"][r, c]] = batch["masked_lm_ids"][r, c]
        num_candidates.append(a.vocab.ordinary[original].sum(1))
        num_masked.append((batch["masked_lm_weights"] > 0).sum(1))
    observed, expected, sd, free_share = masked_fraction_estimate(
        np.concatenate(num_candidates), np.concatenate(num_masked), 0.15, 10)
    assert free_share > 0.8
    assert abs(observed - expected) <= 4 * sd, f"masked fraction {observed:.4f}, expected {expected} +- 4 x {sd:.2g}"
    # Static masking of a dynamic build: one mask for every epoch.
    c = PretrainingLoader(out, 8, seed=11, dynamic_masking=False, return_example_index=True, prefetch=0)
    rows = {}
    for s in range(2 * spe):
        batch = c.batch_at(s)
        for i, ex in enumerate(batch["example_index"].tolist()):
            rows.setdefault(ex, []).append(batch["input_ids"][i].tobytes())
    assert all(len(set(v)) == 1 for v in rows.values())


def test_partial_final_batch_is_padded_and_weighted(built):
    loader = PretrainingLoader(built, 48, seed=2, drop_remainder=False, return_example_index=True, prefetch=0)
    n = loader.num_examples
    assert n % 48, "pick a batch size that leaves a remainder"
    assert loader.steps_per_epoch == -(-n // 48)
    last = loader.batch_at(loader.steps_per_epoch - 1)
    real = last["example_weight"] > 0
    assert real.sum() == n % 48
    assert np.all(last["example_index"][~real] == -1)
    assert np.all(last["attention_mask"][~real] == 0) and np.all(last["masked_lm_weights"][~real] == 0)
    seen = np.concatenate([loader.batch_at(s)["example_index"] for s in range(loader.steps_per_epoch)])
    assert sorted(seen[seen >= 0].tolist()) == list(range(n))


def test_mismatching_shard_is_refused_by_name(tmp_path, small_corpus, vocab_file):
    out = str(tmp_path)
    build.build(make_options([small_corpus], vocab_file, num_shards=2), out)
    path = os.path.join(out, shards.shard_name(1, 2) + ".bin")
    data = bytearray(open(path, "rb").read())
    data[100] ^= 0xFF
    open(path, "wb").write(bytes(data))
    with pytest.raises(shards.ShardError, match=r"shard-00001-of-00002.bin fails its sha256"):
        PretrainingLoader(out, 8)
    PretrainingLoader(out, 8, verify_checksums=False)  # size still matches: opt-out accepted
    open(path, "ab").write(b"\0")
    with pytest.raises(shards.ShardError, match=r"shard-00001-of-00002.bin has .* bytes but the manifest records"):
        PretrainingLoader(out, 8, verify_checksums=False)
    with pytest.raises(ValueError, match="multiple of process_count"):
        PretrainingLoader(out, 10, process_count=4, verify_checksums=False)
