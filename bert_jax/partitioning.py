"""Device mesh, logical-axis rules and shardings for train state and batches.

The mesh always has the three axes ``("data", "fsdp", "tensor")``; their sizes
come from config (``-1`` = whatever devices remain). Model code names array
dimensions with a closed vocabulary of logical axes (``vocab, embed, mlp,
heads, kv, layers`` for parameters; ``batch, length, embed, heads, kv, mlp``
for activations); ``rules`` map those names to mesh axes, so data parallel,
FSDP and tensor parallel are config choices, not code changes:

  * data parallel: mesh ``(N, 1, 1)``;
  * FSDP: mesh ``(1, N, 1)`` -- ``embed`` dimensions of parameters and of the
    optimizer state are split over ``fsdp``; the batch is split over both;
  * tensor parallel: mesh ``(1, 1, N)`` -- ``heads``/``mlp``/``vocab`` split.

A dimension whose size a mesh axis does not divide is replicated along that
axis instead (e.g. 2 attention heads on ``tensor=4``); that costs memory, never
correctness.

Also here: ``make_global_batch`` (global arrays from each process's rows) and
``maybe_initialize_distributed`` (``jax.distributed`` from config / environment).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

MESH_AXES = ("data", "fsdp", "tensor")
DATA_AXES = ("data", "fsdp")  # the batch dimension is split over both

# logical axis -> mesh axis (or tuple of mesh axes, or None = replicated).
DEFAULT_RULES: tuple[tuple[str, Any], ...] = (
    ("batch", ("data", "fsdp")),
    ("length", None),
    ("embed", "fsdp"),
    ("vocab", "tensor"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv", None),
    ("layers", None),
)

log = logging.getLogger(__name__)


def resolve_mesh_shape(mesh_shape: Sequence[int], num_devices: int) -> tuple[int, int, int]:
    """Replace a single ``-1`` by the remaining device count and validate.

    Raises:
      ValueError naming the mesh and device count when the product does not
      equal the number of devices.
    """
    shape = [int(s) for s in mesh_shape]
    if len(shape) != len(MESH_AXES):
        raise ValueError(
            f"mesh_shape {tuple(shape)} must have 3 entries for axes {MESH_AXES}; "
            "set --config.mesh_shape='(-1,1,1)' for pure data parallelism."
        )
    if sum(s == -1 for s in shape) > 1:
        raise ValueError(f"mesh_shape {tuple(shape)}: at most one entry may be -1.")
    if any(s == 0 or s < -1 for s in shape):
        raise ValueError(f"mesh_shape {tuple(shape)}: sizes must be positive or -1.")
    known = int(np.prod([s for s in shape if s != -1]))
    if -1 in shape:
        if num_devices % known:
            raise ValueError(
                f"mesh_shape {tuple(shape)} does not divide the {num_devices} devices "
                f"(the fixed axes multiply to {known}); choose sizes whose product divides "
                f"{num_devices}."
            )
        shape[shape.index(-1)] = num_devices // known
    if int(np.prod(shape)) != num_devices:
        raise ValueError(
            f"mesh_shape {tuple(shape)} (= {int(np.prod(shape))} devices) does not match the "
            f"{num_devices} available devices; make the product {num_devices} or use -1 for one axis."
        )
    return tuple(shape)  # type: ignore[return-value]


def make_mesh(mesh_shape: Sequence[int], devices: Sequence[Any] | None = None) -> Mesh:
    """A ``Mesh`` over ``devices`` (default: all) with axes ``data, fsdp, tensor``."""
    devices = list(jax.devices() if devices is None else devices)
    shape = resolve_mesh_shape(mesh_shape, len(devices))
    try:
        # Topology-aware order on TPU/GPU (neighbours on the fast interconnect).
        from jax.experimental import mesh_utils
        grid = mesh_utils.create_device_mesh(shape, devices=devices)
    except (ValueError, NotImplementedError, AssertionError):
        grid = np.asarray(devices, dtype=object).reshape(shape)
    return Mesh(grid, MESH_AXES)


def rules_from_config(rules: Any) -> tuple[tuple[str, Any], ...]:
    """Normalise config rules (list of pairs; lists become tuples) or use defaults."""
    if not rules:
        return DEFAULT_RULES
    out = []
    for name, target in rules:
        if isinstance(target, list):
            target = tuple(target)
        out.append((str(name), target))
    return tuple(out)


def data_parallel_size(mesh: Mesh) -> int:
    """Number of batch shards (``data * fsdp``)."""
    return int(mesh.shape["data"] * mesh.shape["fsdp"])


def _axis_size(mesh: Mesh, target) -> int:
    if target is None:
        return 1
    if isinstance(target, str):
        return int(mesh.shape[target])
    return int(np.prod([mesh.shape[t] for t in target]))


def logical_to_spec(logical: Sequence[str | None], shape: Sequence[int], mesh: Mesh,
                    rules: Sequence[tuple[str, Any]]) -> P:
    """Mesh ``PartitionSpec`` for one array with logical axis names.

    Each mesh axis is used at most once (first dimension wins); a dimension not
    divisible by its mesh axes is replicated.
    """
    table = dict(rules)
    used: set[str] = set()
    spec = []
    for name, size in zip(logical, shape):
        target = table.get(name) if name is not None else None
        if target is not None:
            axes = (target,) if isinstance(target, str) else tuple(target)
            axes = tuple(a for a in axes if a not in used and mesh.shape[a] > 1)
            if axes and size % _axis_size(mesh, axes) == 0:
                used.update(axes)
                spec.append(axes[0] if len(axes) == 1 else axes)
                continue
        spec.append(None)
    return P(*spec)


def _is_boxed(x) -> bool:
    import flax.linen as nn  # local: keeps this module importable without flax models
    return isinstance(x, nn.Partitioned)


def logical_axes(boxed_tree) -> Any:
    """Tree of logical-axis-name tuples (or ``None``) from a boxed param tree."""
    return jax.tree_util.tree_map(
        lambda x: tuple(x.names) if _is_boxed(x) else None, boxed_tree, is_leaf=_is_boxed)


def unbox(tree) -> Any:
    """Strip ``nn.Partitioned`` boxes, leaving plain arrays."""
    return jax.tree_util.tree_map(lambda x: x.unbox() if _is_boxed(x) else x, tree,
                                  is_leaf=_is_boxed)


def shardings_for(abstract_tree, axes_tree, mesh: Mesh, rules) -> Any:
    """``NamedSharding``s for an (unboxed) abstract tree given its logical axes.

    ``axes_tree`` may be a prefix of ``abstract_tree`` entries set to ``None``
    (replicated).
    """
    def one(x, axes):
        if axes is None or not hasattr(x, "shape") or len(x.shape) == 0:
            return NamedSharding(mesh, P())
        return NamedSharding(mesh, logical_to_spec(axes, x.shape, mesh, rules))
    return jax.tree_util.tree_map(one, abstract_tree, axes_tree,
                                  is_leaf=lambda a: a is None)


def batch_sharding(mesh: Mesh, ndim: int = 2, leading: int = 0) -> NamedSharding:
    """Sharding for a batch array: the batch dimension (after ``leading``
    replicated dims, e.g. a microbatch axis) is split over ``data`` x ``fsdp``."""
    spec = [None] * leading + [DATA_AXES] + [None] * (ndim - leading - 1)
    return NamedSharding(mesh, P(*spec))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def make_global_batch(local_batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Assemble global arrays from this process's rows of the batch.

    Each process passes only the rows it read (``[local_batch, ...]``); the
    result has the global batch size and is split over ``data`` x ``fsdp``.
    """
    out = {}
    for key, value in local_batch.items():
        value = np.asarray(value)
        sharding = batch_sharding(mesh, value.ndim)
        out[key] = jax.make_array_from_process_local_data(sharding, value)
    return out


def maybe_initialize_distributed(d) -> None:
    """``jax.distributed.initialize`` when asked or when the environment is multi-host.

    Args:
      d: the ``distributed`` config block (``initialize``, ``coordinator_address``,
        ``num_processes``, ``process_id``).

    Must run before any other JAX call. With ``initialize="auto"`` it runs when the
    config gives a coordinator or a known cluster environment is detected (TPU pod
    metadata, SLURM, ``JAX_COORDINATOR_ADDRESS``); JAX then reads the rest itself.
    """
    if d.initialize not in ("auto", "yes", "no"):
        raise ValueError(f"distributed.initialize={d.initialize!r}; use 'auto', 'yes' or 'no'.")
    explicit = bool(d.coordinator_address)
    env = any(v in os.environ for v in ("JAX_COORDINATOR_ADDRESS", "SLURM_JOB_ID", "TPU_WORKER_HOSTNAMES",
                                          "MEGASCALE_COORDINATOR_ADDRESS"))
    if d.initialize == "no" or (d.initialize == "auto" and not (explicit or env)):
        return
    kwargs = {}
    if explicit:
        kwargs["coordinator_address"] = d.coordinator_address
    if d.num_processes > 0:
        kwargs["num_processes"] = int(d.num_processes)
    if d.process_id >= 0:
        kwargs["process_id"] = int(d.process_id)
    # Only affects the CPU backend (cross-process CPU collectives); harmless elsewhere.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(**kwargs)
    except ValueError as e:  # JAX names its own arguments ("coordinator_address should be defined")
        if explicit or env:
            raise
        raise ValueError(f"distributed.initialize=yes found no cluster to join ({e}): set "
                         "--config.distributed.coordinator_address=HOST:PORT, distributed.num_processes and "
                         "distributed.process_id on every process (docs/gpu_cluster.md), or run under SLURM or on "
                         "a TPU pod, where they are found.") from None
    logging.getLogger("bert_jax").info("distributed: process %d of %d", jax.process_index(), jax.process_count())
