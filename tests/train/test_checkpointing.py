"""Checkpoint integrity: checksums recorded once a step commits, verified before reading.

A flipped byte, a truncated or deleted file, or a damaged record is named (step and file) and
the step is skipped by ``latest_intact_step``; a step without a record is never called verified.
"""

from __future__ import annotations

import json
import logging
import os
import shutil

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bert_jax import checkpointing


@flax.struct.dataclass
class State:
    params: dict
    opt: dict
    step: jax.Array


def _state(seed: int) -> State:
    rng = np.random.default_rng(seed)
    params = {"dense": {"kernel": jnp.asarray(rng.normal(size=(64, 96)), jnp.float32),
                        "bias": jnp.asarray(rng.normal(size=(96,)), jnp.float32)},
              "embed": {"embedding": jnp.asarray(rng.normal(size=(128, 64)), jnp.float32)}}
    opt = jax.tree_util.tree_map(lambda x: x * 0.5, params)
    return State(params=params, opt=opt, step=jnp.asarray(seed, jnp.int32))


def _meta(state: State) -> dict:
    return {"param_shapes": checkpointing.param_shapes(state.params)}


def _save_steps(directory, steps, *, async_save=True, keep=5) -> checkpointing.VerifiedCheckpointManager:
    manager = checkpointing.make_manager(str(directory), keep=keep, async_save=async_save)
    for step in steps:
        assert checkpointing.save(manager, step, _state(step), {"position": step}, _meta(_state(step)), force=True)
    manager.wait_until_finished()
    return manager


def _restore(manager, step=None):
    abstract = jax.eval_shape(lambda: _state(0))
    cpu = jax.sharding.SingleDeviceSharding(jax.devices("cpu")[0])
    shardings = jax.tree_util.tree_map(lambda _: cpu, abstract)
    return checkpointing.restore(manager, abstract, shardings, step)


def _assert_state_equal(got: State, want: State) -> None:
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _largest_data_file(directory, step) -> str:
    path = checkpointing.step_path(directory, step)
    files = [os.path.join(r, n) for r, _, ns in os.walk(os.path.join(path, "state")) for n in ns]
    return max(files, key=os.path.getsize)


@pytest.mark.parametrize("async_save", [True, False])
def test_saved_steps_get_a_record_of_every_file_and_restore_verified(tmp_path, async_save, caplog):
    manager = _save_steps(tmp_path / "ckpt", [2, 4], async_save=async_save)
    for step in (2, 4):
        path = checkpointing.step_path(manager.directory, step)
        with open(os.path.join(path, checkpointing.CHECKSUMS), encoding="utf-8") as f:
            record = json.load(f)
        on_disk = {os.path.relpath(os.path.join(r, n), path) for r, _, ns in os.walk(path) for n in ns}
        assert set(record["files"]) == on_disk - {checkpointing.CHECKSUMS}  # every file, nothing else
        assert checkpointing.verify_step(manager.directory, step).status == "verified"
    with caplog.at_level(logging.INFO, logger="bert_jax.checkpointing"):
        state, loader, meta = _restore(manager, 4)
    _assert_state_equal(state, _state(4))
    assert loader == {"position": 4} and meta == _meta(_state(4))
    assert "checkpoint step 4" in caplog.text and "verified" in caplog.text
    assert checkpointing.latest_intact_step(manager) == (4, [])
    manager.close()


def test_flipped_byte_is_named_and_the_step_skipped(tmp_path):
    manager = _save_steps(tmp_path / "ckpt", [2, 4])
    bad = _largest_data_file(manager.directory, 4)
    with open(bad, "r+b") as f:
        f.seek(os.path.getsize(bad) // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0x10]))
    check = checkpointing.verify_step(manager.directory, 4)
    assert check.status == "corrupt" and check.reason == f"{bad} fails its sha256 check (its bytes changed after the save)"
    with pytest.raises(checkpointing.CheckpointCorrupt) as info:
        _restore(manager, 4)
    err = info.value
    assert isinstance(err, ValueError) and err.step == 4
    assert f"checkpoint step 4 in {manager.directory} is corrupt: {bad} fails its sha256" in str(err)
    assert "Step 2 is the newest usable step" in str(err)
    step, skipped = checkpointing.latest_intact_step(manager)
    assert step == 2 and skipped == [(4, check.reason)]
    state, _, _ = _restore(manager, step)
    _assert_state_equal(state, _state(2))


@pytest.mark.parametrize("damage", ["truncate", "delete", "delete_item", "damage_record"])
def test_truncated_or_deleted_files_are_named(tmp_path, damage):
    manager = _save_steps(tmp_path / "ckpt", [2, 4])
    path = checkpointing.step_path(manager.directory, 4)
    victim = _largest_data_file(manager.directory, 4)
    if damage == "truncate":
        with open(victim, "r+b") as f:
            f.truncate(os.path.getsize(victim) // 3)
        expected = f"{victim} has {os.path.getsize(victim)} bytes"
    elif damage == "delete":
        os.remove(victim)
        expected = f"{victim} is missing"
    elif damage == "delete_item":
        shutil.rmtree(os.path.join(path, "state"))
        expected = "its item directory state is missing"
    else:
        with open(os.path.join(path, checkpointing.CHECKSUMS), "r+b") as f:
            f.truncate(30)
        expected = f"its checksum record {os.path.join(path, checkpointing.CHECKSUMS)} is damaged"
    with pytest.raises(checkpointing.CheckpointCorrupt, match="checkpoint step 4") as info:
        _restore(manager, 4)
    assert expected in str(info.value)
    assert len(str(info.value).splitlines()) == 1  # one line, not a TensorStore traceback
    # read_meta (what the loop reads first) and the export path refuse it the same way.
    with pytest.raises(checkpointing.CheckpointCorrupt, match=expected.replace("(", r"\(")[:40]):
        checkpointing.read_meta(manager, 4)
    with pytest.raises(checkpointing.CheckpointCorrupt, match="checkpoint step 4"):
        checkpointing.restore_params_to_cpu(str(manager.directory), 4)
    step, skipped = checkpointing.latest_intact_step(str(manager.directory))
    assert step == 2 and [s for s, _ in skipped] == [4] and expected in skipped[0][1]
    # The advice (move the step aside) works: the run resumes from step 2.
    shutil.move(path, str(tmp_path / "step4-damaged"))
    fresh = checkpointing.make_manager(str(manager.directory))
    assert fresh.latest_step() == 2
    state, _, _ = _restore(fresh)
    _assert_state_equal(state, _state(2))


def test_step_without_record_is_usable_but_never_called_verified(tmp_path, caplog):
    manager = _save_steps(tmp_path / "ckpt", [2, 4])
    os.remove(os.path.join(checkpointing.step_path(manager.directory, 4), checkpointing.CHECKSUMS))
    check = checkpointing.verify_step(manager.directory, 4)
    assert check.status == "unverified" and "verified" not in check.reason.replace("unverified", "")
    with caplog.at_level(logging.INFO, logger="bert_jax.checkpointing"):
        assert checkpointing.latest_intact_step(manager) == (4, [])
        state, _, _ = _restore(manager, 4)
    _assert_state_equal(state, _state(4))
    step4 = [r.getMessage() for r in caplog.records if "step 4" in r.getMessage()]
    assert len(step4) == 1 and "unverified" in step4[0], step4  # said once, when it is read
    assert all("checksums" not in m or "no checksum record" in m for m in step4)
    assert checkpointing.latest_intact_step(manager, require_verified=True) == (2, [(4, check.reason)])
    # Unverified and truncated: reading fails, and the failure is named, not a raw traceback.
    victim = _largest_data_file(manager.directory, 4)
    with open(victim, "r+b") as f:
        f.truncate(10)
    with pytest.raises(checkpointing.CheckpointCorrupt, match=r"checkpoint step 4 .* reading it failed"):
        _restore(manager, 4)


def test_all_steps_corrupt_returns_none_with_reasons(tmp_path):
    manager = _save_steps(tmp_path / "ckpt", [1, 2])
    for step in (1, 2):
        os.remove(_largest_data_file(manager.directory, step))
    step, skipped = checkpointing.latest_intact_step(manager)
    assert step is None and [s for s, _ in skipped] == [2, 1]
    with pytest.raises(checkpointing.CheckpointCorrupt, match="No older usable step exists"):
        _restore(manager, 2)
    assert checkpointing.latest_intact_step(str(tmp_path / "nothing")) == (None, [])


def test_retention_keeps_records_with_their_steps(tmp_path):
    manager = _save_steps(tmp_path / "ckpt", [1, 2, 3, 4], keep=2)
    assert sorted(manager.all_steps()) == [3, 4]
    assert sorted(os.listdir(manager.directory)) == ["3", "4"]
    assert all(checkpointing.verify_step(manager.directory, s).status == "verified" for s in (3, 4))


def test_read_meta_then_restore_hash_each_file_once(tmp_path, monkeypatch):
    manager = _save_steps(tmp_path / "ckpt", [3])
    hashed = []
    real = checkpointing._sha256
    monkeypatch.setattr(checkpointing, "_sha256", lambda path: hashed.append(path) or real(path))
    checkpointing.read_meta(manager, 3)  # what the loop reads first
    state, _, _ = _restore(manager, 3)
    _assert_state_equal(state, _state(3))
    assert hashed and len(hashed) == len(set(hashed))  # verified once, not once per read
    # A change after verification is still caught: the cache is keyed on sizes and mtimes.
    victim = _largest_data_file(manager.directory, 3)
    with open(victim, "r+b") as f:
        f.truncate(os.path.getsize(victim) - 1)
    with pytest.raises(checkpointing.CheckpointCorrupt, match="truncated or rewritten"):
        _restore(manager, 3)


def test_intact_step_that_fails_to_read_is_not_called_corrupt(tmp_path):
    """A read failure on a step whose files match their record is not damage: the error says to
    keep the step, and nothing is moved. (Here the target's optimizer state has another shape
    than the saved one, which the parameter-shape check does not look at.)"""
    manager = _save_steps(tmp_path / "ckpt", [2, 4])
    abstract = jax.eval_shape(lambda: _state(0))
    wrong = abstract.replace(opt={**abstract.opt, "embed": {"embedding": jax.ShapeDtypeStruct((7, 5), jnp.float32)}})
    cpu = jax.sharding.SingleDeviceSharding(jax.devices("cpu")[0])
    with pytest.raises(checkpointing.CheckpointUnreadable) as info:
        checkpointing.restore(manager, wrong, jax.tree_util.tree_map(lambda _: cpu, wrong), 4)
    message = str(info.value)
    assert message.startswith(f"checkpoint step 4 in {manager.directory} could not be read (")
    assert "not damaged: keep the step" in message and "corrupt" not in message
    assert len(message.splitlines()) == 1
    assert sorted(manager.all_steps()) == [2, 4] and checkpointing.verify_step(manager.directory, 4).usable
    _assert_state_equal(_restore(manager, 4)[0], _state(4))  # the step was fine all along
