"""The on-disk format: raw fixed-shape shards, their sidecars, the manifest, atomic writes.

A built directory holds::

    build_options.json             the options every shard was built with
    vocab.txt                      a copy of the vocabulary (the loader masks with it)
    shard-00003-of-00008.bin       fields back to back, C order, 64-byte aligned
    shard-00003-of-00008.json      the shard's sidecar: counts, layout, size, sha256
    manifest.json                  written once every shard is present

A field is ``[num_examples, ...]`` of one dtype at a byte offset given in the
sidecar, so the loader memory-maps it with no parsing. Every file is written
under a temporary name and renamed, and a shard counts as built only when its
sidecar exists (written after the ``.bin``) and the ``.bin`` has the recorded
size: an interrupted build never leaves a shard that looks complete.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
from typing import Any

import numpy as np

FORMAT = "bert-jax-pretraining-shards"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
OPTIONS = "build_options.json"
VOCAB = "vocab.txt"
_ALIGN = 64


class ShardError(ValueError):
    """A shard or manifest that does not match what was recorded."""


def shard_name(index: int, num_shards: int) -> str:
    return f"shard-{index:05d}-of-{num_shards:05d}"


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write through a temporary file and a rename; a failed write leaves no temporary file."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_json(path: str, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


def read_json(path: str, fix: str = "rebuild it: re-run the same `bert-jax data build` command") -> Any:
    """Parses a JSON file of the format; a damaged one raises ``ShardError`` naming it and ``fix``."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ShardError(f"{path} is damaged ({len(raw)} bytes, not valid JSON: {err}); {fix}") from None


_SHARD_FILE = re.compile(r"^shard-\d{5}-of-\d{5}\.(bin|json)(\.tmp-\d+)?$")


def is_shard_file(name: str) -> bool:
    """True for the names this format writes (a shard, its sidecar, their temporaries), nothing else."""
    return bool(_SHARD_FILE.match(name))


def write_shard(directory: str, index: int, num_shards: int, fields: dict[str, np.ndarray], extra: dict) -> dict:
    """Writes one shard (``.bin`` then sidecar, each atomically); returns the sidecar dict."""
    name = shard_name(index, num_shards)
    n = {len(a) for a in fields.values()}
    if len(n) != 1:
        raise ValueError(f"fields of shard {name} disagree on the number of examples: {n}")
    layout, offset = {}, 0
    for key, arr in fields.items():
        offset = -(-offset // _ALIGN) * _ALIGN
        layout[key] = {"dtype": arr.dtype.str, "shape": list(arr.shape[1:]), "offset": offset}
        offset += arr.nbytes
    path = os.path.join(directory, name + ".bin")
    tmp = f"{path}.tmp-{os.getpid()}"
    digest = hashlib.sha256()
    try:
        with open(tmp, "wb") as f:
            pos = 0
            for key, arr in fields.items():
                pad = layout[key]["offset"] - pos
                chunk = b"\0" * pad + np.ascontiguousarray(arr).tobytes()
                digest.update(chunk)
                f.write(chunk)
                pos += len(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # Ctrl-C or a full disk: no temporary file left behind
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    sidecar = {
        "index": index,
        "file": name + ".bin",
        "num_examples": n.pop(),
        "num_bytes": pos,
        "sha256": digest.hexdigest(),
        "fields": layout,
        **extra,
    }
    atomic_write_json(os.path.join(directory, name + ".json"), sidecar)
    return sidecar


def completed_shard(directory: str, index: int, num_shards: int) -> dict | None:
    """The sidecar of a fully written shard, or None if it is missing or incomplete (size check only)."""
    name = shard_name(index, num_shards)
    side = os.path.join(directory, name + ".json")
    binary = os.path.join(directory, name + ".bin")
    if not (os.path.exists(side) and os.path.exists(binary)):
        return None
    info = read_json(side)
    return info if os.path.getsize(binary) == info["num_bytes"] else None


def check_built_shard(directory: str, index: int, num_shards: int) -> tuple[dict | None, str | None]:
    """``(sidecar, None)`` for a shard whose ``.bin`` matches its sidecar's size and sha256.

    Otherwise ``(None, problem)``: problem is None when the shard was simply
    never finished (no sidecar), else says what is wrong with the files that
    are there (damaged sidecar, wrong size, failed checksum), so a rebuild can
    say why it replaces them.
    """
    name = shard_name(index, num_shards)
    side = os.path.join(directory, name + ".json")
    binary = os.path.join(directory, name + ".bin")
    if not os.path.exists(side):
        return None, None
    try:
        info = read_json(side)
    except ShardError as err:
        return None, str(err)
    if not isinstance(info, dict) or not {"num_bytes", "sha256", "num_examples"} <= set(info):
        return None, f"{side} lacks num_bytes/sha256/num_examples"
    if not os.path.exists(binary):
        return None, f"{binary} is missing"
    size = os.path.getsize(binary)
    if size != info["num_bytes"]:
        return None, f"{binary} has {size} bytes, its sidecar records {info['num_bytes']}"
    if sha256_file(binary) != info["sha256"]:
        return None, f"{binary} fails its sha256 check (corrupted or replaced)"
    return info, None


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def open_shard(directory: str, info: dict, verify_checksum: bool = False) -> dict[str, np.ndarray]:
    """Memory-maps one shard's fields after checking its size (and, optionally, sha256).

    Raises ``ShardError`` naming the shard file when it is missing or does not match.
    """
    path = os.path.join(directory, info["file"])
    if not os.path.exists(path):
        raise ShardError(f"shard {path} listed in the manifest is missing; rebuild it (re-run the build)")
    size = os.path.getsize(path)
    if size != info["num_bytes"]:
        raise ShardError(
            f"shard {path} has {size} bytes but the manifest records {info['num_bytes']}; "
            "it is truncated or from another build: rebuild it"
        )
    if verify_checksum and sha256_file(path) != info["sha256"]:
        raise ShardError(f"shard {path} fails its sha256 check (corrupted or replaced); rebuild it")
    n = info["num_examples"]
    out = {}
    for key, spec in info["fields"].items():
        shape = (n, *spec["shape"])
        if n == 0:
            out[key] = np.zeros(shape, np.dtype(spec["dtype"]))
            continue
        out[key] = np.memmap(path, dtype=np.dtype(spec["dtype"]), mode="r", offset=spec["offset"], shape=shape)
    return out


def load_manifest(path: str) -> tuple[str, dict]:
    """Returns ``(directory, manifest)`` for a shard directory or a ``manifest.json`` path."""
    if not os.path.exists(path):
        raise ShardError(f"{path} does not exist; pass a built shard directory or its {MANIFEST}")
    directory = path if os.path.isdir(path) else os.path.dirname(path) or "."
    if not os.path.isdir(path) and os.path.basename(path) != MANIFEST:  # a shard file, say: its folder was meant
        raise ShardError(f"{path} is a file; pass the shard directory that holds it ({directory}) or its {MANIFEST}")
    manifest_path = os.path.join(directory, MANIFEST) if os.path.isdir(path) else path
    if not os.path.exists(manifest_path):
        hint = ""
        below = sorted(os.path.dirname(m) for m in glob.glob(os.path.join(glob.escape(directory), "*", MANIFEST)))
        if below:  # the folder above the shards
            hint = f" (it is in {', '.join(below[:3])}{', ...' if len(below) > 3 else ''}: pass that folder)"
        elif os.path.exists(os.path.join(directory, OPTIONS)) and not glob.glob(os.path.join(glob.escape(directory), "shard-*")):
            # e.g. inputs without a document: the same command would fail the same way
            hint = (" (a build started here but made no shard; run bert-jax data build again, with inputs that hold "
                    "text if it said it found no documents)")
        elif os.path.exists(os.path.join(directory, OPTIONS)):
            hint = " (the build is incomplete: re-run the same build command to finish the missing shards)"
        raise ShardError(f"no {MANIFEST} in {directory}{hint}")
    manifest = read_json(manifest_path)
    if manifest.get("format") != FORMAT or manifest.get("version") != FORMAT_VERSION:
        raise ShardError(
            f"{manifest_path} is not a {FORMAT} v{FORMAT_VERSION} manifest "
            f"(format={manifest.get('format')!r}, version={manifest.get('version')!r})"
        )
    return directory, manifest


def vocab_hash(tokens: list[str]) -> str:
    """sha256 of the vocabulary in id order (independent of file line endings)."""
    return hashlib.sha256("\n".join(tokens).encode("utf-8")).hexdigest()
