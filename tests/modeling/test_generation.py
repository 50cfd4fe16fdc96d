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


def test_sampled_token_frequencies_follow_tempered_top_k_softmax(decoder, encoder_states):
    """4,000 independent draws of the first generated token (one prompt repeated over the batch)
    against softmax(logits / T) restricted to the top k. A token's count is Binomial(N, p): each
    must lie within 4 standard deviations of N p, and no draw may fall outside the top k."""
    draws, temperature, top_k = 4000, 0.7, 6
    # Spread the output bias so the next-token distribution is far from uniform (at std 0.02
    # initialisation the logits span only ~0.4, and temperature would barely show).
    params = jax.tree_util.tree_map(lambda x: x, decoder.params)
    vocab = decoder.config.vocab_size
    rank = np.random.default_rng(5).permutation(vocab)
    params["cls"]["predictions"]["bias"] = jnp.asarray(-0.4 * rank, jnp.float32)
    model = BertLMHeadModel(decoder.config, params=params)
    states, states_mask = encoder_states
    prompt = jnp.asarray([[5, 17, 42]], jnp.int32)
    logits = np.asarray(model(prompt, encoder_hidden_states=states[:1], encoder_attention_mask=states_mask[:1])
                        .logits[0, -1], np.float64)
    top = np.argsort(-logits)[:top_k]

    def restricted_softmax(t):
        p = np.zeros(vocab)
        z = logits[top] / t
        p[top] = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        return p

    expected = restricted_softmax(temperature)
    sd = np.sqrt(draws * expected * (1 - expected))
    # The check has power: ignoring the temperature would move some count by > 8 standard deviations.
    assert np.max(np.abs(draws * restricted_softmax(1.0) - draws * expected) / np.maximum(sd, 1e-9)) > 8

    batch = lambda x: jnp.broadcast_to(x, (draws,) + x.shape[1:])  # noqa: E731
    tokens = model.generate(batch(prompt), 1, do_sample=True, temperature=temperature, top_k=top_k,
                            rng=jax.random.key(7), encoder_hidden_states=batch(states[:1]),
                            encoder_attention_mask=batch(states_mask[:1]))
    counts = np.bincount(np.asarray(tokens[:, -1]), minlength=vocab)
    outside = np.setdiff1d(np.flatnonzero(counts), top)
    assert outside.size == 0, f"tokens {outside.tolist()} outside the top {top_k} {top.tolist()} were drawn " \
                              f"{counts[outside].tolist()} times"
    for token in top:
        assert abs(counts[token] - draws * expected[token]) <= 4 * sd[token], (
            f"token {token}: drawn {counts[token]} times of {draws}, expected {draws * expected[token]:.1f} "
            f"+- {sd[token]:.1f} (softmax(logits / {temperature}) over the top {top_k})")


def test_left_padded_prompt_matches_unpadded(decoder, encoder_states):
    kwargs = dict(encoder_hidden_states=encoder_states[0][:1], encoder_attention_mask=encoder_states[1][:1])
    alone = decoder.generate(jnp.asarray([[11, 12]]), 5, **kwargs)
    padded = decoder.generate(jnp.asarray([[0, 0, 11, 12]]), 5, attention_mask=jnp.asarray([[0, 0, 1, 1]]), **kwargs)
    np.testing.assert_array_equal(padded[:, 2:], alone)
