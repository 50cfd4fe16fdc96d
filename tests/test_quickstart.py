"""`bert-jax quickstart` as a new user sees it (a short version): one line per stage,
bert-jax's progress bars and the summary, no WARNING line and no line from a third-party
library; the printed summary agrees with what the runs wrote."""

import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Everything a default-verbosity quickstart may print: its stage lines, the summary block,
# and bert-jax's own progress bars (tqdm redraws separated by carriage returns).
ALLOWED = [r"^\[\d/5\] ", r"^summary$", r"^  ", r"^(reading corpus|partition|build|train): "]


@pytest.fixture(scope="module")
def short_quickstart(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("qs") / "run"
    res = subprocess.run([sys.executable, "-m", "bert_jax.cli", "quickstart", "--workdir", str(workdir),
                          "--steps", "30", "--finetune-steps", "10"], cwd=ROOT,
                         capture_output=True, text=True, timeout=1500, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    return workdir, res


def test_quickstart_console_is_quiet_and_useful(short_quickstart):
    workdir, res = short_quickstart
    assert res.returncode == 0, res.stderr[-3000:]
    lines = [line for line in re.split(r"[\r\n]+", res.stdout + res.stderr) if line.strip()]
    stray = [line for line in lines if not any(re.search(p, line) for p in ALLOWED)]
    assert not stray, stray[:10]
    assert not [line for line in lines if "WARNING" in line]
    assert [line[:5] for line in lines if re.match(r"^\[\d/5\]", line)] == ["[1/5]", "[2/5]", "[3/5]", "[4/5]",
                                                                          "[5/5]"]


def test_quickstart_summary_agrees_with_the_runs(short_quickstart):
    workdir, res = short_quickstart
    summary = json.loads((workdir / "summary.json").read_text())
    evals = [json.loads(line) for line in open(workdir / "pretrain" / "metrics.jsonl") if "eval/mlm_accuracy" in line]
    assert evals[0]["step"] == 0 and evals[-1]["step"] == 30
    assert summary["held_out_mlm_accuracy_before"] == evals[0]["eval/mlm_accuracy"]
    assert summary["held_out_mlm_accuracy_after"] == evals[-1]["eval/mlm_accuracy"]
    metric = summary["metric"]
    for kind in ("pretrained", "scratch"):
        dev = json.loads((workdir / f"finetune_{kind}" / "eval" / "dev_results.json").read_text())
        assert summary[f"dev_{metric}_{kind}"] == dev[metric]
    printed = res.stdout
    assert f"{summary['held_out_mlm_accuracy_after']:.3f}" in printed
    assert f"context-free guess {summary['context_free_guess']:.3f}" in printed
    assert 0 < summary["context_free_guess"] < 0.2
    for run in ("pretrain", "finetune_pretrained", "finetune_scratch"):
        assert (workdir / run / "report.html").is_file()
