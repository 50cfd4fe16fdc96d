"""Round trips with real ``transformers`` checkpoints, both directions."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from safetensors.numpy import load_file  # noqa: E402

from bert_jax import modeling  # noqa: E402
from bert_jax.config import BertConfig  # noqa: E402
from bert_jax.convert import hf  # noqa: E402

pytestmark = pytest.mark.parity

CLASSES = sorted(modeling.MODEL_CLASSES)


def _extra(name):
    return {"is_decoder": True, "add_cross_attention": True} if name == "BertLMHeadModel" else {}


@pytest.mark.parametrize("name", CLASSES + ["BertForMaskedLM/untied"])
def test_hf_to_bert_jax_to_hf_is_bit_identical(name, tiny_kwargs, tmp_path):
    cls_name = name.split("/")[0]
    extra = {**_extra(cls_name), **({"tie_word_embeddings": False} if name.endswith("untied") else {})}
    torch.manual_seed(0)
    reference = getattr(transformers, cls_name)(transformers.BertConfig(**tiny_kwargs, **extra))
    reference.save_pretrained(tmp_path / "hf")
    original = load_file(str(tmp_path / "hf" / "model.safetensors"))

    model = getattr(modeling, cls_name).from_pretrained(tmp_path / "hf")
    model.save_pretrained(tmp_path / "out")
    exported = load_file(str(tmp_path / "out" / "model.safetensors"))
    assert set(exported) == set(original), set(exported) ^ set(original)
    for key, value in original.items():
        assert exported[key].dtype == value.dtype and np.array_equal(exported[key], value), key


@pytest.mark.parametrize("name", ["BertForPreTraining", "BertLMHeadModel", "BertForMaskedLM/untied",
                                  pytest.param("BertForSequenceClassification", marks=pytest.mark.slow)])
def test_export_loads_in_transformers_with_the_same_logits(name, tiny_kwargs, make_batch, tmp_path):
    cls_name = name.split("/")[0]
    extra = {**_extra(cls_name), **({"tie_word_embeddings": False} if name.endswith("untied") else {})}
    model = getattr(modeling, cls_name)(BertConfig(**tiny_kwargs, **extra), seed=5)
    model.save_pretrained(tmp_path)
    loaded, info = getattr(transformers, cls_name).from_pretrained(tmp_path, output_loading_info=True,
                                                                   attn_implementation="eager")
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    ids, mask, token_types = make_batch()
    extras = {}
    if cls_name == "BertLMHeadModel":
        extras["encoder_hidden_states"] = np.random.default_rng(0).normal(size=(3, 5, 32)).astype(np.float32)
    ours = model(ids, mask, token_types, **extras)
    with torch.no_grad():
        theirs = loaded.eval()(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                               token_type_ids=torch.tensor(token_types),
                               **{k: torch.tensor(v) for k, v in extras.items()})
    field = "prediction_logits" if cls_name == "BertForPreTraining" else "logits"
    assert np.abs(np.asarray(getattr(ours, field)) - getattr(theirs, field).numpy()).max() <= 1e-4


def test_pytorch_bin_is_read_weights_only(tiny_kwargs, tmp_path, monkeypatch):
    torch.manual_seed(0)
    reference = transformers.BertForPreTraining(transformers.BertConfig(**tiny_kwargs))
    reference.save_pretrained(tmp_path / "safe")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "config.json").write_text((tmp_path / "safe" / "config.json").read_text())
    torch.save(reference.state_dict(), tmp_path / "bin" / "pytorch_model.bin")  # includes tied copies + buffers
    calls = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(k) or real_load(*a, **k))
    from_bin = modeling.BertForPreTraining.from_pretrained(tmp_path / "bin")
    assert calls and all(k.get("weights_only") is True for k in calls)
    from_safe = modeling.BertForPreTraining.from_pretrained(tmp_path / "safe")
    a, b = hf.params_to_hf_state_dict(from_bin.params, from_bin.config, "BertForPreTraining"), \
        hf.params_to_hf_state_dict(from_safe.params, from_safe.config, "BertForPreTraining")
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_bfloat16_checkpoint_loads_exactly(tiny_kwargs, tmp_path):
    torch.manual_seed(0)
    reference = transformers.BertForPreTraining(transformers.BertConfig(**tiny_kwargs)).to(torch.bfloat16)
    reference.save_pretrained(tmp_path)
    model = modeling.BertForPreTraining.from_pretrained(tmp_path)
    ours = hf.params_to_hf_state_dict(model.params, model.config, "BertForPreTraining")
    for name, value in reference.state_dict().items():
        if name in ours:  # upcast to float32 is exact
            assert ours[name].dtype == np.float32
            np.testing.assert_array_equal(ours[name], value.float().numpy(), err_msg=name)
