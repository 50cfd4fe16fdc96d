"""Length-bucketed fine-tuning batches (data.bucket_lengths): the loader is deterministic,
resumes exactly, covers every example once per epoch, splits one global batch over processes,
and cuts each batch to the smallest bucket holding its longest row; a cut batch gives the same
loss and gradients as the full one; heads that read per-position outputs are refused; a short
bucketed fine-tuning run records the padding fraction in config.json and the log."""

import glob
import json
import logging
import os

import numpy as np
import pytest

from bert_jax.tasks import bucketing
from bert_jax.tasks.arrays import ArrayLoader
from bert_jax.tasks.bucketing import BucketedArrayLoader

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = sorted(glob.glob(os.path.join(ROOT, "data", "corpus", "*.txt")))
BUCKETS = (8, 16, 32, 48)
L = 64


def rows(n=203, seed=0, choices=0, longest=L):
    """``n`` rows with lengths 3..L (most short, as in GLUE); ids are unique per (row, position)
    so any mix-up shows; position >= length is padding (id 0, mask 0)."""
    rng = np.random.default_rng(seed)
    shape = (n, choices) if choices else (n,)
    lengths = np.minimum(3 + rng.geometric(1 / 14, size=shape), longest)
    pos = np.arange(L)
    mask = (pos < lengths[..., None]).astype(np.int32)
    ids = (1 + np.arange(n).reshape((n,) + (1,) * (mask.ndim - 1)) * L + pos) * mask
    return {"input_ids": ids.astype(np.int32), "attention_mask": mask,
            "token_type_ids": ((pos >= lengths[..., None] // 2) * mask).astype(np.int32),
            "labels": (np.arange(n) % 3).astype(np.int32)}


def loader(arrays=None, batch=16, **kw):
    kw.setdefault("bucket_lengths", BUCKETS)
    kw.setdefault("group_batches", 4)
    return BucketedArrayLoader(rows() if arrays is None else arrays, batch, seed=kw.pop("seed", 3), **kw)


def take(ld, count):
    it = iter(ld)
    return [next(it) for _ in range(count)]


# ----------------------------------------------------------------------------- the loader


def test_every_example_once_per_epoch_and_only_the_last_batch_padded():
    ld = loader()
    assert ld.steps_per_epoch == 13  # ceil(203 / 16): no example dropped
    for epoch in range(2):
        batches = take_epoch(ld, epoch)
        ids = np.concatenate([b["row_id"] for b in batches])
        real = ids[ids >= 0]
        assert sorted(real.tolist()) == list(range(203))
        assert [int((b["row_weight"] == 0).sum()) for b in batches].count(0) == 12  # one partial batch
        assert (ids < 0).sum() == 13 * 16 - 203
        for b in batches:
            pad = b["row_id"] < 0
            assert (b["row_weight"][pad] == 0).all() and (b["labels"][pad] == -100).all()


def take_epoch(ld, epoch):
    return [ld.batch_at(epoch * ld.steps_per_epoch + s) for s in range(ld.steps_per_epoch)]


def test_each_batch_is_cut_to_the_smallest_bucket_holding_its_longest_row():
    arrays = rows()
    ld = loader(arrays)
    full_lengths = bucketing.row_lengths(arrays["attention_mask"])
    seen = set()
    for b in take_epoch(ld, 0) + take_epoch(ld, 1):
        width = b["input_ids"].shape[1]
        real = b["row_id"][b["row_id"] >= 0]
        longest = full_lengths[real].max()
        assert width in BUCKETS + (L,) and width >= longest
        assert width == min(x for x in BUCKETS + (L,) if x >= longest)
        seen.add(width)
        for k in ("input_ids", "attention_mask", "token_type_ids"):
            assert b[k].shape == (16, width)
            # only padding was cut: the real rows are their stored rows' prefixes, the rest zeros
            np.testing.assert_array_equal(b[k][b["row_id"] >= 0], arrays[k][real, :width])
            assert not arrays[k][real, width:].any()
    assert len(seen) >= 3  # several buckets in use, so the test covers the choice between them


def test_grouping_by_length_saves_work_and_the_report_counts_the_yielded_batches():
    arrays = rows()
    ld = loader(arrays)
    report = ld.padding_report(0)
    batches = take_epoch(ld, 0)
    computed = sum(b["attention_mask"].size for b in batches)
    real = sum(int(b["attention_mask"][b["row_id"] >= 0].sum()) for b in batches)
    assert real == int(arrays["attention_mask"].sum())
    assert report["bucketed"] == pytest.approx(1 - real / computed, abs=1e-4)
    assert report["at_max_seq_length"] == pytest.approx(1 - real / (203 * L), abs=1e-4)
    assert sum(report["batches_per_length"].values()) == ld.steps_per_epoch
    # Sorting within chunks is what makes the cut pay: random batches (one batch per chunk) need
    # longer buckets. Lengths here are geometric (mean ~17): 39% padding against 48% ungrouped.
    ungrouped = loader(arrays, group_batches=1).padding_report(0)["bucketed"]
    assert report["bucketed"] < ungrouped - 0.05 < report["at_max_seq_length"]


def test_order_is_a_function_of_seed_epoch_and_step():
    a, b = take(loader(), 30), take(loader(), 30)
    for x, y in zip(a, b):
        assert x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x)
    other = take(loader(seed=4), 13)
    assert any(not np.array_equal(x["row_id"], y["row_id"]) for x, y in zip(a, other))
    # the epochs differ from each other
    assert [x["row_id"].tolist() for x in a[:13]] != [x["row_id"].tolist() for x in a[13:26]]


def test_resumed_loader_yields_what_the_uninterrupted_one_does():
    ref = take(loader(), 40)  # three epochs and a bit
    for stop in (5, 13, 20):
        first = loader()
        take(first, stop)
        state = json.loads(json.dumps(first.state()))  # as a checkpoint stores it
        resumed = loader()
        resumed.restore(state)
        for x, y in zip(take(resumed, 40 - stop), ref[stop:]):
            assert all(np.array_equal(x[k], y[k]) for k in y)


def test_a_position_saved_with_other_buckets_is_refused():
    with pytest.raises(ValueError, match=r"data.bucket_lengths=\(\) \(no bucketing\).*data.bucket_lengths=\(8, "):
        loader().restore(ArrayLoader(rows(), 16).state())
    with pytest.raises(ValueError, match=r"saved loader position was taken with data.bucket_lengths=\(8, 16, 32, 48, "
                                         r"64\), data.bucket_group_batches=4.*config now has data.bucket_lengths=\(\)"):
        ArrayLoader(rows(), 16).restore(loader().state())
    with pytest.raises(ValueError, match=r"data.bucket_group_batches=8"):
        loader(group_batches=8).restore(loader().state())


def test_two_processes_take_halves_of_the_same_global_batch():
    one = take(loader(), 27)
    halves = [take(loader(process_index=p, process_count=2), 27) for p in range(2)]
    for whole, h0, h1 in zip(one, *halves):
        assert h0["input_ids"].shape == h1["input_ids"].shape == (8, whole["input_ids"].shape[1])
        for k in whole:
            np.testing.assert_array_equal(np.concatenate([h0[k], h1[k]]), whole[k], err_msg=k)


def test_multiple_choice_rows_are_cut_on_the_last_axis():
    arrays = rows(n=50, choices=4)
    ld = loader(arrays, batch=8)
    lengths = bucketing.row_lengths(arrays["attention_mask"])
    assert lengths.shape == (50,)
    assert (lengths == arrays["attention_mask"].sum(-1).max(-1)).all()
    for b in take_epoch(ld, 0):
        width = b["input_ids"].shape[-1]
        assert b["input_ids"].shape == (8, 4, width) and b["labels"].shape == (8,)
        assert width >= lengths[b["row_id"][b["row_id"] >= 0]].max()


def test_bad_bucket_lengths_name_the_field():
    for bad, words in [((16, 8), "strictly increasing"), ((0, 8), "1..data.max_seq_length=64"),
                       ((8, 128), "1..data.max_seq_length=64"), ((8.5,), "integers")]:
        with pytest.raises(ValueError, match=rf"data.bucket_lengths=.*{words}"):
            loader(bucket_lengths=bad)
    with pytest.raises(ValueError, match=r"data.bucket_group_batches=0 must be >= 1"):
        loader(group_batches=0)
    assert bucketing.check_bucket_lengths((16, 64), 64) == (16, 64)
    assert bucketing.check_bucket_lengths((16,), 64) == (16, 64)


def test_heads_that_read_positions_are_refused_naming_field_and_task():
    bucketing.check_head("sst2", "sequence_classification", (32,))
    bucketing.check_head("swag", "multiple_choice", (32,))
    bucketing.check_head("conll2003", "token_classification", ())  # off: nothing to refuse
    with pytest.raises(ValueError, match=r"data.bucket_lengths=\(32,\) cannot be used with task='conll2003' "
                                         r"\(token_classification head\).*bucket_lengths=\(\) for this task"):
        bucketing.check_head("conll2003", "token_classification", (32,))
    with pytest.raises(ValueError, match=r"task='squad_v1' \(question_answering head\)"):
        bucketing.check_head("squad_v1", "question_answering", (32,))


# ----------------------------------------------------------------------------- the model side


@pytest.fixture(scope="module")
def tiny():
    jax = pytest.importorskip("jax")
    from bert_jax.config import BertConfig
    return jax, BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=37, max_position_embeddings=64, hidden_dropout_prob=0.0,
                           attention_probs_dropout_prob=0.0)


def _head_task(config, head, num_labels, num_choices=0):
    from bert_jax.tasks.heads import MODULE_CLASSES, HeadTask
    from bert_jax.modeling.modules import build_module
    module = build_module(config.replace(num_labels=num_labels), MODULE_CLASSES[head])
    return HeadTask(module, head, L, num_labels=num_labels, num_choices=num_choices)


def _small_batch(choices=0, n=8):
    arrays = rows(n=n, seed=1, choices=choices, longest=28)  # cut to the bucket 32 of 64
    arrays["input_ids"] = np.where(arrays["attention_mask"] > 0, arrays["input_ids"] % 97 + 2, 0)
    arrays["labels"] = arrays["labels"] % 2
    arrays["row_weight"] = np.ones((n,), np.float32)
    arrays["row_weight"][-1] = 0.0  # a padding row, as the epoch's last batch has
    return arrays


@pytest.mark.parametrize("head,num_labels,choices", [("sequence_classification", 2, 0),
                                                      ("sequence_classification", 1, 0),
                                                      ("multiple_choice", 1, 3)])
def test_loss_and_gradients_equal_at_full_and_bucket_length(tiny, head, num_labels, choices):
    jax, config = tiny
    task = _head_task(config, head, num_labels, choices)
    batch = _small_batch(choices)
    if num_labels == 1:
        batch["labels"] = batch["labels"].astype(np.float32) * 0.7
    width = min(b for b in BUCKETS + (L,) if b >= bucketing.row_lengths(batch["attention_mask"]).max())
    assert width < L
    cut = {k: (v[..., :width] if k in bucketing.SEQUENCE_KEYS else v) for k, v in batch.items()}
    params = jax.tree_util.tree_map(lambda x: getattr(x, "value", x), task.init_params(jax.random.PRNGKey(0)),
                                    is_leaf=lambda x: hasattr(x, "value"))

    @jax.jit
    def value_and_grad(b):
        fn = lambda p: task.loss(p, b, jax.random.PRNGKey(1), task.denominators(b), deterministic=True)
        return jax.value_and_grad(fn, has_aux=True)(params)

    (loss_full, _), grads_full = value_and_grad(batch)
    (loss_cut, _), grads_cut = value_and_grad(cut)
    assert float(loss_full) > 0
    np.testing.assert_allclose(float(loss_cut), float(loss_full), rtol=1e-6)
    full = [np.asarray(g) for g in jax.tree_util.tree_leaves(grads_full)]
    diff = [np.asarray(g) - f for g, f in zip(jax.tree_util.tree_leaves(grads_cut), full)]
    norm = lambda leaves: np.sqrt(sum(float((x.astype(np.float64) ** 2).sum()) for x in leaves))
    # relative to the whole gradient: some leaves (the attention key bias) are zero up to rounding
    assert norm(diff) / norm(full) < 1e-6
    assert max(float(np.abs(d).max()) for d in diff) / max(float(np.abs(f).max()) for f in full) < 1e-6


def test_jitted_train_step_takes_cut_batches(tiny):
    """The sharded, jitted train step (shardings from ``batch_spec``, which declares max_seq_length)
    accepts a shorter batch, and one step on it gives the loss and parameters of the full batch."""
    jax, config = tiny
    from bert_jax import optim, partitioning, train
    task = _head_task(config, "sequence_classification", 2)
    ocfg = dict(name="adamw", learning_rate=1e-3, total_steps=10, warmup_steps=0, weight_decay=0.01)
    tx, schedule = optim.make_optimizer(ocfg), optim.make_schedule(ocfg)
    mesh = partitioning.make_mesh((1, 1, 1), jax.devices()[:1])
    batch = _small_batch()
    width = min(b for b in BUCKETS if b >= bucketing.row_lengths(batch["attention_mask"]).max())
    cut = {k: (v[:, :width] if k in bucketing.SEQUENCE_KEYS else v) for k, v in batch.items()}
    results = []
    for b in (batch, cut):
        state, shardings, _ = train.create_train_state(task, tx, mesh, partitioning.DEFAULT_RULES,
                                                       jax.random.PRNGKey(0), jax.random.PRNGKey(1))
        steps = train.jit_steps(task, tx, schedule, mesh, shardings, 1)
        state, metrics = steps.train(state, partitioning.make_global_batch(b, mesh))
        results.append((float(metrics["loss"]), jax.tree_util.tree_leaves(jax.device_get(state.params))))
    assert results[1][0] == pytest.approx(results[0][0], rel=1e-6)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


def test_throughput_counts_the_positions_and_flops_of_each_step(monkeypatch):
    """Bucketed steps are shorter: tokens/s and MFU count what each step computed."""
    from bert_jax.metrics import writer
    clock = iter([0.0, 2.0, 3.0])
    monkeypatch.setattr(writer.time, "perf_counter", lambda: next(clock))
    t = writer.Throughput(4, 128, 1000.0, 1, 100.0, flops_at=lambda seq: 1000.0 * seq / 128)
    t.tick(32), t.tick(128)  # 2 steps in 2 s: 4 * (32 + 128) positions, 250 + 1000 FLOPs
    out = t.read()
    assert out["seq_per_s"] == pytest.approx(4.0) and out["tokens_per_s"] == pytest.approx(320.0)
    assert out["mfu"] == pytest.approx(1250.0 / 2 / 100)
    t.tick()  # no length given: the full length
    assert t.read()["tokens_per_s"] == pytest.approx(512.0)


# ----------------------------------------------------------------------------- end to end


@pytest.mark.slow  # ~30 s; the bucketed step's exactness is checked in the default run above
def test_bucketed_finetuning_trains_and_records_the_padding_fraction(tmp_path, caplog):
    """SST-2 layout (data/tasks/glue_section: 1,800 corpus sentences), a tiny model from scratch,
    seq 64 in buckets (16, 32, 48): the run completes with a finite loss, and the padding
    fractions are logged once and recorded in config.json."""
    pytest.importorskip("jax")
    tokenizers = pytest.importorskip("tokenizers")
    from bert_jax import launch
    tok = tokenizers.BertWordPieceTokenizer(lowercase=True)
    tok.train(CORPUS, vocab_size=1000, min_frequency=2, show_progress=False)
    tok.save_model(str(tmp_path))
    shape = ["model.hidden_size=32", "model.num_hidden_layers=2", "model.num_attention_heads=4",
             "model.intermediate_size=64", "model.max_position_embeddings=64"]
    args = ["init_from='scratch'", f"data.vocab_file={str(tmp_path / 'vocab.txt')!r}",
            f"data.data_dir={os.path.join(ROOT, 'data', 'tasks', 'glue_section')!r}", "data.max_seq_length=64",
            "data.bucket_lengths=(16, 32, 48)", "data.bucket_group_batches=8", "global_batch_size=16",
            "optim.total_steps=12", "optim.learning_rate=1e-3", "log_every_steps=4", "checkpoint.every_steps=0", *shape]
    workdir = tmp_path / "run"
    with caplog.at_level(logging.INFO, logger="bert_jax"):
        result = launch.run_finetuning(launch.load_config(os.path.join(ROOT, "configs", "glue", "sst2.py"), args),
                                       str(workdir))
    assert result["step"] == 12 and np.isfinite(result["loss"])
    padding = json.load(open(workdir / "config.json"))["resolved"]["data"]["train"]["padding"]
    assert padding["bucket_lengths"] == [16, 32, 48, 64] and padding["bucket_group_batches"] == 8
    # most sentences are far shorter than 64 pieces: bucketing must cut the padding
    assert 0 < padding["bucketed"] < padding["at_max_seq_length"] - 0.2
    assert sum(padding["batches_per_length"].values()) == 113  # ceil(1,800 / 16)
    lines = [r.getMessage() for r in caplog.records if "length-bucketed batches" in r.getMessage()]
    assert len(lines) == 1 and f"{100 * padding['bucketed']:.1f}%" in lines[0]
    rows_logged = [json.loads(x) for x in open(workdir / "metrics.jsonl") if '"train/loss"' in x]
    assert rows_logged and all(np.isfinite(r["train/loss"]) for r in rows_logged)
    # tokens/s counts the positions computed: fewer than 64 per row once batches are cut
    per_row = [r["train/tokens_per_s"] / r["train/seq_per_s"] for r in rows_logged]
    assert all(16 <= x < 64 for x in per_row), per_row
    assert json.load(open(workdir / "eval" / "dev_results.json"))["num_examples"] == 300


@pytest.mark.parametrize("config,task", [("ner/conll_docs.py", "conll2003"), ("squad/v1.py", "squad")])
def test_finetune_refuses_bucketing_for_position_heads_before_writing(tmp_path, config, task):
    pytest.importorskip("jax")
    from bert_jax import launch
    cfg = launch.load_config(os.path.join(ROOT, "configs", config),
                             ["init_from='scratch'", "data.bucket_lengths=(32,)"])
    with pytest.raises(launch.ConfigError, match=rf"data.bucket_lengths=\(32,\) cannot be used with task='{task}"):
        launch.run_finetuning(cfg, str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run")
