"""The BERT encoder as Flax linen modules: embeddings, attention, layer, encoder, pooler.

Module and parameter names follow Hugging Face's ``modeling_flax_bert.py`` so a
parameter path maps mechanically onto a PyTorch state-dict key
(``encoder/layer/0/attention/self/query/kernel`` <-> ``encoder.layer.0.attention.self.query.weight``).
Every parameter carries logical axis names (see ``LOGICAL_AXES``) and the large
activations are constrained with them, so a sharding layout is a set of rules,
not a model edit.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import flax.linen as nn
from flax.core import meta

from bert_jax.config import BertConfig

# The closed vocabulary of logical axis names used by parameters and activations.
LOGICAL_AXES = {
    "vocab": "vocabulary rows of the word embedding / MLM output bias",
    "embed": "hidden_size (model width)",
    "heads": "num_heads * head_dim of the attention projections (the fused head axis of kernels)",
    "kv": "head_dim of per-head activations [batch, length, heads, kv]",
    "mlp": "intermediate_size of the feed-forward block",
    "batch": "examples of a batch (activations only)",
    "length": "sequence positions (activations only)",
    "layers": "stacked encoder layers (scan_layers=True only)",
}
# Square dense layers with no natural second axis (pooler, MLM transform) use
# ("embed", None): sharding both sides of a [hidden, hidden] matrix would force
# an all-gather per call and the matrix is small.

def _rotate_left(x: jax.Array, r: int) -> jax.Array:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def threefry2x32(k1: jax.Array, k2: jax.Array, x1: jax.Array, x2: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Threefry-2x32, 20 rounds (Salmon et al. 2011), as plain unrolled ``jnp`` ops.

    Bit-identical to ``jax.random``'s threefry hash (tested). JAX lowers its own for CPU as a
    rolled 5-iteration loop, which XLA cannot fuse with the ops around it: each iteration
    writes its two uint32 arrays to memory. Unrolled, the hash, the threshold and the select
    of a dropout mask become one elementwise loop.
    """
    ks = (k1, k2, k1 ^ k2 ^ np.uint32(0x1BD11BDA))
    x1, x2 = x1 + ks[0], x2 + ks[1]
    for i in range(5):
        for r in ((13, 15, 26, 6), (17, 29, 16, 24))[i % 2]:
            x1 = x1 + x2
            x2 = _rotate_left(x2, r) ^ x1
        x1 = x1 + ks[(i + 1) % 3]
        x2 = x2 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x1, x2


class DropoutTooLarge(ValueError):
    """A dropout mask whose rows need more random counters than ``uniform_16bit`` can number.

    Raised while a step is traced; the trainer traces its train step before writing anything
    and reports this as a configuration error.
    """


def uniform_16bit(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """``shape`` independent uniform uint16 draws: four per threefry counter.

    Each counter is a position of a ``shape[:-1] + (ceil(shape[-1] / 4),)`` array, as two words
    (``broadcasted_iota``): the index along the first axis and the flat position within the rest
    (so a batch may hold any number of rows; one row may hold up to 2**32 counters). A sharded
    activation computes only its own shard's draws, and the mask does not depend on the device
    count.
    """
    words = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    if words.shape != (2,):  # a non-threefry key implementation: take two words from it
        words = jax.random.bits(key, (2,), jnp.uint32)
    counters_shape = shape[:-1] + ((shape[-1] + 3) // 4,)
    within = counters_shape[1:] if len(counters_shape) > 1 else counters_shape
    if np.prod(within) >= 2 ** 32:
        raise DropoutTooLarge(f"dropout on {shape} needs more than 2**32 random counters within one row "
                              "(the axes after the first); use a shorter max_seq_length, or set that dropout "
                              "rate (e.g. model.attention_probs_dropout_prob) to 0")
    counter, stride = jnp.zeros(counters_shape, jnp.uint32), 1
    for axis in reversed(range(len(counters_shape) - len(within), len(counters_shape))):
        counter = counter + jax.lax.broadcasted_iota(jnp.uint32, counters_shape, axis) * np.uint32(stride)
        stride *= counters_shape[axis]
    row = (jax.lax.broadcasted_iota(jnp.uint32, counters_shape, 0) if len(within) < len(counters_shape)
           else jnp.zeros_like(counter))
    hi, lo = threefry2x32(words[0], words[1], counter, row)
    halves = jax.lax.bitcast_convert_type(jnp.stack([hi, lo], -1), jnp.uint16)  # [..., counters, 2, 2]
    return halves.reshape(shape[:-1] + (-1,))[..., : shape[-1]]


@jax.custom_vjp
def add_vocab_bias(logits: jax.Array, bias: jax.Array) -> jax.Array:
    """``logits [..., vocab] + bias [vocab]`` (same dtype), whose bias gradient is a matvec.

    Autodiff sums the cotangent over the leading axes with a reduce, which XLA's CPU backend
    runs ~12x slower than ``ones @ cotangent`` at a 30,522-wide vocabulary (40 vs 3.2 ms for
    [640, 30522]; 4% of a small-model train step). Same sum, other order.
    """
    return logits + bias


def _add_vocab_bias_fwd(logits, bias):
    return logits + bias, None


def _add_vocab_bias_bwd(_, g):
    flat = g.reshape(-1, g.shape[-1])  # a 2-D matvec: a dot over several axes is slow again
    ones = jnp.ones((flat.shape[0],), g.dtype)
    return g, jax.lax.dot(ones, flat, preferred_element_type=jnp.float32).astype(g.dtype)


add_vocab_bias.defvjp(_add_vocab_bias_fwd, _add_vocab_bias_bwd)


class Dropout(nn.Module):
    """Inverted dropout with 16-bit draws from a fused threefry hash.

    ``nn.Dropout`` draws one 32-bit word per element with ``random.bernoulli``, whose threefry
    JAX runs on CPU as an unfusable loop. Here each threefry call gives four 16-bit draws
    (``uniform_16bit``), compared with ``round(rate * 65536)`` (the rate is exact to 1/65,536);
    kept values are scaled by the inverse of the exact keep probability, so the expectation is
    unchanged. docs/benchmarks.md has the per-step cost against ``nn.Dropout``.
    """

    rate: float

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool) -> jax.Array:
        if deterministic or self.rate == 0.0:
            return x
        if self.rate >= 1.0:
            return jnp.zeros_like(x)
        threshold = round(self.rate * 65536)
        keep = uniform_16bit(self.make_rng("dropout"), x.shape) >= threshold
        scale = jnp.asarray(65536 / (65536 - threshold), x.dtype)
        return jnp.where(keep, x * scale, jnp.zeros((), x.dtype))


def gelu_erf(x: jax.Array) -> jax.Array:
    """Exact GELU, ``x / 2 * (1 + erf(x / sqrt(2)))``: torch's formula.

    ``jax.nn.gelu(approximate=False)`` evaluates ``erfc`` instead (more accurate relative to
    values below ~1e-6 in the negative tail), which XLA's CPU backend builds from an ``exp`` and
    selects: forward + backward over [4096, 1024] take 17 ms vs 7.5 ms here. The two differ by
    at most 1e-6 (absolute) in value and 3e-7 in gradient.
    """
    return x * 0.5 * (1 + jax.lax.erf(x * np.asarray(np.sqrt(0.5), x.dtype)))


ACTIVATIONS = {
    "gelu": gelu_erf,  # torch's exact erf GELU
    "gelu_new": functools.partial(jax.nn.gelu, approximate=True),
    "gelu_pytorch_tanh": functools.partial(jax.nn.gelu, approximate=True),
    "gelu_fast": functools.partial(jax.nn.gelu, approximate=True),
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "tanh": jnp.tanh,
}

Dtype = Any


def remat_policy_fn(name: str):
    """Maps a ``remat_policy`` name to (use_remat, jax checkpoint policy)."""
    if name == "none":
        return False, None
    if name == "full":
        return True, None
    policy = getattr(jax.checkpoint_policies, name, None)
    if policy is None or name.startswith("_"):
        names = [n for n in dir(jax.checkpoint_policies) if not n.startswith("_")]
        raise ValueError(f"Unknown remat_policy {name!r}; use 'none', 'full' or one of {names}.")
    if not _is_policy(policy):  # a factory that makes a policy from arguments (names, offload targets)
        raise ValueError(f"remat_policy {name!r} needs arguments; pass a policy that takes none, e.g. 'dots_saveable'.")
    return True, policy


def _is_policy(fn) -> bool:
    """A policy itself, called as ``policy(prim, *args, **params)``, not a factory of one."""
    import inspect
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return True
    # (prim, *args, **params), or (*_, **__) for the constant ones; factories take names or targets
    return bool(params) and (params[0].name == "prim" or any(p.kind is p.VAR_KEYWORD for p in params))


def accumulates_in_float32(dtype: Dtype) -> bool:
    """Whether matmuls in ``dtype`` should accumulate in float32 (bf16/fp16 compute)."""
    return jnp.dtype(dtype) in (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))


def _transposed(x2d: jax.Array) -> jax.Array:
    """``x2d.T`` as its own operand of a weight-gradient matmul (see ``_dense_matmul``).

    On CPU the transpose is kept from being folded into the dot (an optimization barrier, which
    XLA drops after its algebraic simplifier has run): folded, XLA's CPU kernel for a dot that
    contracts the leading axes of both operands runs at a third of the matmul rate (a
    [4096, 256] x [4096, 1024] weight gradient: 23 vs 8 ms on 2 cores). Accelerators contract
    any layout natively, so there it is left to XLA.
    """
    if jax.default_backend() != "cpu":
        return x2d.T
    return jax.lax.optimization_barrier(x2d.T)


def _dense_matmul(dtype: Dtype):
    """``x [..., in] @ w [in, out]`` on ``dtype`` inputs, output ``dtype``; bf16/fp16 inputs
    accumulate in float32.

    A custom VJP fixes the form of the two backward matmuls, both on ``dtype`` inputs (JAX's own
    transpose would multiply a float32 cotangent with a bf16 operand, which promotes both to a
    float32 matmul and loses bf16's speed-up there): ``g @ w^T``, and the weight gradient. In
    float32 that is a plain ``[m, tokens] @ [tokens, n]`` product that transposes the narrower
    of ``x [tokens, in]`` and ``g [tokens, out]`` (``_transposed``; transposing the wider one
    would also recompute its producer, e.g. the exact GELU, in transposed order). In bf16 XLA's
    own form of ``x^T g`` measured faster (with AMX: base step 1.50 vs 2.08 s), so it is kept.
    """
    low = accumulates_in_float32(dtype)

    def matmul(a, b, dims):
        if not low:
            return jax.lax.dot_general(a, b, dims)
        return jax.lax.dot_general(a, b, dims, preferred_element_type=jnp.float32).astype(dtype)

    @jax.custom_vjp
    def dot(x, w):
        return matmul(x, w, (((x.ndim - 1,), (0,)), ((), ())))

    def fwd(x, w):
        return dot(x, w), (x, w)

    def bwd(res, g):
        x, w = res
        g = g.astype(dtype)
        d_x = matmul(g, w, (((g.ndim - 1,), (1,)), ((), ())))  # [..., out] x [in, out] -> [..., in]
        if low:
            lead = tuple(range(x.ndim - 1))
            return d_x, matmul(x, g, ((lead, lead), ((), ())))  # [..., in] x [..., out] -> [in, out]
        x2d, g2d, plain = x.reshape(-1, x.shape[-1]), g.reshape(-1, g.shape[-1]), (((1,), (0,)), ((), ()))
        if x2d.shape[1] <= g2d.shape[1]:
            d_w = matmul(_transposed(x2d), g2d, plain)  # [in, tokens] x [tokens, out]
        else:
            d_w_t = matmul(_transposed(g2d), x2d, plain)  # [out, tokens] x [tokens, in]
            # (barrier: XLA would otherwise fold this transpose back into the dot's form)
            d_w = jax.lax.optimization_barrier(d_w_t).T
        return d_x, d_w.astype(w.dtype)

    dot.defvjp(fwd, bwd)
    return dot


def dot_general_for(dtype: Dtype):
    """``lax.dot_general`` for compute ``dtype`` (``nn.Dense``'s hook), with the backward pass of
    ``_dense_matmul``.

    Why float32 accumulation for low precision: a bf16 matmul with bf16 output is no faster than
    fp32 on CPUs and loses precision in the sum; bf16 inputs with
    ``preferred_element_type=float32`` run at about twice the fp32 rate on CPUs and are what
    TPUs/GPUs do natively. The result is cast back to ``dtype`` so activations stay low-precision.
    """
    dot = _dense_matmul(dtype)

    def dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None):
        (lc, rc), (lb, rb) = dimension_numbers
        if tuple(lc) != (lhs.ndim - 1,) or tuple(rc) != (0,) or lb or rb:
            raise NotImplementedError(f"dense matmul expected, got dimension_numbers={dimension_numbers}")
        return dot(lhs.astype(dtype), rhs.astype(dtype))

    return dot_general


def einsum(spec: str, a, b, dtype: Dtype):
    """``jnp.einsum`` in ``dtype`` with float32 accumulation for bf16/fp16 (see ``dot_general_for``).

    Used for the attention score/context products and the tied MLM decoder.
    """
    if not accumulates_in_float32(dtype):
        return jnp.einsum(spec, a, b)
    return jnp.einsum(spec, a, b, preferred_element_type=jnp.float32).astype(dtype)


def dense(config: BertConfig, features: int, axes: tuple, dtype: Dtype, param_dtype: Dtype,
          name: str, use_bias: bool = True) -> nn.Dense:
    """A Dense layer whose kernel [in, out] and bias [out] carry logical axis names."""
    init = nn.initializers.normal(stddev=config.initializer_range)
    return nn.Dense(
        features, use_bias=use_bias, dtype=dtype, param_dtype=param_dtype, name=name,
        dot_general=dot_general_for(dtype),
        kernel_init=nn.with_logical_partitioning(init, axes),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros, (axes[1],)))


def layer_norm(config: BertConfig, dtype: Dtype, param_dtype: Dtype, name: str = "LayerNorm") -> nn.LayerNorm:
    return nn.LayerNorm(
        epsilon=config.layer_norm_eps, dtype=dtype, param_dtype=param_dtype, name=name,
        scale_init=nn.with_logical_partitioning(nn.initializers.ones, ("embed",)),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("embed",)))


def unboxed(tree):
    """Strips logical-partitioning boxes (present during ``init``)."""
    return meta.unbox(tree)


class BertEmbeddings(nn.Module):
    """Word + token-type + position embeddings, LayerNorm, dropout -> [batch, length, hidden]."""

    config: BertConfig
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, input_ids, token_type_ids, position_ids, deterministic: bool = True):
        c = self.config
        init = nn.initializers.normal(stddev=c.initializer_range)

        def table(num, axes, name):
            return nn.Embed(num, c.hidden_size, dtype=self.dtype, param_dtype=self.param_dtype, name=name,
                            embedding_init=nn.with_logical_partitioning(init, axes))

        words = table(c.vocab_size, ("vocab", "embed"), "word_embeddings")(input_ids.astype(jnp.int32))
        types = table(c.type_vocab_size, (None, "embed"), "token_type_embeddings")(token_type_ids.astype(jnp.int32))
        positions = table(c.max_position_embeddings, (None, "embed"), "position_embeddings")(position_ids.astype(jnp.int32))
        # Same summation order as the PyTorch reference (words + types, then positions).
        hidden = (words + types) + positions
        hidden = layer_norm(c, self.dtype, self.param_dtype)(hidden)
        hidden = Dropout(c.hidden_dropout_prob)(hidden, deterministic=deterministic)
        return nn.with_logical_constraint(hidden, ("batch", "length", "embed"))


class BertSelfAttention(nn.Module):
    """Multi-head attention; self- or cross-attention, optional causal mask and decoding cache."""

    config: BertConfig
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    causal: bool = False

    @nn.compact
    def __call__(self, hidden, key_mask, kv_states=None, *, deterministic=True, output_attentions=False,
                 decode=False):
        """hidden [batch, q_len, hidden]; key_mask bool [batch, k_len], or [batch, q_len, k_len] for a
        per-query mask (packed rows: block-diagonal), or None (True = attend);
        kv_states [batch, k_len, hidden] for cross-attention. Returns ([batch, q_len, hidden], probs)."""
        c = self.config
        heads, head_dim = c.num_attention_heads, c.head_dim
        source = hidden if kv_states is None else kv_states

        def project(x, name):
            y = dense(c, c.hidden_size, ("embed", "heads"), self.dtype, self.param_dtype, name)(x)
            y = y.reshape(y.shape[:2] + (heads, head_dim))
            return nn.with_logical_constraint(y, ("batch", "length", "heads", "kv"))

        query, key, value = project(hidden, "query"), project(source, "key"), project(source, "value")
        q_len = query.shape[1]

        causal_mask = None  # [q_len, k_len]
        if kv_states is None and decode:
            key, value, causal_mask = self._update_cache(key, value, q_len)
        elif kv_states is None and self.causal:
            causal_mask = jnp.tril(jnp.ones((q_len, key.shape[1]), bool))
        mask = None  # [batch, 1, q_len, k_len]
        if key_mask is not None:
            mask = (key_mask[:, None] if key_mask.ndim == 3 else key_mask[:, None, None, :]).astype(bool)
        if causal_mask is not None:
            mask = causal_mask[None, None] if mask is None else mask & causal_mask[None, None]

        dropout_rate = c.attention_probs_dropout_prob
        if output_attentions or (not deterministic and dropout_rate > 0):
            # The fused kernel returns neither probabilities nor applies dropout to them.
            scores = einsum("bqhd,bkhd->bhqk", query, key, self.dtype) / jnp.sqrt(head_dim).astype(self.dtype)
            if mask is not None:
                # Add the dtype's minimum, as the PyTorch reference does.
                scores = scores + jnp.where(mask, 0.0, jnp.finfo(scores.dtype).min).astype(scores.dtype)
            probs = jax.nn.softmax(scores.astype(jnp.float32), axis=-1).astype(self.dtype)
            dropped = Dropout(dropout_rate)(probs, deterministic=deterministic)
            context = einsum("bhqk,bkhd->bqhd", dropped, value, self.dtype)
        else:
            probs = None
            context = jax.nn.dot_product_attention(query, key, value, mask=mask)
        context = nn.with_logical_constraint(context, ("batch", "length", "heads", "kv"))
        return context.reshape(context.shape[:2] + (c.hidden_size,)), probs

    def _update_cache(self, key, value, q_len):
        """Writes key/value [batch, q_len, heads, kv] at the cache index; returns the full cache
        [batch, max_length, heads, kv] and the causal mask [q_len, max_length]."""
        initialized = self.has_variable("cache", "cached_key")
        cached_key = self.variable("cache", "cached_key", jnp.zeros, key.shape, key.dtype)
        cached_value = self.variable("cache", "cached_value", jnp.zeros, value.shape, value.dtype)
        cache_index = self.variable("cache", "cache_index", lambda: jnp.array(0, jnp.int32))
        if not initialized:  # the init call only allocates a cache of the input's length
            return key, value, jnp.tril(jnp.ones((q_len, key.shape[1]), bool))
        index = cache_index.value
        key = jax.lax.dynamic_update_slice(cached_key.value, key, (0, index, 0, 0))
        value = jax.lax.dynamic_update_slice(cached_value.value, value, (0, index, 0, 0))
        cached_key.value, cached_value.value = key, value
        cache_index.value = index + q_len
        query_positions = index + jnp.arange(q_len)
        causal_mask = jnp.arange(key.shape[1])[None, :] <= query_positions[:, None]
        return key, value, causal_mask


class BertAttention(nn.Module):
    """``self`` (attention) + ``output`` (projection and residual LayerNorm)."""

    config: BertConfig
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    causal: bool = False

    @nn.compact
    def __call__(self, hidden, key_mask, kv_states=None, *, deterministic=True, output_attentions=False,
                 decode=False):
        context, probs = BertSelfAttention(self.config, self.dtype, self.param_dtype, self.causal, name="self")(
            hidden, key_mask, kv_states, deterministic=deterministic, output_attentions=output_attentions,
            decode=decode)
        out = BertOutput(self.config, self.dtype, self.param_dtype, in_axis="heads", name="output")(
            context, hidden, deterministic)
        return out, probs


def layer_forward(module: nn.Module, hidden, key_mask, encoder_hidden_states, encoder_mask, deterministic,
                  output_attentions, decode):
    """The body of one transformer block, creating its submodules inside ``module``.

    Shared by ``BertLayer`` (a Python loop of layers) and the scanned layer stack,
    so both build identical parameter names. Returns (hidden, self probs, cross probs)."""
    c, dtype, param_dtype = module.config, module.dtype, module.param_dtype
    hidden, self_probs = BertAttention(c, dtype, param_dtype, c.is_decoder, name="attention")(
        hidden, key_mask, deterministic=deterministic, output_attentions=output_attentions, decode=decode)
    cross_probs = None
    if c.add_cross_attention and encoder_hidden_states is not None:
        hidden, cross_probs = BertAttention(c, dtype, param_dtype, name="crossattention")(
            hidden, encoder_mask, encoder_hidden_states, deterministic=deterministic,
            output_attentions=output_attentions)
    intermediate = BertIntermediate(c, dtype, param_dtype, name="intermediate")(hidden)
    hidden = BertOutput(c, dtype, param_dtype, name="output")(intermediate, hidden, deterministic)
    return hidden, self_probs, cross_probs


class BertLayer(nn.Module):
    """One transformer block: self-attention, optional cross-attention, feed-forward."""

    config: BertConfig
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, hidden, key_mask, encoder_hidden_states, encoder_mask, deterministic=True,
                 output_attentions=False, decode=False):
        """hidden [batch, length, hidden] -> (hidden, self-attention probs, cross-attention probs).

        Positional arguments only, so ``nn.remat`` can mark the booleans static."""
        return layer_forward(self, hidden, key_mask, encoder_hidden_states, encoder_mask, deterministic,
                             output_attentions, decode)


class BertIntermediate(nn.Module):
    """Feed-forward expansion: dense to intermediate_size and the activation."""

    config: BertConfig
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, hidden):
        c = self.config
        hidden = dense(c, c.intermediate_size, ("embed", "mlp"), self.dtype, self.param_dtype, "dense")(hidden)
        hidden = ACTIVATIONS[c.hidden_act](hidden)
        return nn.with_logical_constraint(hidden, ("batch", "length", "mlp"))


class BertOutput(nn.Module):
    """Projection back to hidden_size, dropout, residual LayerNorm: the feed-forward ``output``
    (``in_axis="mlp"``) and the attention ``output`` (``in_axis="heads"``)."""

    config: BertConfig
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    in_axis: str = "mlp"

    @nn.compact
    def __call__(self, inputs, residual, deterministic=True):
        c = self.config
        hidden = dense(c, c.hidden_size, (self.in_axis, "embed"), self.dtype, self.param_dtype, "dense")(inputs)
        hidden = Dropout(c.hidden_dropout_prob)(hidden, deterministic=deterministic)
        hidden = layer_norm(c, self.dtype, self.param_dtype)(hidden + residual)
        return nn.with_logical_constraint(hidden, ("batch", "length", "embed"))


class BertPooler(nn.Module):
    """tanh(dense(first token)) -> [batch, hidden]; with ``positions`` int [batch, k], the tokens at
    those positions (each packed instance's [CLS]) -> [batch, k, hidden]."""

    config: BertConfig
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, hidden, positions=None):
        c = self.config
        if positions is None:
            first = hidden[:, 0]
        else:
            first = jnp.take_along_axis(hidden, positions.astype(jnp.int32)[..., None], axis=1)
        return jnp.tanh(dense(c, c.hidden_size, ("embed", None), self.dtype, self.param_dtype, "dense")(first))
