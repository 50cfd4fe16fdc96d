"""A sharded training step equals the single-device step, on 8 simulated CPU
devices (and on 2 processes x 4 devices): the loss, grad_norm and raw gradients
equal a reference gradient taken outside ``train_step``, the parameters after
the step agree, and parameters and Adam moments are split as the logical-axis
rules say. Gradient accumulation equals one step on the full batch.

JAX fixes its device count at import, so the multi-device runs happen in
subprocesses (``worker.py``) with ``XLA_FLAGS`` set.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

jax = pytest.importorskip("jax")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WORKER = os.path.join(HERE, "worker.py")
MESHES = ["8,1,1", "2,4,1", "2,2,2", "1,1,8"]


def _env(devices):
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _load(out, mesh, what="params"):
    return dict(np.load(os.path.join(out, f"{what}_{mesh.replace(',', 'x')}.npz")))


def assert_same_params(got, want):
    """Within 1e-5 relative; the 1e-7 absolute floor covers parameters whose gradient is
    exactly zero in theory (attention key biases), where Adam turns ~1e-10 noise into steps."""
    assert got.keys() == want.keys()
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-7, err_msg=k)


def assert_same_gradients(got, want):
    """Every raw gradient within 1e-5 relative of the reference (floor: 1e-5 of the
    leaf's largest entry, for entries that are float noise around zero)."""
    assert got.keys() == want.keys() and len(want) == 46
    for k in want:
        scale = float(np.max(np.abs(want[k])))
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-5 * scale + 1e-12, err_msg=k)


def close(a, b, rtol=1e-5):
    return abs(a - b) <= rtol * abs(b)


@pytest.fixture(scope="module")
def eight_device_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("meshes"))
    subprocess.run([sys.executable, WORKER, "step", "--meshes", "1,1,1", *MESHES, "--out", out],
                   env=_env(8), check=True, capture_output=True, timeout=600)
    with open(os.path.join(out, "results.json")) as f:
        return out, json.load(f)


@pytest.mark.parametrize("mesh", ["1,1,1", *MESHES])
def test_sharded_step_equals_single_device(eight_device_run, mesh):
    """Loss, grad_norm and every raw gradient equal a single-device gradient taken outside
    ``train_step`` (so a scale error common to all meshes, e.g. summing instead of
    averaging over devices, is caught); parameters after the LAMB step equal 1,1,1's."""
    out, results = eight_device_run
    ref = results["reference"]
    assert results[mesh]["devices"] == int(np.prod([int(s) for s in mesh.split(",")]))
    assert close(results[mesh]["loss"], ref["loss"]) and close(results[mesh]["loss"], results["1,1,1"]["loss"])
    assert close(results[mesh]["grad_norm"], ref["grad_norm"]), (results[mesh]["grad_norm"], ref["grad_norm"])
    assert_same_gradients(_load(out, mesh, "grads"), dict(np.load(os.path.join(out, "grads_reference.npz"))))
    assert_same_params(_load(out, mesh), _load(out, "1,1,1"))


LAYER0 = "bert/encoder/layer/0/"
EXPECTED_SPECS = {  # parameter -> PartitionSpec (one entry per dimension) under DEFAULT_RULES
    "8,1,1": {"bert/embeddings/word_embeddings/embedding": [None, None],
              LAYER0 + "intermediate/dense/kernel": [None, None]},
    "2,4,1": {"bert/embeddings/word_embeddings/embedding": [None, "fsdp"],  # embed 32 / fsdp 4
              LAYER0 + "attention/self/query/kernel": ["fsdp", None],
              LAYER0 + "intermediate/dense/kernel": ["fsdp", None],
              LAYER0 + "output/dense/kernel": [None, "fsdp"]},
    "2,2,2": {"bert/embeddings/word_embeddings/embedding": [None, "fsdp"],  # vocab 97 is odd: not split
              LAYER0 + "attention/self/query/kernel": ["fsdp", "tensor"],
              LAYER0 + "intermediate/dense/kernel": ["fsdp", "tensor"],
              LAYER0 + "output/dense/kernel": ["tensor", "fsdp"]},
    "1,1,8": {"bert/embeddings/word_embeddings/embedding": [None, None],
              LAYER0 + "attention/self/query/kernel": [None, "tensor"],  # 32 = 4 heads x 8
              LAYER0 + "intermediate/dense/kernel": [None, "tensor"],  # mlp 64 / 8
              LAYER0 + "output/dense/kernel": ["tensor", None],
              "cls/predictions/bias": [None]},
}


@pytest.mark.parametrize("mesh", MESHES)
def test_state_is_sharded_as_the_rules_say(eight_device_run, mesh):
    """After a step the parameters are split along the mesh axes their logical axes map
    to (one device holds the matching fraction), and both Adam moments of every
    parameter are sharded exactly like it."""
    out, results = eight_device_run
    sh = results[mesh]["shardings"]
    full = _load(out, "1,1,1")
    sizes = dict(zip(("data", "fsdp", "tensor"), (int(s) for s in mesh.split(","))))
    for name, spec in EXPECTED_SPECS[mesh].items():
        assert sh["params"][name] == spec, (name, sh["params"][name])
    for name, spec in sh["params"].items():
        want = [d // (sizes[a] if a else 1) for d, a in zip(full[name].shape, spec)]
        assert sh["shard_shapes"][name] == want, (name, sh["shard_shapes"][name], want)
        assert sh["moments"][name] == [spec, spec], (name, sh["moments"][name])
    split = [n for n, spec in sh["params"].items() if any(spec)]
    if mesh != "8,1,1":
        assert len(split) >= 20, split  # every layer's kernels, not one stray array


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_equal_one(eight_device_run, tmp_path):
    """2 processes x 4 devices (gloo collectives over localhost) == 1 process x 8 devices."""
    ref_out, ref = eight_device_run
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, WORKER, "step", "--meshes", "8,1,1", "2,2,2", "--out", str(tmp_path),
                               "--process-id", str(i), "--num-processes", "2", "--port", str(port)],
                              env=_env(4), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for i in range(2)]
    for p in procs:
        out, _ = p.communicate(timeout=600)
        assert p.returncode == 0, out.decode()[-3000:]
    with open(tmp_path / "results.json") as f:
        got = json.load(f)
    reference = dict(np.load(os.path.join(ref_out, "grads_reference.npz")))
    for mesh in ("8,1,1", "2,2,2"):
        assert got[mesh]["processes"] == 2
        assert close(got[mesh]["loss"], ref[mesh]["loss"]) and close(got[mesh]["grad_norm"], ref["reference"]["grad_norm"])
        assert_same_gradients(_load(str(tmp_path), mesh, "grads"), reference)
        assert_same_params(_load(str(tmp_path), mesh), _load(ref_out, mesh))
        assert got[mesh]["shardings"] == ref[mesh]["shardings"]


def test_gradient_accumulation_equals_full_batch():
    """4 microbatches of 4 == one step on the 16-example batch, within 1e-5 relative.

    Dropout is off so both see the same function. The "optimizer" stores the
    gradient it receives in its state, so the accumulated gradient is compared
    directly (a parameter update would be rounded to the parameters' float32 ulp,
    and Adam's first step turns float noise in near-zero gradients into +-lr)."""
    import jax.numpy as jnp
    import optax
    sys.path.insert(0, HERE)
    import worker
    from bert_jax import partitioning, train
    from bert_jax.modeling import BertForPreTrainingModule
    from bert_jax.tasks import PretrainingTask

    cfg = worker.tiny_model_config().replace(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    task = PretrainingTask(BertForPreTrainingModule(cfg), worker.SEQ, worker.PRED)
    tx = optax.GradientTransformation(
        init=lambda p: jax.tree_util.tree_map(jnp.zeros_like, p),
        update=lambda g, s, p=None: (jax.tree_util.tree_map(jnp.zeros_like, g), g))
    mesh = partitioning.make_mesh((1, 1, 1), jax.devices()[:1])
    batch = worker.synthetic_batch(seed=3)
    results = {}
    for n in (1, 4):
        state, sh, _ = train.create_train_state(task, tx, mesh, partitioning.DEFAULT_RULES,
                                                jax.random.PRNGKey(0), jax.random.PRNGKey(1))
        step_fn, _ = train.jit_steps(task, tx, lambda s: 1.0, mesh, sh, n)
        state, metrics = step_fn(state, partitioning.make_global_batch(batch, mesh))
        grads = jax.tree_util.tree_flatten_with_path(jax.device_get(state.opt_state))[0]
        results[n] = (jax.device_get(metrics), {jax.tree_util.keystr(p): np.asarray(g) for p, g in grads})
    (m1, g1), (m4, g4) = results[1], results[4]
    for key in ("loss", "mlm_loss", "nsp_loss", "mlm_accuracy", "nsp_accuracy", "grad_norm"):
        assert abs(m4[key] - m1[key]) <= 1e-5 * max(abs(m1[key]), 1e-6), key
    for k in g1:
        scale = float(np.max(np.abs(g1[k])))
        np.testing.assert_allclose(g4[k], g1[k], rtol=1e-5, atol=1e-5 * scale + 1e-12, err_msg=k)
    assert m1["grad_norm"] > 0
