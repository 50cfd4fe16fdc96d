"""The guides' single-machine blocks run as written (slow): the 2-process localhost run of
docs/gpu_cluster.md and the conversion walk-through of docs/convert.md. Paths under /tmp/ are
moved into a temporary directory; nothing else in the commands changes."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def block_after(path, heading_or_line):
    """The first ```bash block after the line containing ``heading_or_line``."""
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        text = f.read()
    start = text.index(heading_or_line)
    m = re.search(r"```bash\n(.*?)```", text[start:], re.S)
    return m.group(1)


def env_with_cli():
    bindir = os.path.dirname(sys.executable)  # the venv's bert-jax
    return dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))


@pytest.mark.slow
def test_gpu_cluster_two_process_block_runs_as_written(tmp_path):
    script = block_after("docs/gpu_cluster.md", "## Try it on one machine").replace("/tmp/", f"{tmp_path}/")
    res = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env_with_cli(), capture_output=True, text=True,
                         timeout=1500)
    assert res.returncode == 0, res.stderr[-3000:]
    log = (tmp_path / "d_node0.log").read_text()
    assert "distributed: process 0 of 2" in log and "train step 20" in log, log[-3000:]
    assert sorted(os.listdir(tmp_path / "d_run2" / "checkpoints")) >= ["10", "20"]


@pytest.mark.slow
def test_convert_walkthrough_runs_as_written(tmp_path):
    lines, current = [], ""
    for line in block_after("docs/convert.md", "```bash").replace("/tmp/", f"{tmp_path}/").splitlines():
        current += line + "\n"
        if current.count('"') % 2 == 0:  # the python -c "..." command spans lines
            lines.append(current.split("  #")[0].strip())
            current = ""
    assert len(lines) == 5, lines
    codes = [subprocess.run(["bash", "-c", cmd], cwd=ROOT, env=env_with_cli(), capture_output=True, text=True,
                            timeout=600) for cmd in lines]
    assert [c.returncode == 0 for c in codes] == [True, True, True, False, True], [c.stderr[-800:] for c in codes]
    assert "is not empty" in codes[3].stderr and "--overwrite" in codes[3].stderr
    assert sorted(os.listdir(tmp_path / "m-hf")) >= ["config.json", "model.safetensors"]
