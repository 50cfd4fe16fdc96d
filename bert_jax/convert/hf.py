"""Hugging Face PyTorch/safetensors state dicts <-> bert-jax parameter trees, and their files.

The name mapping is mechanical because module names mirror Hugging Face:
``a/b/kernel`` <-> ``a.b.weight`` (transposed: Flax kernels are [in, out], torch
Linear weights [out, in]), ``scale`` and ``embedding`` <-> ``weight``, ``bias`` <-> ``bias``.
Loading tolerates what real checkpoints contain (missing or extra ``bert.``
prefix, legacy ``gamma``/``beta`` names, buffers such as
``embeddings.position_ids``, tied decoder copies, heads the target does not use)
and refuses what would silently change the model (missing encoder weights,
keys that belong to nothing, shape mismatches). A ``pytorch_model.bin`` is
read only with torch's weights-only loader; safetensors needs no torch. A file
that is damaged, truncated or not a weights file raises ``CheckpointFileError``
naming it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re

import jax
import numpy as np
from flax.traverse_util import flatten_dict, unflatten_dict
from safetensors.numpy import save_file

from bert_jax.config import BertConfig
from bert_jax.modeling import modules

logger = logging.getLogger(__name__)

SAFE_WEIGHTS = "model.safetensors"
SAFE_INDEX = "model.safetensors.index.json"
TORCH_WEIGHTS = "pytorch_model.bin"

# Keys that are buffers, not parameters.
_BUFFER = re.compile(r"(^|\.)embeddings\.(position_ids|token_type_ids)$")
# Keys of BERT heads; a checkpoint may carry ones the target class does not use.
_HEAD = re.compile(r"^(cls\.(predictions\.(bias|transform\.\S+|decoder\.(weight|bias))|seq_relationship\.(weight|bias))"
                   r"|classifier\.(weight|bias)|qa_outputs\.(weight|bias)|bert\.pooler\.dense\.(weight|bias))$")
_ENCODER_PARTS = ("embeddings.", "encoder.", "pooler.")


@dataclasses.dataclass
class ConversionReport:
    """What a load did with each key; ``initialized`` lists freshly initialised parameters."""

    loaded: list = dataclasses.field(default_factory=list)
    initialized: list = dataclasses.field(default_factory=list)
    unused: list = dataclasses.field(default_factory=list)
    ignored: list = dataclasses.field(default_factory=list)
    renamed: dict = dataclasses.field(default_factory=dict)
    # head tensors freshly initialised for their shape (ignore_mismatched_heads), not listed under
    # ``unused``: "key: checkpoint (a, b), needs (c, b)"
    mismatched: list = dataclasses.field(default_factory=list)


def _prefix(target: str) -> str:
    return "" if target == "BertModel" else "bert."


def _expected(config: BertConfig, target: str, param_dtype) -> dict:
    module = modules.build_module(config, target, param_dtype=param_dtype)
    return flatten_dict(modules.param_shapes(module, config, target))


def flax_path_to_hf_key(path: tuple) -> str:
    """("bert", "encoder", "layer", "0", "output", "dense", "kernel") -> "bert.encoder.layer.0.output.dense.weight"."""
    leaf = {"kernel": "weight", "scale": "weight", "embedding": "weight", "bias": "bias"}[path[-1]]
    return ".".join(path[:-1] + (leaf,))


def _to_hf(path: tuple, value: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(value.T) if path[-1] == "kernel" else np.asarray(value)


def _from_hf(path: tuple, value: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(value.T) if path[-1] == "kernel" else np.asarray(value)


def _normalize(key: str, target: str, report: ConversionReport) -> str:
    """Legacy LayerNorm names and the ``bert.`` prefix, adapted to ``target``."""
    new = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", key)
    new = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", new)
    if target == "BertModel" and new.startswith("bert."):
        new = new[len("bert."):]
    elif target != "BertModel" and new.startswith(_ENCODER_PARTS):
        new = "bert." + new
    if new != key:
        report.renamed[key] = new
    return new


_SIZE_KEYS = {  # config field -> (key suffix, axis of its torch-layout shape)
    "vocab_size": ("embeddings.word_embeddings.weight", 0),
    "hidden_size": ("embeddings.word_embeddings.weight", 1),
    "max_position_embeddings": ("embeddings.position_embeddings.weight", 0),
    "type_vocab_size": ("embeddings.token_type_embeddings.weight", 0),
    "intermediate_size": ("encoder.layer.0.intermediate.dense.weight", 0),
}


def _first(items: list[str], n: int = 8) -> list[str]:
    """The first ``n`` of a long list, then how many more (an error of 160 keys buried its advice)."""
    return items[:n] + ([f"... and {len(items) - n} more"] if len(items) > n else [])


def _size_advice(state_dict: dict, config: BertConfig) -> str:
    """``" config.json gives hidden_size=768 where the weights have 256, ..."`` for each size the
    weights show and the config contradicts ("" when none): a config.json that leaves a size out
    takes Hugging Face's default, and the tensor-by-tensor list alone did not say which field."""
    found = {}
    for field, (suffix, axis) in _SIZE_KEYS.items():
        for key, value in state_dict.items():
            if key == suffix or key.endswith("." + suffix):
                found[field] = int(np.shape(value)[axis])
                break
    layers = {int(m.group(1)) for k in state_dict for m in [re.search(r"(?:^|\.)encoder\.layer\.(\d+)\.", k)] if m}
    if layers:
        found["num_hidden_layers"] = max(layers) + 1
    wrong = [f"{k}={getattr(config, k)} where the weights have {v}" for k, v in found.items() if getattr(config, k) != v]
    if not wrong:
        return ""
    defaults = BertConfig()
    default = [k for k, v in found.items() if getattr(config, k) != v and getattr(config, k) == getattr(defaults, k)]
    left_out = (f" ({', '.join(default)}: Hugging Face's default, which a config.json that leaves the field out "
                "takes)" if default else "")
    return (f" The config gives {'; '.join(wrong)}{left_out}: set "
            f"{', '.join(k + '=' + str(found[k]) for k in found if getattr(config, k) != found[k])} in config.json.")


def hf_state_dict_to_params(state_dict: dict, config: BertConfig, target: str, *, init_params: dict | None = None,
                            seed: int = 0, param_dtype=np.float32, scan_layers: bool = False,
                            ignore_mismatched_heads: bool = False, report_to_user: bool = True
                            ) -> tuple[dict, ConversionReport]:
    """Maps a Hugging Face state dict onto the parameter tree of class ``target``.

    Args:
      state_dict: HF key -> numpy array (torch layout).
      config: the model config; shapes are checked against it.
      target: class name, e.g. "BertForPreTraining".
      init_params: parameters to take heads absent from the checkpoint from; when None and
        some are absent, they are freshly initialised from ``seed``. Either way a warning lists them.
      param_dtype: dtype of the returned arrays.
      scan_layers: return the layers stacked for a ``scan_layers=True`` module.
      ignore_mismatched_heads: a head tensor whose shape does not fit (a classifier for another
        number of labels) is reported under ``mismatched`` and the head freshly initialised, instead
        of an error.
        Encoder mismatches are always errors.
      report_to_user: warn about freshly initialised parameters and log unused keys; False leaves
        that to the caller (both are in the returned report).
    Returns:
      (params nested dict of numpy arrays, ConversionReport).
    Raises:
      ValueError: missing encoder keys, keys that belong to nothing, or a shape mismatch.
    """
    report = ConversionReport()
    expected = _expected(config, target, param_dtype)
    by_key = {flax_path_to_hf_key(path): path for path in expected}
    flat, unknown, mismatched = {}, [], []
    decoder_bias = None
    for key, value in state_dict.items():
        if _BUFFER.search(key):
            report.ignored.append(key)
            continue
        name = _normalize(key, target, report)
        if name in by_key:
            path = by_key[name]
            if path in flat:
                raise ValueError(f"Checkpoint key {key!r} and another key both map to {name!r} "
                                 f"(with and without the 'bert.' prefix?); remove one of them.")
            array = _from_hf(path, np.asarray(value))
            want = tuple(expected[path].shape)
            torch_want = want[::-1] if path[-1] == "kernel" else want
            if array.shape != want and ignore_mismatched_heads and not _is_encoder(path, target):
                # e.g. a classifier trained for another label set: initialised below, and said why
                report.mismatched.append(f"{key}: checkpoint {tuple(np.asarray(value).shape)}, needs {torch_want}")
                continue
            if array.shape != want:
                mismatched.append(f"{key!r} (parameter {'/'.join(path)}): checkpoint has "
                                  f"{tuple(np.asarray(value).shape)}, the config expects {torch_want}")
                continue
            flat[path] = array.astype(expected[path].dtype)
            report.loaded.append(key)
        elif name == "cls.predictions.decoder.weight" and config.tie_word_embeddings:
            report.ignored.append(key)  # a copy of the word embeddings
        elif name == "cls.predictions.decoder.bias":
            decoder_bias = (key, value)  # torch ties it to cls.predictions.bias
        elif _HEAD.match(name) or (target == "BertModel" and _HEAD.match("bert." + name)):
            report.unused.append(key)
        else:
            unknown.append(key)
    bias_path = ("cls", "predictions", "bias")
    if decoder_bias is not None:
        if bias_path in expected and bias_path not in flat:
            flat[bias_path] = np.asarray(decoder_bias[1]).astype(expected[bias_path].dtype)
            report.loaded.append(decoder_bias[0])
        elif bias_path in expected:
            report.ignored.append(decoder_bias[0])
        else:
            report.unused.append(decoder_bias[0])
    if mismatched:
        raise ValueError(f"Shape mismatch for {len(mismatched)} tensor(s) (shapes in torch layout); check that "
                         f"config.json matches the weights.{_size_advice(state_dict, config)}\n  "
                         + "\n  ".join(_first(sorted(mismatched))))
    if unknown:
        raise ValueError(
            f"{len(unknown)} checkpoint key(s) belong to no parameter of {target} with this config: "
            f"{', '.join(sorted(unknown))}. Check num_hidden_layers / add_cross_attention in config.json, "
            f"or that this is a BERT checkpoint.{_size_advice(state_dict, config)}")
    missing = [path for path in expected if path not in flat]
    encoder_missing = [p for p in missing if _is_encoder(p, target)]
    if encoder_missing:
        shown = _first([flax_path_to_hf_key(p) for p in encoder_missing])
        raise ValueError(
            f"{len(encoder_missing)} encoder weight(s) missing from the checkpoint; a partial encoder cannot be "
            f"used: check the checkpoint and its config.json.{_size_advice(state_dict, config)} Missing: "
            f"{', '.join(shown)}.")
    if missing:
        names = sorted(flax_path_to_hf_key(p) for p in missing)
        message = (f"{target}: {len(names)} parameter(s) not in the checkpoint are freshly initialised "
                   f"(train them before use): {', '.join(names)}")
        if report.mismatched:
            message += f" (the checkpoint's are of another shape: {'; '.join(report.mismatched)})"
        if report_to_user:
            # One channel, as Hugging Face does: a log line. With no logging set up, Python's
            # last-resort handler prints it on stderr; a warning beside it was shown twice.
            logger.warning(message)
        if init_params is None:
            module = modules.build_module(config, target, param_dtype=param_dtype)
            init_params = modules.init_params(module, config, target, jax.random.key(seed))
        fresh = flatten_dict(unstack_layers(init_params))
        for path in missing:
            flat[path] = np.asarray(fresh[path])
        report.initialized = names
    if report.unused and report_to_user:
        logger.info("%s: %d checkpoint key(s) not used by this class: %s", target, len(report.unused),
                    ", ".join(report.unused))
    params = unflatten_dict(flat)
    return (stack_layers(params) if scan_layers else params), report


def _is_encoder(path: tuple, target: str) -> bool:
    """Embeddings and layers are the encoder. The pooler counts as a head (Hugging Face re-initialises
    it too), and so does cross-attention: warm-starting a decoder from an encoder checkpoint adds it."""
    inner = path if target == "BertModel" else path[1:] if path[0] == "bert" else None
    return inner is not None and inner[0] in ("embeddings", "encoder") and "crossattention" not in path


def _layer_axis(path: tuple) -> int | None:
    """Index just after ``encoder/layer`` in ``path``, or None."""
    for i in range(1, len(path) - 1):
        if path[i - 1] == "encoder" and path[i] == "layer":
            return i + 1
    return None


def unstack_layers(params: dict) -> dict:
    """Scanned layout (``encoder/layer/...`` [num_layers, ...]) -> per-layer ``encoder/layer/{i}/...``.
    Trees already per-layer are returned unchanged."""
    out = {}
    for path, value in flatten_dict(params).items():
        at = _layer_axis(path)
        if at is None or path[at].isdigit():
            out[path] = value
            continue
        for i in range(value.shape[0]):
            out[path[:at] + (str(i),) + path[at:]] = value[i]
    return unflatten_dict(out)


def stack_layers(params: dict) -> dict:
    """Per-layer ``encoder/layer/{i}/...`` -> scanned layout with a leading [num_layers] axis."""
    out, layers = {}, {}
    for path, value in flatten_dict(params).items():
        at = _layer_axis(path)
        if at is None or not path[at].isdigit():
            out[path] = value
            continue
        layers.setdefault(path[:at] + path[at + 1:], {})[int(path[at])] = value
    for path, per_layer in layers.items():
        out[path] = np.stack([np.asarray(per_layer[i]) for i in range(len(per_layer))])
    return unflatten_dict(out)


def params_to_hf_state_dict(params: dict, config: BertConfig, target: str) -> dict[str, np.ndarray]:
    """The inverse mapping: parameter tree -> HF key -> numpy array (torch layout).

    Tied decoder copies are not written (``transformers`` re-ties them on load); an untied
    decoder gets ``cls.predictions.decoder.bias`` as transformers writes it."""
    del config  # the tree itself carries the structure; kept for a symmetric signature
    out = {}
    for path, value in flatten_dict(unstack_layers(params)).items():
        if target == "BertModel" and path[0] == "bert":
            raise ValueError("params have a 'bert' sub-tree; pass the class they belong to as target.")
        out[flax_path_to_hf_key(path)] = _to_hf(path, np.asarray(value))
    if "cls.predictions.decoder.weight" in out and "cls.predictions.bias" in out:
        # Untied decoders: transformers saves the (shared) output bias under both names.
        out["cls.predictions.decoder.bias"] = out["cls.predictions.bias"].copy()
    return out


_SAFETENSORS_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
                       "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


# safetensors' own reader refuses headers above 100 MB; a real BERT header is a few tens of kB.
_MAX_HEADER_BYTES = 100 << 20


class CheckpointFileError(ValueError):
    """A weights file that is not a valid checkpoint (truncated, damaged, not a weights file)."""


def _invalid(path: str, why: str) -> CheckpointFileError:
    return CheckpointFileError(
        f"{path} is not a valid safetensors checkpoint: {why}. The file is damaged or incomplete "
        "(an interrupted download or copy?); fetch or export it again.")


def read_safetensors_file(path: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """``(tensors, metadata)`` of a safetensors file, bfloat16 included (via ml_dtypes, which numpy's
    reader in ``safetensors`` does not understand). Format: u64 header size, JSON header, data.

    Every length and offset is checked against the file size before anything is read, so a
    truncated or random file raises ``CheckpointFileError`` naming it (never a bare
    ``OverflowError``/``MemoryError``).
    """
    import ml_dtypes

    dtypes = {**_SAFETENSORS_DTYPES, "BF16": ml_dtypes.bfloat16}
    file_size = os.path.getsize(path)
    if file_size < 8:
        raise _invalid(path, f"it has {file_size} bytes, fewer than the 8-byte header length")
    with open(path, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        if size > min(file_size - 8, _MAX_HEADER_BYTES):
            raise _invalid(path, f"its header length field says {size} bytes but the file has {file_size}")
        try:
            header = json.loads(f.read(size).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise _invalid(path, f"its header is not JSON ({err})") from None
        if not isinstance(header, dict):
            raise _invalid(path, "its header is not a JSON object")
        data_size = file_size - 8 - size
        metadata = header.pop("__metadata__", None) or {}
        tensors = {}
        for name, info in header.items():
            try:
                dtype_name, shape, (start, end) = info["dtype"], [int(d) for d in info["shape"]], info["data_offsets"]
            except (KeyError, TypeError, ValueError):
                raise _invalid(path, f"tensor {name!r} has a malformed entry {str(info)[:200]}") from None
            if dtype_name not in dtypes:
                raise CheckpointFileError(f"{path}: tensor {name!r} has dtype {dtype_name}, which bert-jax cannot read.")
            dtype = np.dtype(dtypes[dtype_name])
            want = math.prod(shape) * dtype.itemsize  # Python ints: a damaged shape cannot overflow
            if not (isinstance(start, int) and isinstance(end, int) and 0 <= start <= end <= data_size) \
                    or end - start != want or min(shape, default=0) < 0:
                raise _invalid(path, f"tensor {name!r} ({dtype_name} {shape}) claims bytes {start}:{end} "
                                     f"of a {data_size}-byte data section")
            f.seek(8 + size + start)
            tensors[name] = np.frombuffer(f.read(end - start), dtype=dtype).reshape(shape).copy()
    return tensors, metadata


def read_safetensors(path: str) -> dict[str, np.ndarray]:
    """The tensors of a safetensors file (see ``read_safetensors_file``)."""
    return read_safetensors_file(path)[0]


def _load_torch_bin(path: str) -> dict[str, np.ndarray]:
    """A ``pytorch_model.bin`` read with torch's weights-only loader, with errors that name the file."""
    try:
        import torch
    except ImportError as e:
        raise ImportError(f"{path} is a PyTorch file: install torch (pip install torch) or convert "
                          f"the checkpoint to safetensors.") from e
    import pickle

    try:
        # weights_only: never unpickle arbitrary objects from a stranger's file.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        refused = re.search(r"GLOBAL (\S+)", str(err), re.IGNORECASE)
        if refused:
            # torch's text suggests weights_only=False, i.e. running the file's code: not here.
            raise CheckpointFileError(
                f"{path} is not a plain weights file: unpickling it would call {refused.group(1)} (code or "
                "objects other than tensors), and bert-jax will not unpickle it. If you trust its origin, convert "
                "it to safetensors with a tool you trust (e.g. in an isolated environment, transformers' "
                "from_pretrained(...).save_pretrained(dir, safe_serialization=True)) and load the "
                f"{SAFE_WEIGHTS} instead.") from None
        detail = "; ".join(line for line in str(err).splitlines() if "Unsupported" in line or "invalid" in line.lower())
        raise CheckpointFileError(f"{path} is not a valid PyTorch checkpoint ({detail or 'unreadable pickle'}); the "
                                  "file is damaged or not a weights file: fetch or export it again.") from None
    except (RuntimeError, EOFError, ValueError, OSError, KeyError, IndexError, TypeError, AttributeError,
            OverflowError, MemoryError) as err:
        # What torch's zip and pickle readers raise on damaged files; none of it is a usable state.
        raise CheckpointFileError(f"{path} is not a valid PyTorch checkpoint ({type(err).__name__}: "
                                  f"{str(err).splitlines()[0] if str(err) else ''}); the file is damaged, "
                                  "truncated or not a weights file: fetch or export it again.") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointFileError(f"{path} holds a {type(state).__name__}, not a state dict of tensors "
                                  "(name -> tensor); save model.state_dict(), not the model or a training state.")
    # numpy has no bfloat16: floats go through float32 (exact for bf16/fp16).
    return {k: v.detach().float().numpy() if v.is_floating_point() else v.numpy() for k, v in state.items()}


def load_hf_state_dict(directory: str) -> dict[str, np.ndarray]:
    """Reads model.safetensors (single or sharded) or, failing that, pytorch_model.bin."""
    safe = os.path.join(directory, SAFE_WEIGHTS)
    index = os.path.join(directory, SAFE_INDEX)
    torch_bin = os.path.join(directory, TORCH_WEIGHTS)
    if os.path.isfile(safe):
        return read_safetensors(safe)
    if os.path.isfile(index):
        with open(index, encoding="utf-8") as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        state = {}
        for shard in shards:
            state.update(read_safetensors(os.path.join(directory, shard)))
        return state
    if os.path.isfile(torch_bin):
        return _load_torch_bin(torch_bin)
    hint = (" It is a bert-jax training workdir (it has checkpoints/): convert it with --from bert-jax."
            if os.path.isdir(os.path.join(directory, "checkpoints")) else
            " It is a bert-jax model directory (it has bert_jax_params.safetensors): convert it with --from bert-jax."
            if os.path.isfile(os.path.join(directory, "bert_jax_params.safetensors")) else "")
    raise FileNotFoundError(f"No {SAFE_WEIGHTS}, {SAFE_INDEX} or {TORCH_WEIGHTS} in {directory!r}.{hint}")


def load_hf_checkpoint(directory: str) -> tuple[dict, BertConfig]:
    """(state dict, config) of a Hugging Face model directory."""
    config = BertConfig.from_pretrained(directory)
    return load_hf_state_dict(directory), config


def _umask() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # no /proc: read it by setting it (and put it back at once)
    os.umask(mask)
    return mask


def write_safetensors(tensors: dict, path: str, metadata: dict) -> None:
    """Writes a safetensors file atomically (temporary name, then rename) with the mode any new
    file gets under the process umask (``safetensors`` itself creates files 0600)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_hf_checkpoint(params: dict, config: BertConfig, directory: str, target: str) -> None:
    """Writes config.json + model.safetensors that ``transformers.<target>.from_pretrained`` loads."""
    os.makedirs(directory, exist_ok=True)
    state = params_to_hf_state_dict(params, config, target)
    # "format": "pt" is what transformers checks before loading a safetensors file.
    write_safetensors(state, os.path.join(directory, SAFE_WEIGHTS), {"format": "pt"})
    config.replace(architectures=[target]).save_pretrained(directory)
