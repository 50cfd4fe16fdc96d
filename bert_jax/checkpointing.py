"""Checkpoints with Orbax: asynchronous saves, retention, exact resume, re-sharding.

A checkpoint step directory holds three items:
  * ``state``  -- the ``TrainState`` arrays (params, optimizer state, step, key);
  * ``loader`` -- the data loader position (JSON), so resumed runs see exactly
    the batches an uninterrupted run would;
  * ``meta``   -- JSON: the parameter shapes, mesh, and the resolved config, used
    to refuse a mismatched model *before* reading any array.

Retention: the last ``keep`` steps plus every step divisible by ``keep_period``.
Orbax writes each step under a temporary name and renames it when complete, so
a step interrupted mid-write is never listed as the latest.

Restoring onto another mesh (or onto CPU for export) only needs the target
shardings: arrays are read shard by shard into whatever layout is asked for.

Integrity: once a step is committed, the manager from ``make_manager`` writes
``<step>/bert_jax_checksums.json`` (size and sha256 of every file of the step;
hashed in a background thread after an async save commits, so training does
not wait). ``restore`` and ``restore_params_to_cpu`` verify a step before
reading it and raise ``CheckpointCorrupt`` naming the step and the file;
``latest_intact_step`` finds the newest step that is not corrupt. A step
without a record (saved by an older bert-jax, or killed between its commit
and its record) is *unverified*: usable, and never reported as verified. A read
that fails on a verified step is ``CheckpointUnreadable`` (not damage: keep it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import threading
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.sharding import SingleDeviceSharding

from bert_jax.checkpoint_steps import saved_steps
from bert_jax.config import SHAPE_FIELDS

log = logging.getLogger(__name__)

CHECKSUMS = "bert_jax_checksums.json"
_CHECKSUM_FORMAT = "bert-jax-checkpoint-checksums"
_ITEMS = ("state", "loader", "meta")


class CheckpointError(ValueError):
    """A checkpoint step that cannot be used as asked; the message says what to do.

    The command line reports it in one line with exit status 2 (``launch``); library callers
    can tell damage (``CheckpointCorrupt``) from a read failure (``CheckpointUnreadable``).
    """


def missing_step(directory: str, step: int, steps) -> CheckpointError:
    """The refusal for a ``--step`` that ``directory`` does not hold, naming the steps it has."""
    have = ", ".join(map(str, sorted(steps))) or "none"
    return CheckpointError(f"{directory} has no step {step}; it has steps {have}.")


class CheckpointCorrupt(CheckpointError):
    """A checkpoint step whose files do not match their checksum record, or that cannot be read.

    Attributes: ``step``, ``directory`` (the checkpoints directory), ``reason``.
    """

    def __init__(self, directory: str, step: int, reason: str, advice: str = ""):
        self.directory, self.step, self.reason = str(directory), int(step), reason
        super().__init__(f"checkpoint step {step} in {directory} is corrupt: {reason}"
                         + (f". {advice}" if advice else ""))


class CheckpointUnreadable(CheckpointError):
    """A checkpoint step whose files match their checksum record, yet reading it failed here.

    Not damage (memory, devices, or an Orbax version that cannot read it): the message says to
    keep the step. Attributes: ``step``, ``directory``, ``reason``.
    """

    def __init__(self, directory: str, step: int, reason: str):
        self.directory, self.step, self.reason = str(directory), int(step), reason
        super().__init__(f"checkpoint step {step} in {directory} could not be read ({reason}). Its files match "
                         "their checksum record, so they are not damaged: keep the step (moving it aside would "
                         "only lose its progress), fix what the error names -- a config whose model or optimizer "
                         "differs from the run's (compare with its config.json), memory, devices, or an Orbax "
                         "version that cannot read this checkpoint -- and run again")


@dataclasses.dataclass(frozen=True)
class StepCheck:
    """The outcome of ``verify_step``.

    ``status``: ``"verified"`` (every recorded file has its recorded size and sha256),
    ``"corrupt"`` (a file is missing, truncated or changed, or the record is damaged) or
    ``"unverified"`` (no record: nothing can be said about its bytes). ``reason`` says why.
    """

    step: int
    status: str
    reason: str

    @property
    def usable(self) -> bool:
        return self.status != "corrupt"


def step_path(directory, step: int) -> str:
    """The directory of ``step`` under a checkpoints directory (Orbax's default naming)."""
    return os.path.join(str(directory), str(int(step)))


def _step_files(path: str) -> list[str]:
    """Relative paths of every file of a step (the checksum record excluded), sorted."""
    out = []
    for root, _, names in os.walk(path):
        for name in names:
            rel = os.path.relpath(os.path.join(root, name), path)
            if rel != CHECKSUMS and not rel.startswith(CHECKSUMS + ".tmp"):
                out.append(rel)
    return sorted(out)


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def record_checksums(directory, step: int) -> dict:
    """Hashes every file of a committed step and writes ``<step>/bert_jax_checksums.json`` atomically.

    Call only on a step whose save has finished (the manager from ``make_manager``
    does it itself); a record written over half-saved files would vouch for them.
    Returns the record.
    """
    path = step_path(directory, step)
    files = {rel: {"size": os.path.getsize(os.path.join(path, rel)), "sha256": _sha256(os.path.join(path, rel))}
             for rel in _step_files(path)}
    record = {"format": _CHECKSUM_FORMAT, "version": 1, "step": int(step), "algorithm": "sha256", "files": files}
    tmp = os.path.join(path, f"{CHECKSUMS}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(path, CHECKSUMS))
    return record


def _signature(path: str) -> tuple:
    """(name, size, mtime) of every file: unchanged means a past verification still holds."""
    out = []
    for rel in _step_files(path) + [CHECKSUMS]:
        try:
            st = os.stat(os.path.join(path, rel))
        except FileNotFoundError:
            continue
        out.append((rel, st.st_size, st.st_mtime_ns))
    return tuple(out)


def verify_step(directory, step: int, cache: dict | None = None) -> StepCheck:
    """Checks every file of ``step`` against its checksum record (see ``StepCheck``).

    Args:
      directory: the checkpoints directory.
      step: the step.
      cache: optional ``{step: signature}`` of steps already verified; a step
        whose files' names, sizes and mtimes are unchanged is not hashed again.
    """
    path = step_path(directory, step)
    if not os.path.isdir(path):
        return StepCheck(step, "corrupt", f"{path} does not exist")
    missing_items = [item for item in ("state", "meta") if not os.path.isdir(os.path.join(path, item))]
    if missing_items:
        return StepCheck(step, "corrupt", f"its item director{'ies' if len(missing_items) > 1 else 'y'} "
                                          f"{', '.join(missing_items)} {'are' if len(missing_items) > 1 else 'is'} missing")
    record_path = os.path.join(path, CHECKSUMS)
    if not os.path.exists(record_path):
        return StepCheck(step, "unverified", "no checksum record (saved by an older bert-jax, or interrupted "
                                             "between its commit and its record)")
    signature = _signature(path)
    if cache is not None and cache.get(step) == signature:
        return StepCheck(step, "verified", "checksums verified earlier; files unchanged since")
    try:
        with open(record_path, encoding="utf-8") as f:
            record = json.load(f)
        files = record["files"]
        if record.get("format") != _CHECKSUM_FORMAT or not isinstance(files, dict):
            raise ValueError("not a checksum record")
    except (OSError, ValueError, KeyError, TypeError) as err:
        return StepCheck(step, "corrupt", f"its checksum record {record_path} is damaged ({err})")
    for rel, want in sorted(files.items()):
        full = os.path.join(path, rel)
        if not os.path.exists(full):
            return StepCheck(step, "corrupt", f"{full} is missing")
        size = os.path.getsize(full)
        if size != want["size"]:
            return StepCheck(step, "corrupt", f"{full} has {size} bytes, {want['size']} were saved (truncated or rewritten)")
        if _sha256(full) != want["sha256"]:
            return StepCheck(step, "corrupt", f"{full} fails its sha256 check (its bytes changed after the save)")
    if cache is not None:
        cache[step] = signature
    total = sum(f["size"] for f in files.values())
    return StepCheck(step, "verified", f"checksums of {len(files)} files ({total / 1e6:.1f} MB) verified")


def _directory_and_steps(manager_or_dir) -> tuple[str, list[int], dict | None]:
    if isinstance(manager_or_dir, ocp.CheckpointManager):
        return (str(manager_or_dir.directory), sorted(manager_or_dir.all_steps(read=True)),
                getattr(manager_or_dir, "verified_cache", None))
    return str(manager_or_dir), saved_steps(str(manager_or_dir)), None


def latest_intact_step(manager_or_dir, *, require_verified: bool = False) -> tuple[int | None, list[tuple[int, str]]]:
    """The newest step that is not corrupt, and the newer ones skipped with their reasons.

    Steps are checked newest first (``verify_step``: every file against its
    recorded size and sha256); the first verified one is returned. An
    unverified step (no record) is returned too, unless ``require_verified``:
    nothing vouches for its bytes, so ``restore`` of it may still raise
    ``CheckpointCorrupt`` (reading it logs it as unverified, once).

    Args:
      manager_or_dir: a ``CheckpointManager`` or a checkpoints directory.
      require_verified: skip unverified steps as well.

    Returns:
      ``(step, skipped)``: ``step`` is None when no step is usable; ``skipped``
      lists ``(step, reason)`` for every newer step passed over. A caller that
      gets ``(None, [...])`` must not start from scratch silently: the
      directory holds checkpoints, all of them damaged.
    """
    directory, steps, cache = _directory_and_steps(manager_or_dir)
    skipped: list[tuple[int, str]] = []
    for step in reversed(steps):
        check = verify_step(directory, step, cache)
        if check.status == "verified" or (check.status == "unverified" and not require_verified):
            for s, reason in skipped:
                log.warning("skipping checkpoint step %d in %s: %s", s, directory, reason)
            return step, skipped
        skipped.append((step, check.reason))
    for s, reason in skipped:
        log.warning("skipping checkpoint step %d in %s: %s", s, directory, reason)
    return None, skipped


def _check_before_reading(manager_or_dir, step: int) -> StepCheck:
    """Verifies ``step``; raises ``CheckpointCorrupt`` (naming an older intact step) if it is corrupt."""
    directory, _, cache = _directory_and_steps(manager_or_dir)
    check = verify_step(directory, step, cache)
    if check.status == "corrupt":
        raise CheckpointCorrupt(directory, step, check.reason, _older_advice(manager_or_dir, step))
    if check.status == "unverified":
        log.warning("checkpoint step %d in %s: %s; reading it unverified", step, directory, check.reason)
    else:
        log.info("checkpoint step %d in %s: %s", step, directory, check.reason)
    return check


def _older_advice(manager_or_dir, step: int) -> str:
    directory, steps, cache = _directory_and_steps(manager_or_dir)
    for older in reversed([s for s in steps if s < step]):
        if verify_step(directory, older, cache).usable:
            return (f"Step {older} is the newest usable step: move {step_path(directory, step)} aside "
                    f"(or delete it) to resume from step {older}")
    return (f"No older usable step exists: move {directory} aside and start again, "
            "or restore the files from a copy")


def _read_error(manager_or_dir, step: int, err: Exception) -> ValueError:
    """An Orbax/TensorStore failure reading ``step``, naming the step.

    A step whose files all match their checksum record is not damaged, whatever the error says
    (``CheckpointUnreadable``: keep it); without a record, damage is the likely cause
    (``CheckpointCorrupt``, with the newest older usable step).
    """
    directory, _, cache = _directory_and_steps(manager_or_dir)
    # Orbax wraps TensorStore's error (which names the array and the byte range) in one that
    # names only an index and a spec: report the innermost cause.
    root, depth = err, 0
    while depth < 20:  # the explicit cause, else an unsuppressed context (what Python's traceback shows)
        inner = root.__cause__ or (None if root.__suppress_context__ else root.__context__)
        if inner is None:
            break
        root, depth = inner, depth + 1
    first = str(root).strip().splitlines()[0] if str(root).strip() else type(root).__name__
    detail = f"{type(root).__name__}: {first[:400]}"
    if verify_step(directory, step, cache).status == "verified":
        return CheckpointUnreadable(directory, step, detail)
    return CheckpointCorrupt(directory, step, f"reading it failed ({detail})", _older_advice(manager_or_dir, step))


class VerifiedCheckpointManager(ocp.CheckpointManager):
    """A ``CheckpointManager`` that writes a checksum record for each step it saves, once committed.

    Async saves are hashed in a background thread that first waits for the
    commit; ``save`` and ``wait_until_finished`` wait for that thread, so
    after ``wait_until_finished`` every step this manager saved has its record.
    Only the primary process writes records. ``verified_cache`` remembers
    verified steps, so ``read_meta`` then ``restore`` hash a step once.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.verified_cache: dict[int, tuple] = {}
        self._hasher: threading.Thread | None = None
        self._async = bool(self._options.enable_async_checkpointing)

    def _record(self, step: int) -> None:
        try:
            if jax.process_index() == 0 and os.path.isdir(step_path(self.directory, step)):
                record_checksums(self.directory, step)
        except OSError as err:  # the step stays usable, merely unverified
            log.warning("could not record checksums of checkpoint step %d: %s", step, err)

    def _after_commit(self, step: int) -> None:
        try:
            super().wait_until_finished()
        except BaseException as err:  # noqa: BLE001 -- Orbax re-raises it to the caller's next wait
            log.warning("checkpoint step %d did not commit (%s); no checksum record", step, err)
            return
        self._record(step)

    def _join_hasher(self) -> None:
        if self._hasher is not None:
            self._hasher.join()
            self._hasher = None

    def save(self, step: int, *args, **kwargs) -> bool:
        self._join_hasher()
        saved = super().save(step, *args, **kwargs)
        if saved:
            if self._async:
                self._hasher = threading.Thread(target=self._after_commit, args=(int(step),),
                                                name=f"checksums-{step}", daemon=True)
                self._hasher.start()
            else:
                self._record(int(step))
        return saved

    def wait_until_finished(self):
        self._join_hasher()
        super().wait_until_finished()


def _names(path) -> str:
    parts = []
    for e in path:
        for attr in ("key", "name", "idx"):
            if hasattr(e, attr):
                parts.append(str(getattr(e, attr)))
                break
    return "/".join(parts)


def param_shapes(params) -> dict[str, list[int]]:
    """``{"bert/encoder/...": [shape]}`` for a (possibly abstract) parameter tree."""
    return {_names(p): list(x.shape) for p, x in jax.tree_util.tree_flatten_with_path(params)[0]}


def make_manager(directory: str, *, save_interval_steps: int = 1, keep: int = 3,
                 keep_period: int | None = None, async_save: bool = True) -> "VerifiedCheckpointManager":
    """A ``CheckpointManager`` under ``directory`` (created if missing) that records checksums."""
    options = ocp.CheckpointManagerOptions(
        save_interval_steps=max(int(save_interval_steps), 1),
        max_to_keep=int(keep) if keep and keep > 0 else None,
        keep_period=int(keep_period) if keep_period else None,
        enable_async_checkpointing=async_save,
        create=True,
    )
    return VerifiedCheckpointManager(os.path.abspath(directory), options=options, item_names=_ITEMS)


def save(manager: ocp.CheckpointManager, step: int, state, loader_state: dict | None,
         meta: dict, *, force: bool = False) -> bool:
    """Start an (asynchronous) save of ``step``; returns whether a save started.

    ``force`` saves even off the save interval (used on SIGTERM and at the end).
    """
    args = ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        loader=ocp.args.JsonSave(loader_state or {}),
        meta=ocp.args.JsonSave(meta),
    )
    return bool(manager.save(int(step), args=args, force=force))


def read_meta(manager: ocp.CheckpointManager, step: int | None = None) -> dict | None:
    """The ``meta`` item of ``step`` (default the latest), after verifying the step.

    Raises ``CheckpointCorrupt`` naming the step (and the file) if it is corrupt, or
    ``CheckpointUnreadable`` if its files are intact but reading them failed.
    """
    step = manager.latest_step() if step is None else step
    if step is None:
        return None
    _check_before_reading(manager, step)
    try:
        return manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    except Exception as err:  # noqa: BLE001 -- re-raised naming the step (_read_error)
        raise _read_error(manager, step, err) from err


def _scanned(names) -> bool:
    """Whether parameter names are those of ``scan_layers=True``: layers stacked under
    ``encoder/layer/``, where one by one they are ``encoder/layer/0/``, ``encoder/layer/1/`` ..."""
    return any(re.search(r"/encoder/layer/(?!\d+/)", name) for name in names)


def check_compatible(meta: dict, params_abstract, directory: str, step: int, model: dict | None = None) -> None:
    """Refuse a checkpoint whose parameter shapes differ from the configured model.

    ``model`` (the configured ``BertConfig.to_dict()``) lets the refusal name only the shape fields
    that differ -- and catches ``num_attention_heads``, which changes no parameter's shape (the
    heads are a reshape of ``[hidden, hidden]`` kernels) but is another model; when no field
    differs, the cause is the layer layout (``scan_layers``), which it names.
    """
    saved = meta.get("param_shapes", {})
    want = param_shapes(params_abstract)
    diffs = [f"{k}: checkpoint {saved.get(k)} vs model {v}" for k, v in want.items()
             if saved.get(k) != v]
    diffs += [f"{k}: only in checkpoint" for k in saved if k not in want]
    theirs = meta.get("model") or {}
    known = [k for k in SHAPE_FIELDS if isinstance(theirs.get(k), int)]
    if model is not None:
        differ = [k for k in known if theirs[k] != model.get(k)]
        told = ", ".join(f"{k}={theirs[k]} (config: {model.get(k)})" for k in differ)
    else:
        differ, told = known, ""
    if not diffs and not (model is not None and differ):
        return
    flags = [f"--config.model.{k}={theirs[k]}" for k in differ]
    scanned = _scanned(saved)
    if scanned != _scanned(want):  # same fields, other parameter names
        told = ", ".join(filter(None, [told, f"its layers are {'stacked' if scanned else 'saved one by one'} "
                                              f"(scan_layers={scanned})"]))
        flags.append(f"--config.scan_layers={scanned}")
    fix = " ".join(flags) or "see the run config.json"
    shown = told or ("; ".join(diffs[:6]) + (f"; ... ({len(diffs)} in all)" if len(diffs) > 6 else ""))
    raise ValueError(
        f"{directory} holds a checkpoint (step {step}) of a different model shape: {shown}. To resume or "
        f"evaluate it, give the checkpoint's shape ({fix}); to train this shape instead, use a new --workdir.")


def restore(manager: ocp.CheckpointManager, abstract_state, shardings, step: int | None = None,
            model: dict | None = None, meta: dict | None = None):
    """Restore ``(state, loader_state, meta)`` onto ``shardings``, verifying the step first (unless
    the caller passes ``meta``, having verified and checked that same step itself).

    Args:
      abstract_state: ``TrainState`` of ``jax.ShapeDtypeStruct`` (from ``jax.eval_shape``).
      shardings: matching tree of target shardings (any mesh or device count).
      step: the step to restore; default the latest complete one (use
        ``latest_intact_step`` to pick one that is not corrupt).
      model: the configured ``BertConfig.to_dict()``, so a shape refusal names what differs.
      meta: the step's ``meta`` item when the caller has read it with ``read_meta`` (which verified
        the step) and checked it with ``check_compatible``; neither is done again.

    Raises:
      CheckpointCorrupt: a file of the step is missing, truncated or changed since it was
        saved, or reading an unverified step fails; the message names the step, the file and
        the newest older usable step.
      CheckpointUnreadable: the step's files match their checksum record, but reading failed.
      ValueError: the checkpoint is of another model shape (``check_compatible``; not raised when
        ``meta`` is given).
    """
    step = manager.latest_step() if step is None else step
    if step is None:
        raise FileNotFoundError(f"no checkpoint in {manager.directory}")
    if meta is None:
        meta = read_meta(manager, step)  # verifies the step
        check_compatible(meta, abstract_state.params, str(manager.directory), step, model)
    target = jax.tree_util.tree_map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), abstract_state, shardings)
    try:
        out = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target), loader=ocp.args.JsonRestore(),
            meta=ocp.args.JsonRestore()))
    except Exception as err:  # noqa: BLE001 -- re-raised naming the step (_read_error)
        raise _read_error(manager, step, err) from err
    return out["state"], out["loader"], out["meta"]


def restore_params_to_cpu(directory: str, step: int | None = None) -> tuple[Any, dict]:
    """Parameters of a checkpoint as host numpy arrays (for export / conversion).

    Returns ``(params, meta)``; works without knowing the model config, since
    shapes come from the checkpoint itself. Raises ``CheckpointCorrupt`` for a
    damaged step (verified against its checksum record first).
    """
    # Handlers named, not inferred: in a multi-process job Orbax infers none for "state" and
    # its metadata comes back empty. Each process restores its own copy onto a local CPU device.
    manager = ocp.CheckpointManager(os.path.abspath(directory),
                                    options=ocp.CheckpointManagerOptions(read_only=True),
                                    item_handlers={"state": ocp.StandardCheckpointHandler(),
                                                   "loader": ocp.JsonCheckpointHandler(),
                                                   "meta": ocp.JsonCheckpointHandler()})
    steps = sorted(manager.all_steps())
    if step is not None and int(step) not in steps:
        manager.close()
        raise missing_step(directory, step, steps)
    step = manager.latest_step() if step is None else step
    if step is None:
        raise FileNotFoundError(f"no checkpoint found in {directory}; pass a workdir's "
                                "'checkpoints' directory that holds step folders.")
    meta = read_meta(manager, step)  # verifies the step; CheckpointCorrupt if it is damaged
    cpu = SingleDeviceSharding(jax.local_devices(backend="cpu")[0])
    try:
        tree = manager.item_metadata(step)["state"]
        target = jax.tree_util.tree_map(
            lambda m: jax.ShapeDtypeStruct(tuple(m.shape), m.dtype, sharding=cpu), tree)
        state = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target)))["state"]
    except Exception as err:  # noqa: BLE001 -- re-raised naming the step (_read_error)
        raise _read_error(manager, step, err) from err
    params = state["params"] if isinstance(state, dict) else state.params
    manager.close()
    return jax.tree_util.tree_map(np.asarray, params), meta
