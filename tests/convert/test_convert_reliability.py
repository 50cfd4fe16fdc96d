"""Checkpoint files that must not fail with raw tracebacks or unpickle code, and exports that respect the umask."""

from __future__ import annotations

import os
import pathlib
import stat

import numpy as np
import pytest

from bert_jax.config import BertConfig
from bert_jax.convert import hf, native
from bert_jax.modeling import BertForPreTraining


@pytest.fixture(scope="module")
def model(tiny_kwargs):
    return BertForPreTraining(BertConfig(**tiny_kwargs), seed=0)


@pytest.fixture()
def hf_dir(tmp_path, model):
    """A valid exported Hugging Face directory (config.json + model.safetensors)."""
    directory = tmp_path / "hf"
    hf.save_hf_checkpoint(model.params, model.config, str(directory), "BertForPreTraining")
    return directory


class _RunsCode:
    """Pickles as a call to ``Path.touch(marker)``: what a hostile ``pytorch_model.bin`` can do."""

    def __init__(self, marker):
        self.marker = pathlib.Path(marker)

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def test_torch_bin_that_runs_code_is_refused_without_unpickling(tmp_path, hf_dir):
    torch = pytest.importorskip("torch")
    state = hf.load_hf_state_dict(str(hf_dir))
    directory = tmp_path / "hostile"
    directory.mkdir()
    (directory / "config.json").write_bytes((hf_dir / "config.json").read_bytes())
    marker = tmp_path / "code-ran"
    payload = {k: torch.from_numpy(v) for k, v in state.items()}
    payload["extra"] = _RunsCode(marker)
    torch.save(payload, directory / "pytorch_model.bin")
    with pytest.raises(hf.CheckpointFileError) as info:
        hf.load_hf_checkpoint(str(directory))
    message = str(info.value)
    assert f"{directory / 'pytorch_model.bin'} is not a plain weights file" in message
    assert "would call getattr" in message  # the global torch refused (Path.touch is reached through getattr)
    assert "bert-jax will not unpickle it" in message and "safetensors" in message
    assert "weights_only=False" not in message  # torch's own advice is to run the code
    assert not marker.exists()
    # The advice: the same weights as safetensors (from a trusted export) load, and win over the .bin.
    hf.save_hf_checkpoint(hf.hf_state_dict_to_params(state, BertConfig.from_pretrained(str(hf_dir)),
                                                     "BertForPreTraining")[0],
                          BertConfig.from_pretrained(str(hf_dir)), str(directory), "BertForPreTraining")
    loaded, _ = hf.load_hf_checkpoint(str(directory))
    assert set(loaded) == set(state) and not marker.exists()


def _write_header(path, header_len: int, body: bytes = b"") -> None:
    path.write_bytes(header_len.to_bytes(8, "little") + body)


def test_damaged_safetensors_files_are_named(tmp_path, hf_dir):
    good = (hf_dir / "model.safetensors").read_bytes()
    size = int.from_bytes(good[:8], "little")
    cases = {
        "truncated in the data": good[: len(good) // 2],
        "truncated in the header": good[: 8 + size // 2],
        "empty": b"",
        "random bytes": np.random.default_rng(0).bytes(4096),
        "2^62 header length": (1 << 62).to_bytes(8, "little") + good[8:],
        "offsets past the end": good[:8] + good[8: 8 + size].replace(b'"data_offsets":[0,', b'"data_offsets":[9,', 1)
        + good[8 + size:],
    }
    for what, data in cases.items():
        directory = tmp_path / what.replace(" ", "_").replace("^", "")
        directory.mkdir()
        (directory / "config.json").write_bytes((hf_dir / "config.json").read_bytes())
        (directory / "model.safetensors").write_bytes(data)
        with pytest.raises(hf.CheckpointFileError, match=r"is not a valid safetensors checkpoint") as info:
            hf.load_hf_checkpoint(str(directory))
        assert str(directory / "model.safetensors") in str(info.value), what
        assert "fetch or export it again" in str(info.value), what
    hf.load_hf_checkpoint(str(hf_dir))  # the intact file still loads


def test_junk_torch_bin_is_named(tmp_path, hf_dir):
    pytest.importorskip("torch")
    real = tmp_path / "real"
    real.mkdir()
    import torch

    torch.save({k: torch.from_numpy(v) for k, v in hf.load_hf_state_dict(str(hf_dir)).items()}, real / "x.bin")
    zipped = (real / "x.bin").read_bytes()
    for what, data in {"random": np.random.default_rng(1).bytes(5000), "empty": b"",
                       "truncated": zipped[: len(zipped) // 3]}.items():
        directory = tmp_path / what
        directory.mkdir()
        (directory / "pytorch_model.bin").write_bytes(data)
        with pytest.raises(hf.CheckpointFileError, match=r"is not a valid PyTorch checkpoint") as info:
            hf.load_hf_state_dict(str(directory))
        assert str(directory / "pytorch_model.bin") in str(info.value), what
    directory = tmp_path / "not_a_state_dict"
    directory.mkdir()
    torch.save(torch.zeros(3), directory / "pytorch_model.bin")
    with pytest.raises(hf.CheckpointFileError, match="holds a Tensor, not a state dict"):
        hf.load_hf_state_dict(str(directory))


def test_truncated_native_checkpoint_is_named(tmp_path, model):
    directory = tmp_path / "native"
    native.save_native_checkpoint(model.params, model.config, str(directory), "BertForPreTraining")
    path = directory / native.NATIVE_WEIGHTS
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(hf.CheckpointFileError, match=rf"{path} is not a valid safetensors checkpoint"):
        native.load_native_checkpoint(str(directory))


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_exported_files_respect_the_umask(tmp_path, model, umask):
    old = os.umask(umask)
    try:
        hf.save_hf_checkpoint(model.params, model.config, str(tmp_path / "hf"), "BertForPreTraining")
        native.save_native_checkpoint(model.params, model.config, str(tmp_path / "native"), "BertForPreTraining")
    finally:
        os.umask(old)
    for path in (tmp_path / "hf" / "model.safetensors", tmp_path / "native" / native.NATIVE_WEIGHTS):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask, path
    assert not [n for n in os.listdir(tmp_path / "hf") if ".tmp" in n]
    params, _, target = native.load_native_checkpoint(str(tmp_path / "native"))
    assert target == "BertForPreTraining"
    np.testing.assert_array_equal(params["bert"]["embeddings"]["word_embeddings"]["embedding"],
                                  np.asarray(model.params["bert"]["embeddings"]["word_embeddings"]["embedding"]))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # the mutated files, as expected
def test_mutated_files_raise_only_checkpoint_file_errors(tmp_path):
    """Byte changes in the structure of both formats (the .bin's pickle, the safetensors header) and
    random truncations: each either loads (a change the format cannot see) or raises
    CheckpointFileError naming the file, never a bare KeyError/TypeError/OverflowError."""
    torch = pytest.importorskip("torch")
    state = {"a.weight": np.linspace(-1, 1, 600, dtype=np.float32).reshape(20, 30), "b.bias": np.arange(7)}
    torch.save({k: torch.from_numpy(v) for k, v in state.items()}, tmp_path / "ref.bin")
    hf.write_safetensors(state, str(tmp_path / "ref.safetensors"), {"format": "pt"})
    binary, safe = (tmp_path / "ref.bin").read_bytes(), (tmp_path / "ref.safetensors").read_bytes()
    pickle_start = binary.find(b"data.pkl") + len("data.pkl")
    spans = {"pytorch_model.bin": (binary, pickle_start, binary.find(b"PK", pickle_start)),
             "model.safetensors": (safe, 0, 8 + int.from_bytes(safe[:8], "little"))}
    rng = np.random.default_rng(0)
    outcomes = {"loaded": 0, "refused": 0}
    for trial in range(200):
        for name, (ref, lo, hi) in spans.items():
            if trial % 4 == 3:
                data = bytearray(ref[: int(rng.integers(0, len(ref)))])
            else:
                data = bytearray(ref)
                for _ in range(1 + trial % 3):
                    data[int(rng.integers(lo, hi))] = int(rng.integers(0, 256))
            directory = tmp_path / f"{trial}-{name}"
            directory.mkdir()
            (directory / name).write_bytes(bytes(data))
            try:
                hf.load_hf_state_dict(str(directory))
                outcomes["loaded"] += 1
            except hf.CheckpointFileError as err:
                assert str(directory / name) in str(err)
                outcomes["refused"] += 1
    assert outcomes["refused"] > 300, outcomes
