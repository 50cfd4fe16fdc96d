"""scan_layers=True: stacked parameters, same numbers as the layer loop, same exported checkpoint."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file

from bert_jax.config import BertConfig
from bert_jax.convert.hf import stack_layers, unstack_layers
from bert_jax.modeling import BertForPreTraining, BertLMHeadModel


@pytest.fixture(scope="module")
def pair(tiny_kwargs):
    config = BertConfig(**tiny_kwargs)
    loop = BertForPreTraining(config, seed=2)
    scan = BertForPreTraining(config, params=stack_layers(loop.params), scan_layers=True, remat_policy="full")
    return loop, scan


def test_parameters_are_stacked_with_a_layers_axis(pair):
    loop, scan = pair
    kernel = scan.params["bert"]["encoder"]["layer"]["attention"]["self"]["query"]["kernel"]
    assert kernel.shape == (2, 32, 32)
    np.testing.assert_array_equal(kernel[1], loop.params["bert"]["encoder"]["layer"]["1"]["attention"]["self"]
                                  ["query"]["kernel"])
    back = unstack_layers(scan.params)
    assert jax.tree_util.tree_structure(back) == jax.tree_util.tree_structure(loop.params)


def test_scanned_outputs_and_gradients_equal_the_loop(pair, make_batch):
    loop, scan = pair
    ids, mask, token_types = make_batch()
    labels = np.where(mask == 1, ids, -100)
    nsp = np.array([0, 1, 1])
    a = loop(ids, mask, token_types, output_hidden_states=True, output_attentions=True, labels=labels,
             next_sentence_label=nsp)
    b = scan(ids, mask, token_types, output_hidden_states=True, output_attentions=True, labels=labels,
             next_sentence_label=nsp)
    jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, atol=1e-5), a, b)

    def grads(model):
        fn = lambda p: model.module.apply({"params": p}, ids, mask, token_types, labels=labels,
                                          next_sentence_label=nsp).loss
        return jax.jit(jax.grad(fn))(model.params)

    jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6),
                           stack_layers(grads(loop)), grads(scan))


def test_scanned_model_exports_and_loads_the_same_checkpoint(pair, tmp_path):
    loop, scan = pair
    loop.save_pretrained(tmp_path / "loop")
    scan.save_pretrained(tmp_path / "scan")
    a, b = load_file(str(tmp_path / "loop" / "model.safetensors")), load_file(str(tmp_path / "scan" / "model.safetensors"))
    assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)
    reloaded = BertForPreTraining.from_pretrained(tmp_path / "loop", module_kwargs={"scan_layers": True})
    jax.tree_util.tree_map(np.testing.assert_array_equal, reloaded.params, scan.params)


@pytest.mark.slow
def test_scanned_decoder_cache(tiny_kwargs):
    model = BertLMHeadModel(BertConfig(**tiny_kwargs, is_decoder=True), seed=0, scan_layers=True)
    prompt = jnp.asarray([[3, 4, 5]], jnp.int32)
    np.testing.assert_array_equal(model.generate(prompt, 4), model.generate(prompt, 4, use_cache=False))
