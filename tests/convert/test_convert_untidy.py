"""Loading untidy checkpoints, and the errors for ones that do not fit (no torch needed).

State dicts here are our own export (the Hugging Face layout, as the transformers
tests check), then made untidy the way real checkpoints are.
"""

import contextlib
import json
import logging
import re
import sys

import numpy as np
import pytest
from flax.traverse_util import flatten_dict
from safetensors.numpy import save_file

from bert_jax.config import BertConfig
from bert_jax.convert import cli, hf
from bert_jax.modeling import BertForPreTraining, BertModel, BertForSequenceClassification


@contextlib.contextmanager
def _warned_once(caplog, pattern: str):
    """Asserts that the block logs exactly one WARNING matching ``pattern`` (a regex)."""
    with caplog.at_level(logging.WARNING, logger="bert_jax"):
        start = len(caplog.records)
        yield
        hits = [r for r in caplog.records[start:] if r.levelno == logging.WARNING and re.search(pattern, r.getMessage())]
    assert len(hits) == 1, [r.getMessage() for r in caplog.records[start:]]


@pytest.fixture(scope="module")
def pretrained(tiny_kwargs):
    model = BertForPreTraining(BertConfig(**tiny_kwargs), seed=0)
    state = hf.params_to_hf_state_dict(model.params, model.config, "BertForPreTraining")
    return model, state


def _assert_same(a, b):
    fa, fb = flatten_dict(a), flatten_dict(b)
    assert set(fa) == set(fb), set(fa) ^ set(fb)
    for k in fa:
        np.testing.assert_array_equal(np.asarray(fa[k]), np.asarray(fb[k]), err_msg="/".join(k))


def test_untidy_checkpoint_loads_exactly(pretrained):
    model, state = pretrained
    untidy = {}
    for key, value in state.items():
        key = key.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        untidy[key.removeprefix("bert.")] = value  # no "bert." prefix
    untidy["embeddings.position_ids"] = np.arange(64)[None]
    untidy["cls.predictions.decoder.weight"] = state["bert.embeddings.word_embeddings.weight"]
    untidy["cls.predictions.decoder.bias"] = state["cls.predictions.bias"]
    params, report = hf.hf_state_dict_to_params(untidy, model.config, "BertForPreTraining")
    _assert_same(params, model.params)
    assert "embeddings.position_ids" in report.ignored
    assert "cls.predictions.decoder.weight" in report.ignored
    assert report.renamed["embeddings.LayerNorm.gamma"] == "bert.embeddings.LayerNorm.weight"
    assert not report.initialized and not report.unused


def test_decoder_bias_alone_fills_the_output_bias(pretrained):
    model, state = pretrained
    state = dict(state)
    state["cls.predictions.decoder.bias"] = state.pop("cls.predictions.bias")
    params, _ = hf.hf_state_dict_to_params(state, model.config, "BertForPreTraining")
    np.testing.assert_array_equal(params["cls"]["predictions"]["bias"], model.params["cls"]["predictions"]["bias"])


def test_pretraining_checkpoint_into_bert_model_reports_unused_heads(pretrained):
    model, state = pretrained
    params, report = hf.hf_state_dict_to_params(state, model.config, "BertModel")
    _assert_same(params, model.params["bert"])
    assert sorted(report.unused) == sorted(k for k in state if k.startswith("cls."))


def test_missing_head_is_initialised_with_a_warning(pretrained, caplog):
    model, state = pretrained
    encoder_only = {k.removeprefix("bert."): v for k, v in state.items() if k.startswith("bert.")}
    with _warned_once(caplog, r"freshly initialised.*classifier\.bias, classifier\.weight"):
        params, report = hf.hf_state_dict_to_params(encoder_only, model.config.replace(num_labels=3),
                                                    "BertForSequenceClassification")
    assert report.initialized == ["classifier.bias", "classifier.weight"]
    assert params["classifier"]["kernel"].shape == (32, 3)
    _assert_same(params["bert"], model.params["bert"])


def test_missing_encoder_key_is_an_error_naming_it(pretrained):
    model, state = pretrained
    state = {k: v for k, v in state.items() if k != "bert.encoder.layer.1.output.dense.weight"}
    with pytest.raises(ValueError, match=r"missing.*bert\.encoder\.layer\.1\.output\.dense\.weight"):
        hf.hf_state_dict_to_params(state, model.config, "BertForPreTraining")


def test_key_that_belongs_to_nothing_is_an_error(pretrained):
    model, state = pretrained
    state = dict(state)
    state["bert.encoder.layer.2.output.dense.weight"] = np.zeros((32, 37), np.float32)
    state["head.weight"] = np.zeros((2, 32), np.float32)
    with pytest.raises(ValueError, match=r"2 checkpoint key\(s\) belong to no parameter.*"
                                         r"bert\.encoder\.layer\.2\.output\.dense\.weight, head\.weight"):
        hf.hf_state_dict_to_params(state, model.config, "BertForPreTraining")


def test_shape_mismatch_names_the_parameter_and_both_shapes(pretrained, tiny_kwargs):
    _, state = pretrained
    config = BertConfig(**{**tiny_kwargs, "intermediate_size": 40})
    with pytest.raises(ValueError, match=r"Shape mismatch[\s\S]*'bert\.encoder\.layer\.0\.intermediate\.dense\.weight'"
                                         r".*checkpoint has \(37, 32\), the config expects \(40, 32\)"):
        hf.hf_state_dict_to_params(state, config, "BertForPreTraining")


def test_torch_file_without_torch_says_what_to_do(tmp_path, monkeypatch):
    (tmp_path / "pytorch_model.bin").write_bytes(b"not read")
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    with pytest.raises(ImportError, match="install torch .* or convert the checkpoint to safetensors"):
        hf.load_hf_state_dict(str(tmp_path))


def test_sharded_safetensors_are_read(pretrained, tmp_path):
    _, state = pretrained
    keys = sorted(state)
    half = len(keys) // 2
    shards = {"model-00001-of-00002.safetensors": keys[:half], "model-00002-of-00002.safetensors": keys[half:]}
    weight_map = {}
    for name, names in shards.items():
        save_file({k: state[k] for k in names}, str(tmp_path / name))
        weight_map.update({k: name for k in names})
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    loaded = hf.load_hf_state_dict(str(tmp_path))
    assert set(loaded) == set(state)
    assert all(np.array_equal(loaded[k], state[k]) for k in state)


def test_native_layout_and_cli_both_ways(pretrained, tmp_path, capsys):
    model, _ = pretrained
    native_dir, hf_dir, back_dir = tmp_path / "native", tmp_path / "hf", tmp_path / "back"
    model.save_pretrained(native_dir, format="bert-jax")
    _assert_same(BertForPreTraining.from_pretrained(native_dir).params, model.params)

    assert cli.main(["--from", "bert-jax", str(native_dir), "--to-hf", str(hf_dir)]) == 0
    assert json.loads((hf_dir / "config.json").read_text())["architectures"] == ["BertForPreTraining"]
    _assert_same(BertForPreTraining.from_pretrained(hf_dir).params, model.params)

    assert cli.main(["--from", "hf", str(hf_dir), "--to", str(back_dir), "--target", "BertModel"]) == 0
    _assert_same(BertModel.from_pretrained(back_dir).params, model.params["bert"])
    assert "wrote BertModel" in capsys.readouterr().out

    # Errors are reported, not raised, with the reason.
    assert cli.main(["--from", "bert-jax", str(hf_dir), "--to", str(tmp_path / "x")]) == 2
    assert "it holds a Hugging Face model: use --from hf" in capsys.readouterr().err


def test_a_source_of_another_layout_is_named_with_the_flag_that_reads_it(pretrained, tmp_path, capsys):
    """--from bert-jax on a TensorFlow export, a checkpoint step folder or an empty folder always
    asked "is it a Hugging Face directory (use --from hf)?", which then failed too; an output under
    a file was a NotADirectoryError traceback after the checkpoint had loaded."""
    model, _ = pretrained
    native_dir, tf_dir = tmp_path / "native", tmp_path / "tf"
    model.save_pretrained(native_dir, format="bert-jax")
    assert cli.main(["--from", "bert-jax", str(native_dir), "--to-tf", str(tf_dir)]) == 0
    capsys.readouterr()
    assert cli.main(["--from", "bert-jax", str(tf_dir), "--to-hf", str(tmp_path / "x")]) == 2
    assert "it holds an original TensorFlow checkpoint: use --from tf." in capsys.readouterr().err
    assert cli.main(["--from", "tf", str(tf_dir), "--to-hf", str(tmp_path / "x")]) == 0  # the advice
    step = tmp_path / "run" / "checkpoints" / "4"
    step.mkdir(parents=True)
    assert cli.main(["--from", "bert-jax", str(step), "--to-hf", str(tmp_path / "y")]) == 2
    assert (f"it is step 4 of the training run {tmp_path / 'run'}: pass the run with --step, e.g. --from bert-jax "
            f"{tmp_path / 'run'} --step 4.") in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli.main(["--from", "bert-jax", str(tmp_path / "empty"), "--to-hf", str(tmp_path / "y")]) == 2
    assert "the directory is empty" in capsys.readouterr().err
    (tmp_path / "a_file").write_text("mine\n")
    assert cli.main(["--from", "bert-jax", str(native_dir), "--to-hf", str(tmp_path / "a_file" / "sub")]) == 2
    assert f"{tmp_path / 'a_file'} is a file; choose a path of directories." in capsys.readouterr().err
    assert (tmp_path / "a_file").read_text() == "mine\n"


def test_from_pretrained_applies_config_overrides(pretrained, tmp_path, caplog):
    model, _ = pretrained
    model.save_pretrained(tmp_path)
    with _warned_once(caplog, r"classifier\.weight"):
        classifier = BertForSequenceClassification.from_pretrained(tmp_path, num_labels=5)
    assert classifier.config.num_labels == 5 and classifier.params["classifier"]["kernel"].shape == (32, 5)
    _assert_same(classifier.params["bert"], model.params["bert"])


def test_encoder_checkpoint_warm_starts_a_cross_attention_decoder(pretrained, caplog):
    model, state = pretrained
    decoder_config = model.config.replace(is_decoder=True, add_cross_attention=True)
    with _warned_once(caplog, r"bert\.encoder\.layer\.0\.crossattention\.self\.query\.weight"):
        params, report = hf.hf_state_dict_to_params(state, decoder_config, "BertLMHeadModel")
    assert len(report.initialized) == 2 * 10  # 10 cross-attention tensors per layer
    assert all(".crossattention." in k for k in report.initialized)
    assert "cls.seq_relationship.weight" in report.unused and "bert.pooler.dense.weight" in report.unused
    _assert_same(params["bert"]["embeddings"], model.params["bert"]["embeddings"])


def test_mismatched_head_is_an_error_unless_asked_to_reinitialise(pretrained, tmp_path, caplog):
    model, _ = pretrained
    BertForSequenceClassification(model.config.replace(num_labels=2), params=None).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"'classifier\.weight'.*checkpoint has \(2, 32\), the config expects \(4, 32\)"):
        BertForSequenceClassification.from_pretrained(tmp_path, num_labels=4)
    with _warned_once(caplog, r"classifier\.bias, classifier\.weight \(the checkpoint's are of another "
                      r"shape: classifier\.bias: checkpoint \(2,\), needs \(4,\); classifier\.weight: checkpoint "
                      r"\(2, 32\), needs \(4, 32\)\)"):
        resized = BertForSequenceClassification.from_pretrained(tmp_path, num_labels=4, ignore_mismatched_sizes=True)
    assert resized.params["classifier"]["kernel"].shape == (32, 4)


@pytest.mark.parametrize("left_out", [("hidden_size", "intermediate_size", "num_hidden_layers"),
                                      ("num_hidden_layers",)])
def test_a_config_json_that_leaves_out_a_size_is_told_which_and_the_advice_loads_it(pretrained, tmp_path, left_out):
    """A config.json without hidden_size or num_hidden_layers takes Hugging Face's defaults (768, 12);
    the error listed dozens of tensors but not the field, nor the value the weights need."""
    model, _ = pretrained
    model.save_pretrained(tmp_path)
    with open(tmp_path / "config.json") as f:
        config = json.load(f)
    given = {k: config.pop(k) for k in left_out}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError) as error:
        BertForPreTraining.from_pretrained(tmp_path)
    message = str(error.value)
    advice = f"set {', '.join(f'{k}={v}' for k, v in sorted(given.items()))} in config.json"
    assert advice in message, message
    for k in left_out:
        assert f"{k}={getattr(BertConfig(), k)} where the weights have {given[k]}" in message, message
    assert len(message) < 2500, message  # the tensors are cut to a few lines
    config.update(given)  # following the advice
    (tmp_path / "config.json").write_text(json.dumps(config))
    _assert_same(BertForPreTraining.from_pretrained(tmp_path).params, model.params)


@pytest.mark.parametrize("logging_setup", ["", "import logging; logging.basicConfig()"])
def test_a_fresh_head_is_reported_once_to_a_python_caller(pretrained, tmp_path, logging_setup):
    """Shown on stderr exactly once whether or not the caller has set up logging (it was shown
    twice: a UserWarning and, once logging had a handler, a log line)."""
    import subprocess
    model, _ = pretrained
    model.save_pretrained(tmp_path)
    code = (f"{logging_setup}\nfrom bert_jax.modeling import BertForSequenceClassification\n"
            f"BertForSequenceClassification.from_pretrained({str(tmp_path)!r}, num_labels=3)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("freshly initialised") == 1, result.stderr
