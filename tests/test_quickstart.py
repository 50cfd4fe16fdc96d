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
ALLOWED = [r"^\[\d/5\] ", r"^summary$", r"^  ",
           r"^(reading corpus(?: \(\d/2: [a-z]+\))?|partition|build|train): "]


@pytest.fixture(scope="module")
def short_quickstart(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("qs") / "run"
    res = subprocess.run([sys.executable, "-m", "bert_jax.cli", "quickstart", "--workdir", str(workdir),
                          "--steps", "30", "--finetune-steps", "10", "--seeds", "0", "--no-check"], cwd=ROOT,
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
    assert summary["seeds"] == [0]
    for kind in ("pretrained", "scratch"):
        dev = json.loads((workdir / f"finetune_{kind}" / "seed_0" / "eval" / "dev_results.json").read_text())
        assert summary[f"dev_{metric}_{kind}"] == dev[metric] == summary[f"dev_{metric}_{kind}_per_seed"][0]
    # The margin checks are reported (and not enforced under --no-check).
    assert set(summary["checks"].values()) <= {True, False} and len(summary["checks"]) == 2
    printed = res.stdout
    assert f"{summary['held_out_mlm_accuracy_after']:.3f}" in printed
    assert f"context-free guess {summary['context_free_guess']:.3f}" in printed
    assert 0 < summary["context_free_guess"] < 0.2
    for run in ("pretrain", "finetune_pretrained/seed_0", "finetune_scratch/seed_0"):
        assert (workdir / run / "report.html").is_file()


def test_quickstart_exits_1_when_a_margin_is_missed(short_quickstart):
    """Without --no-check the command asserts its margins: 30 pretraining steps cannot reach 3x
    the context-free guess, so the rerun (which resumes the finished runs, so it is quick) exits 1
    and names the missed check."""
    workdir, _ = short_quickstart
    res = subprocess.run([sys.executable, "-m", "bert_jax.cli", "quickstart", "--workdir", str(workdir),
                          "--steps", "30", "--finetune-steps", "10", "--seeds", "0"], cwd=ROOT,
                         capture_output=True, text=True, timeout=1500, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert res.returncode == 1, res.stderr[-3000:]
    assert "MISSED held-out MLM accuracy >= 3 x the context-free guess" in res.stdout
    assert json.loads((workdir / "summary.json").read_text())["checks"][
        "held-out MLM accuracy >= 3 x the context-free guess"] is False


def test_quickstart_refuses_a_workdir_of_other_settings_and_a_bad_corpus(short_quickstart, tmp_path):
    """A rerun with other settings reused the old vocabulary and checkpoints under the new
    numbers (a summary of two runs); it is refused, as is a non-quickstart directory. A corpus
    file in Latin-1 is named with the conversion to make, not shown as a traceback."""
    workdir, _ = short_quickstart

    def quickstart(*args):
        return subprocess.run([sys.executable, "-m", "bert_jax.cli", "quickstart", *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=600, env=dict(os.environ, JAX_PLATFORMS="cpu"))

    res = quickstart("--workdir", str(workdir), "--steps", "60", "--finetune-steps", "10", "--seeds", "0")
    assert res.returncode == 2, res.stderr[-2000:]
    assert "holds a quickstart run with other settings (steps 30 -> 60)" in res.stderr
    assert "Use a new --workdir" in res.stderr
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("mine\n")
    res = quickstart("--workdir", str(other))
    assert res.returncode == 2 and "is not a quickstart workdir" in res.stderr and os.listdir(other) == ["notes.txt"]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("faq.txt", "using.txt"):
        text = open(os.path.join(ROOT, "data", "corpus", name), encoding="utf-8").read()
        (corpus / name).write_bytes(text.replace("e", "\u00e9").encode("latin-1"))
    res = quickstart("--workdir", str(tmp_path / "qs"), "--corpus", str(corpus))
    err = res.stderr.strip().splitlines()
    assert res.returncode == 2 and err[-1].startswith("bert-jax quickstart: ") and "iconv -f latin1" in err[-1]
    assert "Traceback" not in res.stderr


def test_quickstart_rerun_over_a_checkpoint_that_does_not_read_is_one_line(short_quickstart, tmp_path):
    """A rerun resumes the finished runs; when the pretraining's last step has no checksum record
    and a truncated file (an older bert-jax, or a copy cut short), the rerun says so in one line
    (exit 2) naming the step, not a traceback."""
    import glob
    import shutil
    workdir = tmp_path / "run"
    shutil.copytree(short_quickstart[0], workdir)
    step = workdir / "pretrain" / "checkpoints" / "30"
    os.remove(step / "bert_jax_checksums.json")
    victim = max((p for p in glob.glob(str(step / "state" / "**" / "*"), recursive=True) if os.path.isfile(p)),
                 key=os.path.getsize)
    with open(victim, "r+b") as f:
        f.truncate(10)
    res = subprocess.run([sys.executable, "-m", "bert_jax.cli", "quickstart", "--workdir", str(workdir),
                          "--steps", "30", "--finetune-steps", "10", "--seeds", "0", "--no-check"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert res.returncode == 2, res.stderr[-3000:]
    line = re.findall(r"bert-jax quickstart: (.*)", res.stderr)  # TensorStore may print around it
    assert len(line) == 1 and f"checkpoint step 30 in {step.parent}" in line[0] and "reading it failed" in line[0]
    assert f'File "{os.path.join(ROOT, "bert_jax")}' not in res.stderr  # no traceback through bert-jax
