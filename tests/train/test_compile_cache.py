"""``compilation_cache_dir``: a repeated run loads its compiled train step from the persistent
cache (and trains the same), entries sit under a per-machine folder, and the setting does not
outlive the run."""

import glob
import json
import logging
import os
import re

import pytest

jax = pytest.importorskip("jax")

from bert_jax import compile_cache, launch  # noqa: E402
from train_helpers import TINY  # noqa: E402


@pytest.fixture(autouse=True)
def _without_the_session_cache():
    """These tests check when a cache is used: the one tests/conftest.py sets for the session is
    off while they run."""
    from jax.experimental.compilation_cache import compilation_cache as jax_cache
    before = jax.config.jax_compilation_cache_dir
    jax_cache.set_cache_dir(None)
    jax_cache.reset_cache()
    yield
    jax_cache.set_cache_dir(before)
    jax_cache.reset_cache()


def _config(shards, cache, *extra):
    return launch.load_config(TINY, [f"data.train_dir={shards!r}", "model.hidden_size=32",
                                     "model.intermediate_size=64", "global_batch_size=8", "optim.total_steps=3",
                                     "optim.warmup_steps=1", "log_every_steps=1", "checkpoint.every_steps=0",
                                     f"compilation_cache_dir={cache!r}", *extra])


def _losses(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line)["train/loss"] for line in f if '"train/loss"' in line]


@pytest.mark.slow  # ~20 s; the default run keeps a margin under its 20 minutes
def test_a_repeated_run_loads_its_train_step_from_the_cache(corpus_shards, tmp_path, caplog):
    cache, before = str(tmp_path / "xla_cache"), jax.config.jax_compilation_cache_dir
    min_time = jax.config.jax_persistent_cache_min_compile_time_secs
    # JAX stores only programs that took >= 1 s to compile; this tiny step may compile faster.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.jit(lambda x: x + 1)(1.0)  # this process compiled before the run (JAX then decided: no cache)
    try:
        launch.run_pretraining(_config(corpus_shards["shards"], cache), str(tmp_path / "first"))
    finally:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", min_time)
    folder = os.path.join(cache, compile_cache.machine_tag())
    assert glob.glob(os.path.join(folder, "jit_train_step-*"))
    assert jax.config.jax_compilation_cache_dir == before  # restored when the run ended
    with caplog.at_level(logging.DEBUG, logger="jax._src.compiler"):
        launch.run_pretraining(_config(corpus_shards["shards"], cache), str(tmp_path / "second"))
    hits = [r.getMessage() for r in caplog.records if "Persistent compilation cache hit" in r.getMessage()]
    assert any("'jit_train_step'" in m for m in hits), hits
    assert _losses(tmp_path / "second") == _losses(tmp_path / "first")
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="jax._src.compiler"):  # off again without the field
        launch.run_pretraining(_config(corpus_shards["shards"], ""), str(tmp_path / "third"))
    assert not [r for r in caplog.records if "Persistent compilation cache" in r.getMessage()]


def test_machines_with_other_cpu_features_get_other_folders(monkeypatch):
    if jax.devices()[0].platform != "cpu":
        pytest.skip("the CPU folder name")
    here = compile_cache.machine_tag()
    if not os.path.exists("/proc/cpuinfo"):
        pytest.skip("reads the CPU description from /proc/cpuinfo")
    with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
        info = [line.split(":", 1) for line in f if ":" in line]
    model = next((v.strip() for k, v in info if k.strip() in ("model name", "CPU part")), "")
    flags = next((v.split() for k, v in info if k.strip() in ("flags", "Features")), [])
    assert model and flags, "no CPU model or flags in /proc/cpuinfo"
    here_described = compile_cache._cpu_description()
    assert model in here_described  # the folder follows the CPU model ...
    assert " ".join(sorted(flags)) in here_described  # ... and every instruction-set flag
    tags = {}
    for name, description in [("same", "x86_64|Xeon 8480|avx2 avx512f amx_bf16"),
                              ("again", "x86_64|Xeon 8480|avx2 avx512f amx_bf16"),
                              ("no_amx", "x86_64|Xeon 8480|avx2 avx512f"),  # ... and its flags
                              ("other_model", "x86_64|EPYC 9654|avx2 avx512f amx_bf16")]:
        monkeypatch.setattr(compile_cache, "_cpu_description", lambda d=description: d)
        tags[name] = compile_cache.machine_tag()
    assert tags["same"] == tags["again"]  # a restart on the same machine finds its entries
    assert len({tags["same"], tags["no_amx"], tags["other_model"], here}) == 4
    assert all(re.fullmatch(r"cpu-[0-9a-f]{12}", t) for t in tags.values())
