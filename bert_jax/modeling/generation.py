"""Incremental decoding for ``BertLMHeadModel``: cache allocation and ``generate``.

The key/value cache lives in Flax's ``cache`` collection (as Hugging Face's Flax
BERT): each self-attention keeps ``cached_key``/``cached_value``
[batch, max_length, heads, kv] and a ``cache_index``. The prompt is run once
(prefill), then one token per step inside ``lax.fori_loop``. ``use_cache=False``
recomputes the whole prefix each step; it exists to check the cache.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import flax.linen as nn


def init_cache(module: nn.Module, batch_size: int, max_length: int, encoder_hidden_states=None) -> dict:
    """Zeroed cache collection for sequences of up to ``max_length`` tokens."""
    ids = jnp.zeros((batch_size, max_length), jnp.int32)
    shapes = jax.eval_shape(lambda r: module.init({"params": r}, ids, jnp.ones_like(ids), decode=True,
                                                  encoder_hidden_states=encoder_hidden_states),
                            jax.random.key(0))["cache"]
    return jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def _choose(logits, rng, do_sample, temperature, top_k):
    """logits [batch, vocab] -> token ids [batch]."""
    if not do_sample:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    logits = logits.astype(jnp.float32) / temperature
    if top_k is not None:
        kth = jax.lax.top_k(logits, top_k)[0][:, -1:]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    return jax.random.categorical(rng, logits, axis=-1).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("module", "max_new_tokens", "do_sample", "top_k", "use_cache"))
def _generate(module, params, input_ids, attention_mask, rng, temperature, encoder_hidden_states,
              encoder_attention_mask, *, max_new_tokens, do_sample, top_k, use_cache):
    batch, prompt_len = input_ids.shape
    total = prompt_len + max_new_tokens
    full_mask = jnp.concatenate([attention_mask, jnp.ones((batch, max_new_tokens), attention_mask.dtype)], axis=1)
    # Left padding: positions count real tokens only, as the model saw in training.
    positions = jnp.clip(jnp.cumsum(full_mask, axis=1) - 1, 0)
    tokens = jnp.zeros((batch, total), jnp.int32).at[:, :prompt_len].set(input_ids)
    cross = dict(encoder_hidden_states=encoder_hidden_states, encoder_attention_mask=encoder_attention_mask)
    keys = jax.random.split(rng, max_new_tokens)

    if use_cache:
        cache = init_cache(module, batch, total, encoder_hidden_states)
        out, state = module.apply({"params": params, "cache": cache}, input_ids, full_mask,
                                  position_ids=positions[:, :prompt_len], decode=True, mutable=["cache"], **cross)
        first = _choose(out.logits[:, -1], keys[0], do_sample, temperature, top_k)
        tokens = tokens.at[:, prompt_len].set(first)

        def step(i, carry):
            tokens, cache = carry
            index = prompt_len + i - 1  # the token just written, fed back in
            token = jax.lax.dynamic_slice_in_dim(tokens, index, 1, axis=1)
            position = jax.lax.dynamic_slice_in_dim(positions, index, 1, axis=1)
            out, state = module.apply({"params": params, "cache": cache}, token, full_mask, position_ids=position,
                                      decode=True, mutable=["cache"], **cross)
            nxt = _choose(out.logits[:, -1], keys[i], do_sample, temperature, top_k)
            return tokens.at[:, index + 1].set(nxt), state["cache"]

        tokens, _ = jax.lax.fori_loop(1, max_new_tokens, step, (tokens, state["cache"]))
        return tokens

    def step(i, tokens):
        # The causal mask keeps the not-yet-written positions from influencing earlier ones.
        out = module.apply({"params": params}, tokens, full_mask, position_ids=positions, **cross)
        logits = jax.lax.dynamic_index_in_dim(out.logits, prompt_len + i - 1, axis=1, keepdims=False)
        return tokens.at[:, prompt_len + i].set(_choose(logits, keys[i], do_sample, temperature, top_k))

    return jax.lax.fori_loop(0, max_new_tokens, step, tokens)


def generate(module: nn.Module, params: dict, input_ids: jax.Array, max_new_tokens: int, *, attention_mask=None,
             do_sample: bool = False, temperature: float = 1.0, top_k: int | None = None, rng=None,
             encoder_hidden_states=None, encoder_attention_mask=None, use_cache: bool = True) -> jax.Array:
    """Continues ``input_ids`` int [batch, prompt_length] by ``max_new_tokens`` tokens.

    Args:
      attention_mask: [batch, prompt_length]; prompts of unequal length must be left-padded.
      do_sample: sample from softmax(logits / temperature), restricted to the ``top_k`` most
        likely tokens when given; otherwise greedy. Sampling needs ``rng``.
      encoder_hidden_states/encoder_attention_mask: the encoder's output for cross-attention.
    Returns:
      int [batch, prompt_length + max_new_tokens].
    """
    config = module.config
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}.")
    if input_ids.shape[1] + max_new_tokens > config.max_position_embeddings:
        raise ValueError(f"prompt length {input_ids.shape[1]} + max_new_tokens {max_new_tokens} exceeds "
                         f"max_position_embeddings={config.max_position_embeddings}.")
    if do_sample and rng is None:
        raise ValueError("do_sample=True needs rng (a jax.random key).")
    if do_sample and not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}.")
    if attention_mask is None:
        attention_mask = jnp.ones_like(input_ids)
    rng = jax.random.key(0) if rng is None else rng
    return _generate(module, params, input_ids.astype(jnp.int32), jnp.asarray(attention_mask, jnp.int32), rng,
                     jnp.float32(temperature), encoder_hidden_states, encoder_attention_mask,
                     max_new_tokens=max_new_tokens, do_sample=do_sample, top_k=top_k, use_cache=use_cache)
