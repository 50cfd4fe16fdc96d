"""Fine-tuning as a mode of the one training loop: docs_section (which documentation
part a corpus sentence comes from) from a pretraining workdir and from a Hugging Face
directory, exact resume, refusals of bad input, and the task's data and loss."""

import json
import re
import os

import numpy as np
import pytest
from flax.traverse_util import flatten_dict

jax = pytest.importorskip("jax")

from bert_jax import checkpointing, launch  # noqa: E402
from bert_jax.tasks import text_classification_data as tcd  # noqa: E402
from bert_jax.tasks.arrays import IGNORE_LABEL, ArrayLoader  # noqa: E402
from train_helpers import CORPUS_DIR, DOCS, TINY, assert_resumed_at, losses, preempt_after, train_rows  # noqa: E402

LABELS = ("tutorial", "library", "reference", "whatsnew")
SMALL = ["model.hidden_size=32", "model.intermediate_size=64"]  # the tiny recipe shrunk for speed


@pytest.fixture(scope="module")
def pretrained(corpus_shards, tmp_path_factory):
    """A short pretraining run of the small model on the corpus shards (1,000-token
    vocabulary); its workdir is what fine-tuning starts from."""
    workdir = str(tmp_path_factory.mktemp("pretrain") / "run")
    config = launch.load_config(TINY, [f"data.train_dir={corpus_shards['shards']!r}", *SMALL, "optim.total_steps=40",
                                       "optim.warmup_steps=4", "checkpoint.every_steps=40", "log_every_steps=40",
                                       "eval_every_steps=0"])
    launch.run_pretraining(config, workdir)
    return {"workdir": workdir, "vocab": corpus_shards["vocab"], "shards": corpus_shards["shards"]}


class _fresh_head_warnings:
    """Collects the "freshly initialised" warnings logged while the block runs."""

    def __enter__(self):
        import logging

        class Catch(logging.Handler):
            def emit(inner, record):
                message = record.getMessage()
                if "freshly initialised" in message:
                    self.messages.append(message)

        self.messages, self.handler = [], Catch(level=logging.WARNING)
        logging.getLogger().addHandler(self.handler)
        return self.messages

    def __exit__(self, *exc):
        import logging
        logging.getLogger().removeHandler(self.handler)


def ft_config(init_from, *extra):
    return launch.load_config(DOCS, [f"init_from={init_from!r}", *SMALL, "eval_every_steps=0", *extra])


# ----------------------------------------------------------------------------- end to end


def test_finetune_from_pretraining_workdir_beats_majority_baseline(pretrained, tmp_path):
    """Balanced 4-way task (baseline 0.25). Measured dev accuracy 0.47-0.49 over seeds 0-2
    (488 dev sentences: binomial std ~0.023), so 0.38 leaves ~4 std of headroom."""
    with _fresh_head_warnings() as fresh:
        result = launch.run_finetuning(ft_config(pretrained["workdir"], "optim.total_steps=250",
                                                 "optim.learning_rate=3e-3", "log_every_steps=50",
                                                 "checkpoint.every_steps=0"), str(tmp_path))
    results = json.load(open(tmp_path / "eval" / "dev_results.json"))
    assert result["step"] == 250 and results["step"] == 250 and results["split"] == "dev"
    assert len(fresh) == 1 and fresh[0].endswith("classifier.bias, classifier.weight"), fresh
    assert results["baseline_majority"] == pytest.approx(0.25)
    assert results["num_examples"] == 488
    assert results["accuracy"] == pytest.approx(result["eval"]["accuracy"])
    assert results["accuracy"] > 0.38, results
    resolved = json.load(open(tmp_path / "config.json"))["resolved"]
    assert resolved["data"]["vocab_file"] == os.path.join(pretrained["shards"], "vocab.txt")  # via the workdir
    assert checkpointing.make_manager(str(tmp_path / "checkpoints")).latest_step() == 250


@pytest.mark.parametrize("layout", ["hf", "tf"])
def test_finetune_from_hugging_face_directory_loads_the_whole_encoder(pretrained, tmp_path, layout):
    """A random tiny BertForPreTraining saved in Hugging Face format, or as an original TensorFlow
    BERT folder (refused as holding nothing, though documented): every encoder and pooler tensor
    is loaded (with learning rate 0 they are unchanged after a step); only the classifier is new,
    and the warning says so."""
    import shutil
    from bert_jax.config import BertConfig
    from bert_jax.convert import hf, tf
    from bert_jax.modeling.modules import build_module, init_params
    hf_dir = str(tmp_path / layout)
    config = BertConfig(vocab_size=1000, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=128)
    module = build_module(config, "BertForPreTraining")
    source = init_params(module, config, "BertForPreTraining", jax.random.key(3))
    save = hf.save_hf_checkpoint if layout == "hf" else tf.save_tf_checkpoint
    save(source, config, hf_dir, "BertForPreTraining")
    shutil.copy(pretrained["vocab"], os.path.join(hf_dir, "vocab.txt"))
    with _fresh_head_warnings() as fresh:
        launch.run_finetuning(ft_config(hf_dir, "optim.total_steps=1", "optim.learning_rate=0.0",
                                        "checkpoint.every_steps=1", "data.max_per_label=100"),
                              str(tmp_path / "run"))
    assert len(fresh) == 1 and fresh[0].endswith("classifier.bias, classifier.weight"), fresh
    got, _ = checkpointing.restore_params_to_cpu(str(tmp_path / "run" / "checkpoints"))
    want, have = flatten_dict(source["bert"]), flatten_dict(got["bert"])
    assert set(have) == set(want) and len(want) == 39  # embeddings, 2 layers, pooler
    for key, value in want.items():
        np.testing.assert_array_equal(have[key], np.asarray(value), err_msg="/".join(key))
    assert set(got) == {"bert", "classifier"} and got["classifier"]["kernel"].shape == (32, 4)


def test_killed_finetune_resumes_from_its_own_checkpoint_exactly(pretrained, tmp_path, monkeypatch):
    """SIGTERM saves at the current step; re-running the same command (init_from still set)
    continues from the workdir's checkpoint, not from init_from, and reproduces the
    uninterrupted run's per-step losses bit for bit."""
    steps = 8
    args = [f"optim.total_steps={steps}", "checkpoint.every_steps=3", "log_every_steps=1", "global_batch_size=8",
            "optim.learning_rate=1e-3", "data.max_per_label=100"]
    ref_dir, run_dir = str(tmp_path / "ref"), str(tmp_path / "run")
    launch.run_finetuning(ft_config(pretrained["workdir"], *args), ref_dir)
    first = preempt_after(lambda: launch.run_finetuning(ft_config(pretrained["workdir"], *args), run_dir), run_dir, 4)
    assert first["preempted"] and 4 <= first["step"] < steps and first["start_step"] == 0
    assert not os.path.exists(os.path.join(run_dir, "eval"))  # no final evaluation of a preempted run
    assert checkpointing.make_manager(os.path.join(run_dir, "checkpoints")).latest_step() == first["step"]
    before = len(train_rows(run_dir))
    second = launch.run_finetuning(ft_config(pretrained["workdir"], *args), run_dir)
    assert second["step"] == steps and not second["preempted"]
    # from the workdir's checkpoint (init_from would start at 0), each later step once
    assert_resumed_at(second, run_dir, before, first["step"], steps)
    assert losses(run_dir) == losses(ref_dir)
    ref_eval = json.load(open(os.path.join(ref_dir, "eval", "dev_results.json")))
    assert json.load(open(os.path.join(run_dir, "eval", "dev_results.json"))) == ref_eval
    # The finished run run again evaluates again; metrics.jsonl still reads as one run (each rerun
    # appended another evaluation row of the last step).
    rows = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    again = launch.run_finetuning(ft_config(pretrained["workdir"], *args), run_dir)
    assert again["start_step"] == again["step"] == steps
    assert [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))] == rows
    # A redone evaluation that fails (or is interrupted) leaves the earlier one's rows in place:
    # they are replaced only by the new ones.
    from bert_jax import finetuning

    def fails(*_, **__):
        raise RuntimeError("the evaluation stops here")
    monkeypatch.setattr(finetuning.SplitEvaluator, "__call__", fails)
    with pytest.raises(RuntimeError, match="stops here"):
        launch.run_finetuning(ft_config(pretrained["workdir"], *args), run_dir)
    assert [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))] == rows


def test_a_resume_with_a_vocabulary_of_other_tokens_is_refused_the_same_tokens_resume(pretrained, tmp_path):
    """(Evaluating the run with that vocabulary is refused too.) A resume may move data.vocab_file; one of the same size with two tokens swapped trained the
    rest of the run on other ids, unsaid. It is refused naming both files, and the advised flag
    (the run's own vocabulary) resumes; the same tokens in a file with other line endings do too."""
    from bert_jax import finetuning
    run_dir = str(tmp_path / "run")
    args = ["optim.total_steps=2", "checkpoint.every_steps=2", "global_batch_size=8", "data.max_per_label=40"]
    launch.run_finetuning(ft_config(pretrained["workdir"], *args), run_dir)
    tokens = open(pretrained["vocab"], encoding="utf-8").read().splitlines()
    swapped = tokens[:]
    swapped[200], swapped[201] = swapped[201], swapped[200]
    other = tmp_path / "other_vocab.txt"
    other.write_text("\n".join(swapped) + "\n", encoding="utf-8")
    before = open(os.path.join(run_dir, "config.json")).read()
    longer = [a.replace("total_steps=2", "total_steps=4") for a in args]
    with pytest.raises(launch.ConfigError) as error:
        launch.run_finetuning(ft_config(pretrained["workdir"], *longer, f"data.vocab_file={str(other)!r}"), run_dir)
    message = str(error.value)
    assert "holds other tokens" in message and str(other) in message, message
    assert open(os.path.join(run_dir, "config.json")).read() == before
    advised = re.search(r"--config\.(data\.vocab_file=\S+?),", message).group(1)
    # evaluated with it: refused the same way (its model would be scored on other ids), in its own
    # workdir or given as init_from to a new one (the run or its checkpoints/ folder)
    for init_from, workdir in ((pretrained["workdir"], run_dir), (run_dir, str(tmp_path / "scored")),
                               (os.path.join(run_dir, "checkpoints"), str(tmp_path / "scored"))):
        with pytest.raises(launch.ConfigError, match="holds other tokens: its model would read other ids"):
            finetuning.run_evaluation(ft_config(init_from, *args, f"data.vocab_file={str(other)!r}"), workdir)
    assert not os.path.exists(os.path.join(tmp_path, "scored", "eval"))
    finetuning.run_evaluation(ft_config(run_dir, *args), str(tmp_path / "scored"))
    scored = json.load(open(os.path.join(tmp_path, "scored", "eval", "dev_results.json")))
    assert scored["model"] == os.path.join(run_dir, "checkpoints", "2")  # the step scored, not only the run
    same = tmp_path / "same_tokens_crlf.txt"
    same.write_bytes(("\r\n".join(tokens) + "\r\n").encode("utf-8"))
    for vocab, steps in ((advised.split("=", 1)[1], 3), (str(same), 4)):
        longer = [a.replace("total_steps=2", f"total_steps={steps}") for a in args]
        result = launch.run_finetuning(ft_config(pretrained["workdir"], *longer, f"data.vocab_file={vocab!r}"), run_dir)
        assert (result["start_step"], result["step"]) == (steps - 1, steps)


# ----------------------------------------------------------------------------- bad input


def test_init_from_pointing_at_nothing_is_refused_before_compute(tmp_path):
    with pytest.raises(launch.ConfigError, match=r"init_from=.*does not exist"):
        launch.run_finetuning(ft_config(str(tmp_path / "nowhere"), "data.vocab_file=" + repr(_any_vocab(tmp_path))),
                              str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run")
    os.makedirs(tmp_path / "empty")
    with pytest.raises(launch.ConfigError, match=r"no checkpoints/ folder.*no config\.json"):
        launch.run_finetuning(ft_config(str(tmp_path / "empty"), "data.vocab_file=" + repr(_any_vocab(tmp_path))),
                              str(tmp_path / "run"))
    with pytest.raises(launch.ConfigError, match=r"init_from is empty.*init_from=scratch"):
        launch.run_finetuning(ft_config(""), str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run")


@pytest.mark.parametrize("fields,named", [(["optim.total_steps=0"], "optim.total_steps=0"),
                                          (["optim.total_steps=-5"], "optim.total_steps=-5"),
                                          (["optim.total_steps=-1", "num_epochs=0"], "num_epochs=0"),
                                          (["data.max_seq_length=0"], "data.max_seq_length=0 leaves no room")])
def test_a_step_count_or_length_out_of_range_is_refused_naming_the_field(fields, named, tmp_path):
    """0 and -5 were read as "-1: num_epochs" (0 trained 129 steps); num_epochs=0 trained one step;
    max_seq_length=0 was reported as the tokenizer's "max_length=0"."""
    with pytest.raises(launch.ConfigError, match=re.escape(named)):
        launch.run_finetuning(ft_config("scratch", f"data.vocab_file={_any_vocab(tmp_path)!r}", *fields),
                              str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run")


def _any_vocab(tmp_path):
    path = tmp_path / "vocab.txt"
    if not path.exists():
        path.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a"]) + "\n")
    return str(path)


def test_init_from_of_another_shape_is_refused_before_compute(pretrained, tmp_path):
    config = launch.load_config(DOCS, [f"init_from={pretrained['workdir']!r}"])  # hidden 128 vs the run's 32
    with pytest.raises(launch.ConfigError, match=r"another shape: hidden_size=32 \(config: 128\).*"
                                                 r"--config\.model\.hidden_size=32"):
        launch.run_finetuning(config, str(tmp_path))
    assert not os.path.exists(tmp_path / "checkpoints")


def test_unknown_config_field_and_task_are_errors(pretrained, tmp_path, capsys):
    code = launch.finetune_main(["--config", DOCS, "--workdir", str(tmp_path), "--config.optim.learnin_rate=1e-3"])
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown config field 'optim.learnin_rate'" in err and "optim.learning_rate" in err
    with pytest.raises(ValueError, match=r"task='glue' is not a registered fine-tuning task.*docs_section"):
        launch.finetune_defaults("glue")
    with pytest.raises(launch.ConfigError, match=r"label 'tutorials'.*available in .*tutorial"):
        launch.run_finetuning(ft_config(pretrained["workdir"], "data.labels=('tutorials', 'library')"),
                              str(tmp_path))
    assert not os.listdir(tmp_path)


def test_finetune_defaults_share_the_pretraining_fields():
    pre, ft = launch.pretrain_defaults(), launch.finetune_defaults("docs_section")
    shared = set(pre.keys()) & set(ft.keys())
    assert {"model", "optim", "mesh_shape", "checkpoint", "init_from", "distributed", "global_batch_size"} <= shared
    for key in shared - {"data", "optim", "model", "global_batch_size", "checkpoint", "log_every_steps",
                         "eval_steps", "mode", "model_dtype"}:
        assert pre[key] == ft[key], key
    assert set(pre.optim.keys()) == set(ft.optim.keys()) and set(pre.model.keys()) == set(ft.model.keys())


# ----------------------------------------------------------------------------- data and loss


def test_docs_section_splits_by_document_and_balances_labels():
    splits = tcd.docs_section_splits(CORPUS_DIR, LABELS, dev_percent=15)
    again = tcd.docs_section_splits(CORPUS_DIR, LABELS, dev_percent=15)
    train, dev = splits["train"], splits["dev"]
    assert train.texts == again["train"].texts and dev.texts == again["dev"].texts
    assert not set(train.documents) & set(dev.documents)  # dev documents are unseen
    for part in (train, dev):
        counts = np.bincount(part.labels, minlength=4)
        assert (counts == counts[0]).all() and part.info["majority_baseline"] == 0.25
    # The split is by document: every dev sentence's whole document is in dev.
    unbalanced = tcd.docs_section_splits(CORPUS_DIR, LABELS, dev_percent=15, balance=False)
    n_docs = unbalanced["train"].info["num_documents"] + unbalanced["dev"].info["num_documents"]
    assert unbalanced["dev"].info["num_documents"] / n_docs == pytest.approx(0.15, abs=0.03)


def test_max_train_per_label_caps_train_and_keeps_every_dev_sentence():
    full = tcd.docs_section_splits(CORPUS_DIR, LABELS, dev_percent=15)
    few = tcd.docs_section_splits(CORPUS_DIR, LABELS, dev_percent=15, max_train_per_label=50)
    assert np.bincount(few["train"].labels, minlength=4).tolist() == [50] * 4
    every = tcd.docs_section_splits(CORPUS_DIR, LABELS, dev_percent=15, balance=False)
    assert set(few["train"].texts) <= set(every["train"].texts)
    assert few["dev"].texts == full["dev"].texts  # dev untouched: scores are not sampling noise


def _toy_arrays(n):
    rng = np.random.default_rng(0)
    return {"input_ids": rng.integers(0, 50, (n, 8)).astype(np.int32), "attention_mask": np.ones((n, 8), np.int32),
            "token_type_ids": np.zeros((n, 8), np.int32), "labels": rng.integers(0, 3, (n,)).astype(np.int32),
            "row": np.arange(n)}


def test_loader_resumes_exactly_and_splits_rows_between_processes():
    arrays = _toy_arrays(37)
    whole = ArrayLoader(arrays, 8, seed=5)
    assert whole.steps_per_epoch == 4
    it = iter(whole)
    seen = [next(it)["row"] for _ in range(6)]
    state = whole.state()
    later = [next(it)["row"] for _ in range(5)]
    resumed = ArrayLoader(arrays, 8, seed=5)
    resumed.restore(json.loads(json.dumps(state)))
    it2 = iter(resumed)
    for want in later:
        np.testing.assert_array_equal(next(it2)["row"], want)
    # Each epoch is a fresh permutation without repeats; epochs differ.
    epoch0, epoch1 = np.concatenate(seen[:4]), np.concatenate(seen[4:6] + later[:2])
    assert len(set(epoch0)) == 32 and len(set(epoch1)) == 32 and not np.array_equal(epoch0, epoch1)
    # Two processes take disjoint halves whose union is the single-process batch.
    halves = [ArrayLoader(arrays, 8, seed=5, process_index=p, process_count=2).batch_at(3)["row"]
              for p in (0, 1)]
    np.testing.assert_array_equal(np.concatenate(halves), whole.batch_at(3)["row"])
    with pytest.raises(ValueError, match="data set changed"):
        ArrayLoader(_toy_arrays(30), 8).restore(state)


def test_evaluation_pass_counts_every_example_once():
    arrays = _toy_arrays(21)
    loader = ArrayLoader(arrays, 8, shuffle=False, drop_remainder=False, num_epochs=1)
    batches = list(loader)
    assert len(batches) == 3 and all(b["input_ids"].shape == (8, 8) for b in batches)
    weight = np.concatenate([b["row_weight"] for b in batches])
    labels = np.concatenate([b["labels"] for b in batches])
    assert weight.sum() == 21 and (labels[21:] == IGNORE_LABEL).all()
    np.testing.assert_array_equal(np.concatenate([b["row_id"] for b in batches]), list(range(21)) + [-1] * 3)
    np.testing.assert_array_equal(np.concatenate([b["row"] for b in batches])[:21], np.arange(21))


def test_task_loss_and_accuracy_match_a_numpy_reference():
    """Padding rows (weight 0) count nowhere; the loss is the mean cross-entropy of the
    real rows, divided by the global denominator."""
    import jax.numpy as jnp
    from bert_jax import partitioning
    from bert_jax.config import BertConfig
    from bert_jax.modeling import BertForSequenceClassificationModule
    from bert_jax.tasks.heads import HeadTask
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=24, max_position_embeddings=16, num_labels=3)
    task = HeadTask(BertForSequenceClassificationModule(config), "sequence_classification", 8, num_labels=3)
    params = partitioning.unbox(jax.jit(task.init_params)(jax.random.key(0)))
    arrays = _toy_arrays(5)
    del arrays["row"]
    batch = next(iter(ArrayLoader(arrays, 8, shuffle=False, drop_remainder=False)))
    batch = {k: jnp.asarray(v) for k, v in batch.items() if k in task.batch_spec}
    loss, sums = jax.jit(lambda p, b: task.loss(p, b, jax.random.key(1), task.denominators(b),
                                                deterministic=True))(params, batch)
    logits = jax.jit(lambda p, b: task.module.apply({"params": p}, b["input_ids"], b["attention_mask"],
                                                    b["token_type_ids"]).logits)(params, batch)
    logits = np.asarray(logits, np.float64)[:5]
    labels = arrays["labels"]
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    xent = -logp[np.arange(5), labels]
    np.testing.assert_allclose(float(loss), xent.mean(), rtol=1e-5)
    metrics = task.metrics_from_sums(sums)
    assert float(metrics["accuracy"]) == pytest.approx(np.mean(logits.argmax(-1) == labels))
    assert float(sums["count"]) == 5


# ----------------------------------------------------------------------------- slow


@pytest.mark.slow
def test_tiny_recipe_pretrain_then_finetune_docs_section(pretrained, tmp_path):
    """The documented recipe: configs/pretrain/tiny.py for 300 steps, then
    configs/finetune/docs_section.py as shipped (300 steps)."""
    shards = pretrained["shards"]
    pre = str(tmp_path / "pretrain")
    launch.run_pretraining(launch.load_config(TINY, [f"data.train_dir={shards!r}", "eval_every_steps=0"]), pre)
    result = launch.run_finetuning(launch.load_config(DOCS, [f"init_from={pre!r}"]), str(tmp_path / "ft"))
    assert result["eval"]["accuracy"] > 0.45, result["eval"]
