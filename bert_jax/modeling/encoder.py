"""The layer stack (``encoder/layer``): a Python loop of layers, or one scanned layer.

Loop (default): parameters ``encoder/layer/{i}/...`` exactly as Hugging Face.
Scan (``scan_layers=True``): one layer body under ``nn.scan``, parameters stacked
under ``encoder/layer/...`` with a leading ``layers`` axis [num_layers, ...]; the
graph holds a single layer, so compile time stops growing with depth.
``bert_jax.convert.hf`` stacks / unstacks between the two layouts. Either form can
be rematerialised with a ``jax.checkpoint_policies`` policy.
"""

from __future__ import annotations

import jax.numpy as jnp
import flax.linen as nn

from bert_jax.config import BertConfig
from bert_jax.modeling.layers import BertLayer, Dtype, layer_forward, remat_policy_fn


class BertLayerCollection(nn.Module):
    """The stack of layers, named ``"0"``, ``"1"``, ... as Hugging Face does."""

    config: BertConfig
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    remat_policy: str = "none"

    @nn.compact
    def __call__(self, hidden, key_mask, encoder_hidden_states=None, encoder_mask=None, *, deterministic=True,
                 output_hidden_states=False, output_attentions=False, decode=False):
        use_remat, policy = remat_policy_fn(self.remat_policy)
        layer_cls = BertLayer
        if use_remat:
            # Argument 0 is the module itself; 5-7 are the Python booleans.
            layer_cls = nn.remat(BertLayer, policy=policy, static_argnums=(5, 6, 7))
        all_hidden = (hidden,) if output_hidden_states else None
        all_attn = () if output_attentions else None
        all_cross = () if output_attentions and encoder_hidden_states is not None else None
        for i in range(self.config.num_hidden_layers):
            hidden, probs, cross = layer_cls(self.config, self.dtype, self.param_dtype, name=str(i))(
                hidden, key_mask, encoder_hidden_states, encoder_mask, deterministic, output_attentions, decode)
            if output_hidden_states:
                all_hidden += (hidden,)
            if output_attentions:
                all_attn += (probs,)
                if all_cross is not None:
                    all_cross += (cross,)
        return hidden, all_hidden, all_attn, all_cross


class BertScanLayer(nn.Module):
    """One layer in ``nn.scan`` form: carry = hidden, per-layer outputs = (hidden, probs, cross)."""

    config: BertConfig
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    deterministic: bool = True
    output_hidden_states: bool = False
    output_attentions: bool = False
    decode: bool = False

    @nn.compact
    def __call__(self, hidden, key_mask, encoder_hidden_states, encoder_mask):
        hidden, probs, cross = layer_forward(self, hidden, key_mask, encoder_hidden_states, encoder_mask,
                                             self.deterministic, self.output_attentions, self.decode)
        return hidden, (hidden if self.output_hidden_states else None, probs, cross)


def scanned_layers(module: nn.Module, hidden, key_mask, encoder_hidden_states=None, encoder_mask=None, *,
                   deterministic=True, output_hidden_states=False, output_attentions=False, decode=False):
    """The stack as one scanned layer named ``layer`` inside ``module``; same outputs as
    ``BertLayerCollection``. Called from a compact method of ``module``."""
    config = module.config
    use_remat, policy = remat_policy_fn(module.remat_policy)
    body = nn.remat(BertScanLayer, policy=policy, prevent_cse=False) if use_remat else BertScanLayer
    stack = nn.scan(body, variable_axes={"params": 0, "cache": 0}, split_rngs={"params": True, "dropout": True},
                    in_axes=(nn.broadcast, nn.broadcast, nn.broadcast), length=config.num_hidden_layers,
                    metadata_params={nn.PARTITION_NAME: "layers"})
    first = hidden
    hidden, (per_layer, probs, cross) = stack(
        config, module.dtype, module.param_dtype, deterministic, output_hidden_states, output_attentions, decode,
        name="layer")(hidden, key_mask, encoder_hidden_states, encoder_mask)
    n = config.num_hidden_layers
    all_hidden = (first,) + tuple(per_layer[i] for i in range(n)) if output_hidden_states else None
    all_attn = tuple(probs[i] for i in range(n)) if output_attentions else None
    all_cross = tuple(cross[i] for i in range(n)) if output_attentions and cross is not None else None
    return hidden, all_hidden, all_attn, all_cross


class BertEncoder(nn.Module):
    """``encoder``: holds the layer stack under ``layer`` (Hugging Face's path)."""

    config: BertConfig
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    remat_policy: str = "none"
    scan_layers: bool = False

    @nn.compact
    def __call__(self, hidden, key_mask, encoder_hidden_states=None, encoder_mask=None, **kw):
        if self.scan_layers:
            return scanned_layers(self, hidden, key_mask, encoder_hidden_states, encoder_mask, **kw)
        return BertLayerCollection(self.config, self.dtype, self.param_dtype, self.remat_policy, name="layer")(
            hidden, key_mask, encoder_hidden_states, encoder_mask, **kw)
