"""Original TensorFlow BERT checkpoints: the file format, and parity with checkpoints TensorFlow wrote.

The format tests need nothing extra. The TensorFlow tests run ``tf_writer.py`` with a
separate Python that has TensorFlow (``BERT_JAX_TF_PYTHON``, default ``.venv-tf/bin/python``
in the repository; CI creates it), and compare against Hugging Face PyTorch BERT
loaded with the same weights, mapped by hand here.
"""

import json
import os
import subprocess

import numpy as np
import pytest
from flax.traverse_util import flatten_dict

from bert_jax.config import BertConfig
from bert_jax.convert import cli, tf, tf_bundle
from bert_jax.modeling import (BertForPreTraining, BertForSequenceClassification, BertForTokenClassification,
                               BertModel)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WRITER = os.path.join(ROOT, "tests", "convert", "tf_writer.py")
TF_CONFIG = {"attention_probs_dropout_prob": 0.1, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
             "hidden_size": 32, "initializer_range": 0.02, "intermediate_size": 37, "max_position_embeddings": 64,
             "num_attention_heads": 4, "num_hidden_layers": 2, "type_vocab_size": 2, "vocab_size": 99}


# --------------------------------------------------------------------------- the format, no TensorFlow needed
def _crc32c_bytewise(data: bytes) -> int:
    table, crc = tf_bundle._crc_table(), 0xFFFFFFFF
    for byte in data:
        crc = int(table[(crc ^ byte) & 0xFF]) ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def test_crc32c_matches_the_standard_check_value_and_a_bytewise_loop():
    assert tf_bundle.crc32c(b"123456789") == 0xE3069283  # the published crc32c check value
    assert tf_bundle.crc32c(b"") == 0
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 31, 33, 255, 4097, 20011):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert tf_bundle.crc32c(data) == _crc32c_bytewise(data), n
    assert tf_bundle.unmask_crc(tf_bundle.mask_crc(0xE3069283)) == 0xE3069283


def test_snappy_literals_and_overlapping_copies():
    # Length 16; literal "abcd"; copy 8 bytes from 4 back (overlapping its own output);
    # copy 3 bytes from 12 back (2-byte offset); literal "Z".
    stream = bytes([16, 0x0C]) + b"abcd" + bytes([0x11, 4]) + bytes([0x0A, 12, 0]) + bytes([0]) + b"Z"
    assert tf_bundle.snappy_decompress(stream) == b"abcdabcdabcdabcZ"
    text = bytes(range(100))  # a literal too long for the tag: its length-1 follows in one byte
    assert tf_bundle.snappy_decompress(bytes([100, 60 << 2, 99]) + text) == text
    with pytest.raises(ValueError, match="copy before the start"):
        tf_bundle.snappy_decompress(bytes([8, 0x11, 4]))


def test_bundle_round_trip_dtypes_shapes_and_many_keys(tmp_path):
    import ml_dtypes

    rng = np.random.default_rng(1)
    tensors = {f"layer_{i:02d}/kernel": rng.standard_normal((3, i + 1)).astype(np.float32) for i in range(40)}
    tensors.update({"global_step": np.array(7, np.int64), "half": np.ones((2, 2), np.float16),
                    "bf16": np.arange(5).astype(ml_dtypes.bfloat16), "empty": np.zeros((0, 3), np.float32)})
    prefix = str(tmp_path / "model.ckpt")
    tf_bundle.write_checkpoint(prefix, tensors)
    reader = tf_bundle.CheckpointReader(prefix)
    assert set(reader.entries) == set(tensors)
    for name, value in tensors.items():
        got = reader.get_tensor(name)
        assert got.dtype == value.dtype and got.shape == value.shape and np.array_equal(got, value), name


def test_corrupt_data_names_the_tensor(tmp_path):
    prefix = str(tmp_path / "model.ckpt")
    tf_bundle.write_checkpoint(prefix, {"a": np.zeros(4, np.float32), "b": np.ones(4, np.float32)})
    data = tf_bundle.data_filename(prefix, 0, 1)
    raw = bytearray(open(data, "rb").read())
    raw[20] ^= 1  # a byte of "b" (bytes 16..31)
    open(data, "wb").write(bytes(raw))
    reader = tf_bundle.CheckpointReader(prefix)
    reader.get_tensor("a")
    with pytest.raises(ValueError, match="crc32c mismatch for 'b'"):
        reader.get_tensor("b")
    index = prefix + ".index"
    raw = bytearray(open(index, "rb").read())
    raw[5] ^= 1
    open(index, "wb").write(bytes(raw))
    with pytest.raises(ValueError, match="block checksum mismatch"):
        tf_bundle.CheckpointReader(prefix)


@pytest.mark.parametrize("name", ["BertForPreTraining", "BertForSequenceClassification", "BertForTokenClassification"])
def test_export_then_import_is_bit_exact(name, tiny_kwargs, tmp_path):
    cls = {"BertForPreTraining": BertForPreTraining, "BertForSequenceClassification": BertForSequenceClassification,
           "BertForTokenClassification": BertForTokenClassification}[name]
    model = cls(BertConfig(**tiny_kwargs, hidden_act="gelu_new", num_labels=3), seed=3)
    tf.save_tf_checkpoint(model.params, model.config, str(tmp_path), name)
    # the class is told from the variables (a token classifier was read as a sequence one, which
    # then missed its pooler)
    assert tf.load_tf_checkpoint(str(tmp_path))[2] == name
    with open(tmp_path / "bert_config.json") as f:
        assert json.load(f)["hidden_act"] == "gelu"
    loaded = cls.from_pretrained(tmp_path)
    assert loaded.config.hidden_act == "gelu_new"
    if name == "BertForSequenceClassification":  # num_labels comes from output_weights [num_labels, hidden]
        assert loaded.config.num_labels == 3
    a, b = flatten_dict(model.params), flatten_dict(loaded.params)
    assert set(a) == set(b)
    for key in a:
        np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]), err_msg="/".join(key))


def test_a_copied_folder_reads_its_own_weights_not_those_its_checkpoint_file_names(tiny_kwargs, tmp_path):
    """TensorFlow's ``checkpoint`` file names the absolute prefix of the folder that trained. A copy
    of that folder (a backup) read the original's weights, which had since been retrained, unsaid."""
    import shutil
    kept = BertForPreTraining(BertConfig(**tiny_kwargs), seed=3)
    tf.save_tf_checkpoint(kept.params, kept.config, str(tmp_path / "run"), "BertForPreTraining")
    with open(tmp_path / "run" / "checkpoint", "w", encoding="utf-8") as f:  # as TensorFlow writes it
        f.write(f'model_checkpoint_path: "{tmp_path / "run" / tf.TF_PREFIX}"\n')
    shutil.copytree(tmp_path / "run", tmp_path / "backup")
    retrained = BertForPreTraining(BertConfig(**tiny_kwargs), seed=4)
    tf.save_tf_checkpoint(retrained.params, retrained.config, str(tmp_path / "run"), "BertForPreTraining")
    assert tf.find_checkpoint_prefix(str(tmp_path / "backup")) == str(tmp_path / "backup" / tf.TF_PREFIX)
    loaded = BertForPreTraining.from_pretrained(tmp_path / "backup")
    a, b = flatten_dict(kept.params), flatten_dict(loaded.params)
    for key in a:
        np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]), err_msg="/".join(key))


def test_a_vocabulary_larger_than_the_embedding_is_warned_about(tiny_kwargs, tmp_path, caplog):
    """A vocab.txt of another model beside the checkpoint was copied into the export unsaid; a
    tokenizer loaded from it then gives ids past the embedding table."""
    model = BertForPreTraining(BertConfig(**tiny_kwargs), seed=3)
    tf.save_tf_checkpoint(model.params, model.config, str(tmp_path / "tf"), "BertForPreTraining")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    words = sorted(set(open(os.path.join(root, "data", "corpus", "faq.txt"), encoding="utf-8").read().split()))
    for name, size in (("fits", model.config.vocab_size), ("larger", model.config.vocab_size + 5)):
        (tmp_path / "tf" / "vocab.txt").write_text("\n".join(words[:size]) + "\n", encoding="utf-8")
        caplog.clear()
        with caplog.at_level("WARNING", logger="bert_jax"):
            assert cli.main(["--from", "tf", str(tmp_path / "tf"), "--to-hf", str(tmp_path / name)]) == 0
        warned = [r.getMessage() for r in caplog.records if "the model embeds" in r.getMessage()]
        assert warned == ([] if name == "fits" else [
            f"{tmp_path / 'tf'}: its vocab.txt has {size} tokens but the model embeds {model.config.vocab_size}: it "
            "is not the vocabulary this model was trained with; copied as it is, replace it in the output with the "
            "right one."]), warned
        assert (tmp_path / name / "vocab.txt").read_bytes() == (tmp_path / "tf" / "vocab.txt").read_bytes()


def test_bert_config_missing_field_names_file_and_field(tmp_path):
    config = dict(TF_CONFIG)
    del config["intermediate_size"]
    (tmp_path / "bert_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"bert_config.json: missing field\(s\) intermediate_size"):
        tf.read_bert_config(str(tmp_path / "bert_config.json"))


# --------------------------------------------------------------------------- against real TensorFlow
def _tf_python():
    python = os.environ.get("BERT_JAX_TF_PYTHON") or os.path.join(ROOT, ".venv-tf", "bin", "python")
    if not os.path.isfile(python):
        pytest.skip(f"no TensorFlow python ({python}); create it with `python3 -m venv .venv-tf && "
                    f".venv-tf/bin/pip install tensorflow-cpu` or set BERT_JAX_TF_PYTHON.")
    return python


def _run_tf(*args):
    result = subprocess.run([_tf_python(), WRITER, *args], capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 0, result.stderr[-3000:]


MISSING = "bert/encoder/layer_1/attention/self/key/bias"
RESHAPED = "bert/encoder/layer_0/intermediate/dense/kernel"


@pytest.fixture(scope="module")
def tf_dirs(tmp_path_factory):
    _tf_python()
    root = tmp_path_factory.mktemp("tf")
    _run_tf("write", json.dumps(TF_CONFIG), "0", str(root / "full"), f"{root / 'missing'},drop={MISSING}",
            f"{root / 'reshaped'},reshape={RESHAPED}")
    return root


def _reference(weights, target):
    """Hugging Face PyTorch BERT with ``weights`` (original TF names), mapped independently of bert-jax."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    state = {}
    for name, value in weights.items():
        key = name.replace("/", ".").replace("layer_", "layer.")
        key = key.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        if key.endswith(".kernel"):
            key, value = key[: -len("kernel")] + "weight", value.T
        if key.endswith("_embeddings"):
            key += ".weight"
        key = key.replace("cls.predictions.output_bias", "cls.predictions.bias")
        key = key.replace("seq_relationship.output_weights", "seq_relationship.weight")
        key = key.replace("seq_relationship.output_bias", "seq_relationship.bias")
        if target == "BertModel":
            if not key.startswith("bert."):
                continue
            key = key[len("bert."):]
        state[key] = torch.tensor(np.ascontiguousarray(value))
    config = transformers.BertConfig(**{**TF_CONFIG, "hidden_act": "gelu_new"})  # the original code's gelu
    model = getattr(transformers, target)(config).eval()
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all("decoder" in k or "position_ids" in k for k in missing), (missing, unexpected)
    if target == "BertForPreTraining":
        model.tie_weights()
    return model


def _torch_outputs(model, batch):
    import torch

    ids, mask, types = (torch.tensor(x) for x in batch)
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask, token_type_ids=types)


@pytest.mark.parity
@pytest.mark.parametrize("target", ["BertForPreTraining", "BertModel"])
def test_tensorflow_checkpoint_matches_transformers(target, tf_dirs, make_batch):
    weights = dict(np.load(tf_dirs / "full" / "weights.npz"))
    batch = make_batch()
    theirs = _torch_outputs(_reference(weights, target), batch)
    model = {"BertForPreTraining": BertForPreTraining, "BertModel": BertModel}[target].from_pretrained(
        tf_dirs / "full")
    ours = model(*batch)
    fields = (("prediction_logits", "seq_relationship_logits") if target == "BertForPreTraining"
              else ("last_hidden_state", "pooler_output"))
    for field in fields:
        diff = np.max(np.abs(np.asarray(getattr(ours, field)) - getattr(theirs, field).numpy()))
        assert diff <= 1e-4, (field, diff)


@pytest.mark.parity
def test_cli_converts_to_hf_reports_optimizer_slots_and_matches(tf_dirs, make_batch, tmp_path, caplog):
    transformers = pytest.importorskip("transformers")
    caplog.set_level("INFO")
    assert cli.main(["--from", "tf", str(tf_dirs / "full"), "--to-hf", str(tmp_path / "hf")]) == 0
    assert "92 optimizer slot(s) ignored (adam_m, adam_v)" in caplog.text
    assert "training state ignored: global_step" in caplog.text
    loaded = transformers.BertForPreTraining.from_pretrained(tmp_path / "hf", attn_implementation="eager").eval()
    reference = _reference(dict(np.load(tf_dirs / "full" / "weights.npz")), "BertForPreTraining")
    batch = make_batch()
    ours, theirs = _torch_outputs(loaded, batch), _torch_outputs(reference, batch)
    assert float((ours.prediction_logits - theirs.prediction_logits).abs().max()) <= 1e-4


def test_missing_variable_is_an_error_naming_it(tf_dirs, tmp_path, capsys):
    assert cli.main(["--from", "tf", str(tf_dirs / "missing"), "--to", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "missing from the checkpoint: " + MISSING in err
    assert not (tmp_path / "out").exists()


def test_a_folder_without_a_tensorflow_checkpoint_is_named_as_such(tmp_path, capsys):
    """It was told it "has a TensorFlow checkpoint but no bert_config.json" -- advice that led
    nowhere; a Hugging Face folder is pointed to --from hf."""
    (tmp_path / "empty").mkdir()
    assert cli.main(["--from", "tf", str(tmp_path / "empty"), "--to", str(tmp_path / "out")]) == 2
    assert "holds no TensorFlow checkpoint (no bert_model.ckpt.index" in capsys.readouterr().err
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("{}")
    assert cli.main(["--from", "tf", str(tmp_path / "hf"), "--to", str(tmp_path / "out")]) == 2
    assert "looks like a Hugging Face model directory: use --from hf" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    # the checkpoint's prefix (a TensorFlow habit), one of its files, or a mistyped folder: each
    # was "is not a directory"
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "bert_model.ckpt.index").write_bytes(b"")
    for given in ("bert_model.ckpt", "bert_model.ckpt.index"):
        assert cli.main(["--from", "tf", str(tmp_path / "ckpt" / given), "--to", str(tmp_path / "out")]) == 2
        assert f"pass the folder that holds it: {tmp_path / 'ckpt'}" in capsys.readouterr().err
    assert cli.main(["--from", "tf", str(tmp_path / "ckpnt"), "--to", str(tmp_path / "out")]) == 2
    assert f"source '{tmp_path / 'ckpnt'}' does not exist; check the path." in capsys.readouterr().err
    (tmp_path / "uncased_L-2_H-32.zip").write_bytes(b"PK")  # a release not yet unpacked
    assert cli.main(["--from", "tf", str(tmp_path / "uncased_L-2_H-32"), "--to", str(tmp_path / "out")]) == 2
    assert f"but {tmp_path / 'uncased_L-2_H-32.zip'} does: unpack it" in capsys.readouterr().err
    assert cli.main(["--from", "hf", str(tmp_path / "ckpt"), "--to", str(tmp_path / "out")]) == 2  # "No config.json"
    assert "holds an original TensorFlow checkpoint (*.index), not a Hugging Face model: convert it with --from tf" \
        in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_shape_mismatch_is_an_error_naming_it(tf_dirs):
    with pytest.raises(ValueError, match=f"{RESHAPED}: checkpoint has \\(32, 38\\), bert_config.json implies "
                                         f"\\(32, 37\\)"):
        BertModel.from_pretrained(tf_dirs / "reshaped")


def test_to_tf_is_read_back_by_tensorflow_bit_identically(tf_dirs, tmp_path):
    assert cli.main(["--from", "tf", str(tf_dirs / "full"), "--to", str(tmp_path / "native")]) == 0
    assert cli.main(["--from", "bert-jax", str(tmp_path / "native"), "--to-tf", str(tmp_path / "tf")]) == 0
    _run_tf("read", str(tmp_path / "tf" / "bert_model.ckpt"), str(tmp_path / "read.npz"))
    back = dict(np.load(tmp_path / "read.npz"))
    original = dict(np.load(tf_dirs / "full" / "weights.npz"))
    assert set(back) == set(original), set(back) ^ set(original)
    for name, value in original.items():
        assert back[name].dtype == value.dtype and np.array_equal(back[name], value), name
    with open(tmp_path / "tf" / "bert_config.json") as f:
        assert json.load(f) == TF_CONFIG
