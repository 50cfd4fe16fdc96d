"""Mesh shapes, logical-axis rules and their refusals (single process)."""

import pytest

jax = pytest.importorskip("jax")
from jax.sharding import PartitionSpec as P  # noqa: E402

from bert_jax import partitioning  # noqa: E402


def test_resolve_mesh_shape():
    assert partitioning.resolve_mesh_shape((-1, 1, 1), 8) == (8, 1, 1)
    assert partitioning.resolve_mesh_shape((2, -1, 2), 8) == (2, 2, 2)
    assert partitioning.resolve_mesh_shape((1, 1, 8), 8) == (1, 1, 8)


@pytest.mark.parametrize("shape,devices,match", [
    ((3, 1, 1), 8, "does not match the 8 available devices"),
    ((3, -1, 1), 8, "does not divide the 8 devices"),
    ((-1, -1, 1), 8, "at most one entry may be -1"),
    ((2, 2), 4, "must have 3 entries"),
])
def test_bad_mesh_shapes(shape, devices, match):
    with pytest.raises(ValueError, match=match):
        partitioning.resolve_mesh_shape(shape, devices)


class _FakeMesh:
    def __init__(self, **shape):
        self.shape = shape


def test_logical_to_spec_uses_rules_and_replicates_indivisible():
    mesh = _FakeMesh(data=2, fsdp=2, tensor=2)
    rules = partitioning.DEFAULT_RULES
    assert partitioning.logical_to_spec(("embed", "mlp"), (32, 64), mesh, rules) == P("fsdp", "tensor")
    assert partitioning.logical_to_spec(("vocab", "embed"), (97, 32), mesh, rules) == P(None, "fsdp")
    assert partitioning.logical_to_spec(("batch", "length"), (8, 16), mesh, rules) == P(("data", "fsdp"), None)
    # a mesh axis is used once per array
    assert partitioning.logical_to_spec(("embed", "embed"), (32, 32), mesh, rules) == P("fsdp", None)
    # size-1 mesh axes are dropped
    assert partitioning.logical_to_spec(("embed", "mlp"), (32, 64), _FakeMesh(data=8, fsdp=1, tensor=1),
                                        rules) == P(None, None)


def test_rules_from_config():
    assert partitioning.rules_from_config(()) == partitioning.DEFAULT_RULES
    assert partitioning.rules_from_config([["embed", None], ["batch", ["data"]]]) == \
        (("embed", None), ("batch", ("data",)))
