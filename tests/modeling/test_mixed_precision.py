"""Dense matmuls: bf16 compute with float32 accumulation and backward matmuls on bf16 operands; the
float32 backward in the form XLA runs fast on CPU."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bert_jax.config import BertConfig
from bert_jax.modeling import BertForPreTrainingModule
from bert_jax.modeling.layers import dot_general_for

DIMS = (((2,), (0,)), ((), ()))


def _operands():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, 5, 16)), jnp.bfloat16)
    w = jnp.asarray(rng.normal(size=(16, 8)), jnp.bfloat16)
    return x, w


def test_bf16_matmul_gradients_match_float32_reference():
    x, w = _operands()
    f = dot_general_for(jnp.bfloat16)
    ct = jnp.asarray(np.random.default_rng(1).normal(size=(2, 5, 8)), jnp.float32)
    ours = jax.grad(lambda a, b: (f(a, b, DIMS).astype(jnp.float32) * ct).sum(), argnums=(0, 1))(x, w)
    ref = jax.grad(lambda a, b: ((a.astype(jnp.float32) @ b.astype(jnp.float32)) * ct).sum(),
                   argnums=(0, 1))(x, w)
    for got, want in zip(ours, ref):
        assert got.dtype == jnp.bfloat16
        # Only the bf16 rounding of the cotangent and of the result separate the two.
        np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(want), rtol=2e-2, atol=5e-2)


@pytest.mark.parametrize("features", [(16, 8), (8, 16)])
def test_float32_dense_gradients_equal_autodiff_with_plain_weight_gradient_products(features):
    """Both weight-gradient forms (transpose the narrower of input and cotangent) give autodiff's
    gradients, and every backward product contracts its lhs's last axis (XLA's fast CPU form), in
    the jaxpr and in the program XLA compiles for the CPU (autodiff's ``x^T g`` contracts the
    leading token axis of both operands there: 3x slower)."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, 5, features[0])), jnp.float32)
    w = jnp.asarray(rng.normal(size=features), jnp.float32)
    ct = jnp.asarray(rng.normal(size=(2, 5, features[1])), jnp.float32)
    f = dot_general_for(jnp.float32)
    loss = lambda a, b: (f(a, b, DIMS) * ct).sum()  # noqa: E731
    ours = jax.grad(loss, argnums=(0, 1))(x, w)
    ref = jax.grad(lambda a, b: ((a @ b) * ct).sum(), argnums=(0, 1))(x, w)
    for got, want in zip(ours, ref):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    jaxpr = jax.make_jaxpr(jax.grad(loss, argnums=(0, 1)))(x, w)
    dots = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "dot_general"]
    assert len(dots) == 2
    for eqn in dots:
        (lhs_contract, _), _ = eqn.params["dimension_numbers"]
        assert tuple(lhs_contract) == (eqn.invars[0].aval.ndim - 1,), eqn
    if jax.default_backend() == "cpu":
        hlo = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(x, w).compile().as_text()
        compiled = re.findall(r"= (f32\[\d+,\d+\]\S*) dot\(.*?lhs_contracting_dims=\{([\d,]*)\}", hlo)
        assert len(compiled) == 2 and all(lhs == "1" for _, lhs in compiled), compiled


def test_bf16_backward_matmuls_take_bf16_operands():
    x, w = _operands()
    f = dot_general_for(jnp.bfloat16)
    jaxpr = jax.make_jaxpr(jax.grad(lambda a, b: f(a, b, DIMS).astype(jnp.float32).sum(), argnums=(0, 1)))(x, w)
    dots = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "dot_general"]
    assert len(dots) == 2  # the two backward products (the forward one sits inside the custom_vjp)
    for eqn in dots:
        assert all(v.aval.dtype == jnp.bfloat16 for v in eqn.invars), eqn
        assert eqn.params["preferred_element_type"] == jnp.float32


def test_bf16_model_close_to_float32_model(bf16_bound):
    """Unpadded inputs through the module: within the bf16 rounding bound of
    ``conftest.bf16_logit_bound`` (measured ~2.2x below it)."""
    cfg = BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=37, max_position_embeddings=64)
    ids = jnp.asarray(np.random.default_rng(0).integers(0, 99, (2, 16)), jnp.int32)
    params = BertForPreTrainingModule(cfg).init(jax.random.PRNGKey(0), ids)["params"]
    f32 = BertForPreTrainingModule(cfg).apply({"params": params}, ids)
    bf16 = BertForPreTrainingModule(cfg, dtype=jnp.bfloat16).apply({"params": params}, ids)
    assert bf16.prediction_logits.dtype == jnp.bfloat16
    reference = np.asarray(f32.prediction_logits)
    bound = bf16_bound(cfg.num_hidden_layers, reference)
    diff = float(np.abs(reference - np.asarray(bf16.prediction_logits, np.float32)).max())
    assert diff <= bound, f"bf16 logits differ from float32 by {diff:.3g} > rounding bound {bound:.3g}"
