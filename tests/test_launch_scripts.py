"""The launch scripts under ``scripts/`` hand their arguments to ``bert-jax pretrain`` intact and
exit with its status. ``gcloud`` and ``bert-jax`` are stand-ins here: the first runs the
worker command in bash, as a TPU VM's shell would; the second prints its arguments."""

import os
import stat
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _executable(path, text):
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def stand_ins(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # gcloud compute tpus tpu-vm ssh NAME --zone Z --worker=all --command CMD: run CMD in bash
    _executable(bin_dir / "gcloud", '#!/usr/bin/env bash\nwhile [ "$1" != "--command" ]; do shift; done\n'
                                    'exec bash -c "$2"\n')
    repo = tmp_path / "repo"
    (repo / ".venv" / "bin").mkdir(parents=True)
    _executable(repo / ".venv" / "bin" / "bert-jax",
                '#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "$ARGS_OUT"\nexit "${EXIT_WITH:-0}"\n')
    (repo / ".venv" / "bin" / "activate").write_text(f'export PATH="{repo / ".venv" / "bin"}:$PATH"\n')
    return bin_dir, repo


@pytest.mark.parametrize("status", [0, 2])
def test_the_tpu_pod_script_passes_overrides_whole_and_exits_with_the_runs_status(stand_ins, tmp_path, status):
    """``--config.mesh_shape='(1,-1,1)'`` (docs/training.md) was a syntax error on the workers,
    and a refused run (exit 2) returned 0 through ``| tee``."""
    bin_dir, repo = stand_ins
    args = ["--config.mesh_shape=(1,-1,1)", "--config.name=a b", "--config.note=$HOME;x"]
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "REPO_DIR": str(repo),
           "ARGS_OUT": str(tmp_path / "args"), "EXIT_WITH": str(status)}
    run = subprocess.run(["bash", os.path.join(ROOT, "scripts", "launch_tpu_pod.sh"), "pod", "zone",
                          "configs/pretrain/tiny.py", "/shared/run dir", *args],
                         env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == status, run.stderr
    assert (tmp_path / "args").read_text().splitlines() == [
        "pretrain", "--config", "configs/pretrain/tiny.py", "--workdir", "/shared/run dir", *args]


def test_the_gpu_script_finds_the_repositorys_environment_when_none_is_active(stand_ins, tmp_path):
    """The README installs into ``.venv`` without activating it; ``exec bert-jax`` was then
    "not found" (exit 127). The script in a checkout uses that checkout's ``.venv``."""
    _, repo = stand_ins
    (repo / "scripts").mkdir()
    script = repo / "scripts" / "launch_gpu_multinode.sh"
    script.write_text(open(os.path.join(ROOT, "scripts", "launch_gpu_multinode.sh")).read())
    path = ":".join(p for p in os.environ["PATH"].split(":")
                    if not os.path.exists(os.path.join(p, "bert-jax")))  # none on PATH
    env = {"PATH": path, "HOME": str(tmp_path), "ARGS_OUT": str(tmp_path / "args"), "COORDINATOR": "h:1",
           "NUM_NODES": "2", "NODE_RANK": "1"}
    run = subprocess.run(["bash", str(script), "c.py", "/w", "--config.x=(1, 2)"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "args").read_text().splitlines() == [
        "pretrain", "--config", "c.py", "--workdir", "/w", "--config.distributed.initialize=yes",
        "--config.distributed.coordinator_address=h:1", "--config.distributed.num_processes=2",
        "--config.distributed.process_id=1", "--config.x=(1, 2)"]


def test_the_gpu_script_sbatched_from_the_checkout_finds_its_environment(stand_ins, tmp_path):
    """``sbatch scripts/launch_gpu_multinode.sh`` runs a copy of the script from Slurm's spool
    folder, where no checkout is: the ``.venv`` is looked for where the job was submitted from."""
    _, repo = stand_ins
    spool = tmp_path / "spool" / "job42"
    spool.mkdir(parents=True)
    (spool / "slurm_script").write_text(open(os.path.join(ROOT, "scripts", "launch_gpu_multinode.sh")).read())
    path = ":".join(p for p in os.environ["PATH"].split(":") if not os.path.exists(os.path.join(p, "bert-jax")))
    env = {"PATH": path, "HOME": str(tmp_path), "ARGS_OUT": str(tmp_path / "args"), "SLURM_JOB_ID": "42"}
    script = ["bash", str(spool / "slurm_script"), "c.py", "/w"]
    run = subprocess.run(script, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 127 and "submit the job from the checkout" in run.stderr, run.stderr
    run = subprocess.run(script, env={**env, "SLURM_SUBMIT_DIR": str(repo)}, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "args").read_text().splitlines() == ["pretrain", "--config", "c.py", "--workdir", "/w"]
