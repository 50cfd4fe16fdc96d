"""BertLMHeadModel decoding: the cache reproduces full forward passes; generate's modes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bert_jax.config import BertConfig
from bert_jax.modeling import BertLMHeadModel
from bert_jax.modeling.generation import init_cache


@pytest.fixture(scope="module")
def decoder(tiny_kwargs):
    return BertLMHeadModel(BertConfig(**tiny_kwargs, is_decoder=True, add_cross_attention=True), seed=3)


@pytest.fixture(scope="module")
def encoder_states(tiny_kwargs):
    rng = np.random.default_rng(0)
    states = jnp.asarray(rng.normal(size=(2, 6, tiny_kwargs["hidden_size"])), jnp.float32)
    return states, jnp.asarray([[1] * 6, [1] * 4 + [0] * 2])


def test_cached_logits_equal_a_full_forward_pass(decoder, encoder_states):
    states, states_mask = encoder_states
    ids = jnp.asarray(np.random.default_rng(1).integers(1, 99, size=(2, 7)), jnp.int32)
    mask = jnp.ones_like(ids)
    full = decoder(ids, mask, encoder_hidden_states=states, encoder_attention_mask=states_mask).logits
    module, params = decoder.module, decoder.params

    @jax.jit
    def step(cache, tokens, positions):
        out, state = module.apply({"params": params, "cache": cache}, tokens, mask, position_ids=positions,
                                  encoder_hidden_states=states, encoder_attention_mask=states_mask, decode=True,
                                  mutable=["cache"])
        return out.logits, state["cache"]

    # Prefill three tokens, then feed the rest one at a time.
    logits, cache = step(init_cache(module, 2, 7, states), ids[:, :3], jnp.arange(3)[None])
    pieces = [logits]
    for t in range(3, 7):
        logits, cache = step(cache, ids[:, t:t + 1], jnp.full((1, 1), t))
        pieces.append(logits)
    np.testing.assert_allclose(jnp.concatenate(pieces, axis=1), full, atol=1e-5)


def test_cached_greedy_equals_uncached_greedy(decoder, encoder_states):
    states, states_mask = encoder_states
    prompt = jnp.asarray([[5, 17, 42], [7, 8, 9]], jnp.int32)
    kwargs = dict(encoder_hidden_states=states, encoder_attention_mask=states_mask)
    cached = decoder.generate(prompt, 8, **kwargs)
    uncached = decoder.generate(prompt, 8, use_cache=False, **kwargs)
    assert cached.shape == (2, 11)
    np.testing.assert_array_equal(cached, uncached)
    np.testing.assert_array_equal(cached[:, :3], prompt)
    # Greedy picks the argmax of a full forward pass at every step.
    logits = decoder(cached, encoder_hidden_states=states, encoder_attention_mask=states_mask).logits
    np.testing.assert_array_equal(np.argmax(logits[:, 2:-1], -1), cached[:, 3:])


def test_sampling(decoder, encoder_states):
    states, states_mask = encoder_states
    prompt = jnp.asarray([[5, 17, 42], [7, 8, 9]], jnp.int32)
    kwargs = dict(encoder_hidden_states=states, encoder_attention_mask=states_mask)
    greedy = decoder.generate(prompt, 8, **kwargs)  # same shapes as above: compiled once
    top1 = decoder.generate(prompt, 8, do_sample=True, top_k=1, rng=jax.random.key(0), **kwargs)
    np.testing.assert_array_equal(top1, greedy)  # top_k=1 leaves only the argmax
    a = decoder.generate(prompt, 6, do_sample=True, temperature=5.0, rng=jax.random.key(1), **kwargs)
    b = decoder.generate(prompt, 6, do_sample=True, temperature=5.0, rng=jax.random.key(1), **kwargs)
    c = decoder.generate(prompt, 6, do_sample=True, temperature=5.0, rng=jax.random.key(2), **kwargs)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)  # 12 draws at high temperature: equal with probability ~(1/99)^12
    with pytest.raises(ValueError, match="needs rng"):
        decoder.generate(prompt, 2, do_sample=True, **kwargs)
    with pytest.raises(ValueError, match="max_position_embeddings"):
        decoder.generate(prompt, 100, **kwargs)


def test_left_padded_prompt_matches_unpadded(decoder, encoder_states):
    kwargs = dict(encoder_hidden_states=encoder_states[0][:1], encoder_attention_mask=encoder_states[1][:1])
    alone = decoder.generate(jnp.asarray([[11, 12]]), 5, **kwargs)
    padded = decoder.generate(jnp.asarray([[0, 0, 11, 12]]), 5, attention_mask=jnp.asarray([[0, 0, 1, 1]]), **kwargs)
    np.testing.assert_array_equal(padded[:, 2:], alone)
