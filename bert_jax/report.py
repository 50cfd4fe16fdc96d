"""Run reports: ``bert-jax report WORKDIR`` -> ``WORKDIR/report.html`` and ``WORKDIR/report/*.png``
(``--output DIR/NAME.html``: the PNGs in ``DIR/NAME_files/``).

Reads what a run directory already holds -- ``metrics.jsonl``, ``config.json``,
``eval/*_results.json``, ``eval/summary.json`` and ``seed_<s>/`` sub-runs of a
multi-seed fine-tuning, and the shard ``manifest.json`` its config points to --
and draws curves (loss, MLM/NSP or task accuracy, learning rate, gradient norm,
sequences/s and MFU, dev metrics at each evaluation, the spread over seeds)
into one self-contained HTML page: images as base64 data URIs, inline CSS, no
network. Works on a run still going: a last line of ``metrics.jsonl`` cut
mid-write is skipped and named in the page's notes. Never imports JAX;
matplotlib is imported only when plotting.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import html
import io
import json
import logging
import math
import os
import sys

from bert_jax.run_config import recorded_shape_problem, seed_runs
from data_pipeline.shards import atomic_write_bytes

log = logging.getLogger("bert_jax")

# (file stem, title, panels): each panel is a list of metric keys drawn together.
CURVES = [
    ("loss", "Loss", [["train/loss", "train/mlm_loss", "train/nsp_loss", "eval/mlm_loss", "eval/nsp_loss",
                       "eval/loss"]]),
    ("accuracy", "Accuracy (train and eval)",
     [["train/mlm_accuracy", "eval/mlm_accuracy"], ["train/nsp_accuracy", "eval/nsp_accuracy"],
      ["train/accuracy"]]),
    ("learning_rate", "Learning rate", [["train/learning_rate"]]),
    ("grad_norm", "Gradient and parameter norm", [["train/grad_norm"], ["train/param_norm"]]),
    ("throughput", "Throughput: sequences/s (and packed instances/s), real tokens/s and MFU",
     [["train/seq_per_s", "train/examples_per_s"], ["train/real_tokens_per_s"], ["train/mfu"]]),
]
_CURVE_KEYS = {k for _, _, panels in CURVES for panel in panels for k in panel}
# Pretraining summary facts shown from a shard manifest (the rest is in the raw file).
MANIFEST_FIELDS = ("num_examples", "num_documents", "num_shards", "max_seq_length", "max_predictions_per_seq",
                   "vocab_size", "masked_lm_prob", "masking", "whole_word_masking", "seed", "vocab_hash")
GENERATOR = "bert-jax report"

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222;padding:0 16px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;border-bottom:1px solid #ccc;padding-bottom:3px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0;max-width:100%}td{overflow-wrap:anywhere}td:first-child{white-space:nowrap}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;
vertical-align:top}th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:12px 0}figure img{max-width:100%;border:1px solid #eee}figcaption{color:#555;font-size:12px}
.notes{background:#fff6e0;border:1px solid #e8c66a;padding:6px 12px}.meta{color:#555}
details pre{background:#f7f7f7;padding:8px;overflow:auto;max-height:480px}
"""
# Marks the page once every image has decoded, so a headless browser can check it (--dump-dom).
_SCRIPT = """window.addEventListener("load",function(){var im=document.images,ok=0;
for(var i=0;i<im.length;i++){if(im[i].complete&&im[i].naturalWidth>0)ok++;}
document.body.setAttribute("data-images-decoded",ok+"/"+im.length);});"""


class ReportError(ValueError):
    """A directory that holds no run to report on; the message says what to pass."""


def read_metrics(path: str, notes: list[str]) -> list[dict]:
    """Rows of a ``metrics.jsonl``; undecodable lines are skipped and described in ``notes``.

    Values written as strings by the metric writer (``"nan"``, ``"inf"``) become floats.
    """
    with open(path, "rb") as f:
        text = f.read().decode("utf-8", errors="replace")
    lines = text.split("\n")
    rows, bad = [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            step = int(row["step"])
        except (ValueError, KeyError, TypeError):
            bad.append(number)
            continue
        out = {"step": step}
        for key, value in row.items():
            if key != "step" and isinstance(value, (int, float, str)):
                try:
                    out[key] = float(value)
                except ValueError:
                    continue  # a non-numeric field is not a curve
        rows.append(out)
    # The writer ends each row with a newline, so an unparsable tail without one was cut mid-write.
    if bad and bad[-1] == len(lines) and not text.endswith("\n"):
        notes.append(f"{path}:{len(lines)}: the last line is cut mid-write (the run is still writing, or was "
                     "killed while writing); it is left out.")
        bad = bad[:-1]
    if bad:
        notes.append(f"{path}: line(s) {', '.join(map(str, bad))} are not JSON rows with a step and are left out "
                     "(a resumed run after a kill mid-write leaves such lines; the rest of the file is used).")
    return rows


def series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    """``(steps, values)`` of ``key``, sorted by step; the last row of a step wins (a resumed run re-logs)."""
    by_step = {r["step"]: r[key] for r in rows if key in r}
    steps = sorted(by_step)
    return steps, [by_step[s] for s in steps]


def _read_json(path: str, notes: list[str]):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        notes.append(f"{path} could not be read ({e}); it is left out of the report.")
        return None


def _read_run_config(path: str, notes: list[str]) -> dict | None:
    """A run's config.json, or None (noted) when it is not one: valid JSON of another shape (a
    list, ``"resolved": null``) made the report a traceback."""
    config = _read_json(path, notes)
    if config is None:
        return None
    problem = recorded_shape_problem(config)
    if problem:
        notes.append(f"{path} is not a bert-jax run config ({problem}); it is left out of the report.")
        return None
    return config


def _flatten(value, prefix: str = "") -> list[tuple[str, object]]:
    if isinstance(value, dict):
        out = []
        for k, v in value.items():
            out.extend(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return [(prefix, value)]


def _fmt(v) -> str:
    if isinstance(v, bool) or v is None:
        return json.dumps(v)  # as config.json spells it
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, list):
        return ", ".join(_fmt(x) for x in v)
    return str(v)


def _is_model_config(path: str) -> bool:
    """``path`` is a model directory's config.json (Hugging Face or bert-jax export), not a run's."""
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError):
        return False  # a damaged run config is still a run's: the report names it in its notes
    return isinstance(config, dict) and "mode" not in config and ("model_type" in config or "architectures" in config)


def _runs(workdir: str) -> list[tuple[str, str]]:
    """``(label, directory)`` of the run itself and its ``seed_<s>`` sub-runs, seeds in numeric order."""
    runs = []
    config = os.path.join(workdir, "config.json")
    if (any(os.path.exists(os.path.join(workdir, n)) for n in ("metrics.jsonl", "checkpoints"))
            or (os.path.exists(config) and not _is_model_config(config))):
        runs.append(("", workdir))
    for name in seed_runs(workdir):  # (os.listdir, not glob: a name may hold "[lr=1e-4]")
        runs.append((f"seed {name[5:]}", os.path.join(workdir, name)))
    return runs


def holds_run(workdir: str) -> bool:
    """Whether ``workdir`` holds what a report shows: a run, ``seed_<s>/`` sub-runs or their
    ``eval/summary.json`` (not a model directory, nor a new workdir a model was only scored into)."""
    return bool(_runs(workdir)) or os.path.isfile(os.path.join(workdir, "eval", "summary.json"))


# ---------------------------------------------------------------- plots


def _new_figure(rows: int, cols: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    # A Figure with its own Agg canvas: no pyplot global state, no display backend.
    fig = Figure(figsize=(9, 2.8 * rows + 0.4) if cols == 1 else (3.0 * cols, 3.2 * rows), dpi=100,
                 layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": GENERATOR})  # marks the file as ours
    return buf.getvalue()


_PAGE_MARK = f"<meta name='generator' content='{GENERATOR}'>".encode()
_PNG_MARK = b"tEXtSoftware\x00" + GENERATOR.encode()
# Pages written before the generator tag began with exactly this, and their PNGs said only Matplotlib.
_LEGACY_PAGE = b"<!DOCTYPE html><html><head><meta charset='utf-8'><title>"
# Plot files a report writes beside its page (CURVES, then the dev-metrics and seed figures).
EVAL_PLOT, SEED_PLOT = "eval_metrics", "seed_spread"
PLOT_STEMS = tuple(stem for stem, _, _ in CURVES) + (EVAL_PLOT, SEED_PLOT)


def _page_is_ours(path: str) -> bool:
    with open(path, "rb") as f:
        head = f.read(1 << 12)
    return _PAGE_MARK in head or (head.startswith(_LEGACY_PAGE) and b" report: " in head[:400])


def plot_dir_of(output: str) -> str:
    """Where the PNGs of the report ``output`` go: ``NAME_files/`` beside ``NAME.html`` (``report/``
    beside ``report.html``, as always), so two reports written into one folder keep their own plots
    (one shared ``report/`` had the second replace the first's, unsaid)."""
    stem, ext = os.path.splitext(output)
    if os.path.basename(output) == "report.html":
        return stem
    return f"{stem if ext else output}_files"  # not NAME/: `--output runs/tiny.html` put them into the run


def _check_plot_paths(plot_dir: str) -> None:
    """Refuse a ``plot_dir`` that is not a folder, or a plot path in it that is not a file: neither
    is replaced, even with ``--overwrite`` or in the run's own ``report/``."""
    if os.path.exists(plot_dir) and not os.path.isdir(plot_dir):
        raise ReportError(f"{plot_dir} is a file, where the report keeps its plots (a folder named after the "
                          f"page); move {plot_dir} away, or pass another --output.")
    for stem in PLOT_STEMS:
        path = os.path.join(plot_dir, f"{stem}.png")
        if os.path.exists(path) and not os.path.isfile(path):
            raise ReportError(f"{path} is not a file, where the report writes a plot; move {path} away, or "
                              "pass another --output.")


def _check_output(output: str, plot_dir: str, overwrite: bool) -> None:
    """Refuse an ``--output`` that is a directory, or that would replace files bert-jax did not write.

    A page is ours if it carries the generator tag (or the old pages' exact opening); a plot if its
    PNG text says so, or, for plots of older versions, if the page beside it is ours."""
    if os.path.isdir(output):
        raise ReportError(f"--output {output} is a directory; pass an HTML file to write, e.g. "
                          f"--output {os.path.join(output, 'report.html')}.")
    page_ours = os.path.isfile(output) and _page_is_ours(output)
    theirs = [output] if os.path.isfile(output) and not page_ours else []
    for stem in PLOT_STEMS:
        path = os.path.join(plot_dir, f"{stem}.png")
        if os.path.isfile(path) and not page_ours:
            with open(path, "rb") as f:
                if _PNG_MARK not in f.read(1 << 12):
                    theirs.append(path)
    if theirs and not overwrite:
        raise ReportError(f"{', '.join(theirs)} already exist{'s' if len(theirs) == 1 else ''} and "
                          f"{'was' if len(theirs) == 1 else 'were'} not written by bert-jax report; pass another "
                          f"--output, or --overwrite to replace {'it' if len(theirs) == 1 else 'them'}.")


def _finite(values: list[float]) -> list[float]:
    # NaN leaves a gap; an infinite value would break the axis limits, so it is drawn as a gap too.
    return [v if math.isfinite(v) else float("nan") for v in values]


def curve_figure(title: str, panels: list[list[str]], runs: dict[str, list[dict]]):
    """Draws the panels that have data; returns ``(png bytes, caption lines)`` or ``None``.

    Args:
      panels: keys drawn together per panel, e.g. ``[["train/loss", "eval/mlm_loss"]]``.
      runs: run label -> metrics rows.
    """
    drawn = [[(label, key, *series(rows, key)) for key in panel for label, rows in runs.items()
              if any(key in r for r in rows)] for panel in panels]
    drawn = [p for p in drawn if p]
    if not drawn:
        return None
    fig = _new_figure(len(drawn))
    captions = []
    for i, lines in enumerate(drawn):
        ax = fig.add_subplot(len(drawn), 1, i + 1)
        for label, key, steps, values in lines:
            name = f"{label}: {key}" if label else key
            ax.plot(steps, _finite(values), label=name, linestyle="--" if key.startswith("eval/") else "-",
                    marker="o" if len(steps) <= 40 else None, markersize=3)
            bad = [s for s, v in zip(steps, values) if not math.isfinite(v)]
            captions.append(f"{name}: last {values[-1]:.6g} at step {steps[-1]} ({len(steps)} points)"
                            + (f"; non-finite at step(s) {', '.join(map(str, bad[:10]))}" if bad else ""))
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    fig.suptitle(title)
    return _png(fig), captions


def _baseline_of(key: str, keys: list[str]) -> str | None:
    """The metric a ``[split/]baseline_<name>`` key is a baseline for: ``<name>`` itself, a metric
    ``<name>`` ends with (``majority_accuracy``, ``first_sentence_f1``), or the split's only metric."""
    prefix, name = key.rsplit("/", 1)
    name = name[len("baseline_"):]
    metrics = [k for k in keys if k.rsplit("/", 1)[0] == prefix and not k.rsplit("/", 1)[1].startswith("baseline_")]
    for m in metrics:
        metric = m.rsplit("/", 1)[1]
        if name == metric or name.endswith("_" + metric):
            return m
    return metrics[0] if len(metrics) == 1 else None


def eval_figure(runs: dict[str, list[dict]]):
    """Fine-tuning: each dev metric at each evaluation, one panel per metric; a ``baseline_<m>``
    is drawn dashed in the panel of ``<m>``. Returns ``(png, captions)`` or ``None``."""
    keys = sorted({k for rows in runs.values() for r in rows for k in r
                   if k.startswith("eval/") and k not in _CURVE_KEYS})
    baseline = {k: _baseline_of(k, keys) for k in keys if k.rsplit("/", 1)[-1].startswith("baseline_")}
    panels = [k for k in keys if k not in baseline or baseline[k] is None]
    if not panels:
        return None
    cols = min(3, len(panels))
    nrows = -(-len(panels) // cols)
    fig = _new_figure(nrows, cols)
    captions = []
    for i, key in enumerate(panels):
        ax = fig.add_subplot(nrows, cols, i + 1)
        for label, rows in runs.items():
            steps, values = series(rows, key)
            if steps:
                ax.plot(steps, _finite(values), marker="o", markersize=4, label=label or key)
                captions.append(f"{label + ': ' if label else ''}{key}: " +
                                ", ".join(f"{v:.4g} @ {s}" for s, v in list(zip(steps, values))[-6:]))
        for b in (b for b, m in baseline.items() if m == key):
            steps, values = series(next(iter(runs.values())), b)
            if steps:
                ax.axhline(values[-1], color="grey", linestyle="--", label=f"{b.split('/')[-1]} {values[-1]:.4g}")
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle("Dev metrics at each evaluation")
    return _png(fig), captions


def seed_figure(summary: dict):
    """Multi-seed: one panel per metric of ``eval/summary.json``: each seed's value (labelled), the
    mean and a +- std bar. Returns ``(png, captions)`` or ``None``."""
    seeds = summary.get("seeds", [])
    metrics = {k: v for k, v in summary.get("metrics", {}).items() if not k.split("/")[-1].startswith("baseline_")}
    if not metrics:
        return None
    cols = min(4, len(metrics))
    nrows = -(-len(metrics) // cols)
    fig = _new_figure(nrows, cols)
    captions = []
    for i, (name, m) in enumerate(metrics.items()):
        ax = fig.add_subplot(nrows, cols, i + 1)
        values = [float(v) for v in m["values"]]
        # Spread points sideways by seed index so equal values stay visible.
        xs = [-0.15 + 0.3 * j / max(len(values) - 1, 1) for j in range(len(values))]
        ax.scatter(xs, values, zorder=3)
        for x, v, s in zip(xs, values, seeds):
            ax.annotate(str(s), (x, v), textcoords="offset points", xytext=(4, 2), fontsize=7)
        ax.errorbar([0.45], [m["mean"]], yerr=[m["std"]], fmt="D", color="black", capsize=5)
        ax.set_xlim(-0.4, 0.7)
        ax.set_xticks([0.0, 0.45], ["seeds", "mean ± std"])
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3, axis="y")
        captions.append(f"{name}: mean {m['mean']:.4g} ± {m['std']:.4g} over {len(values)} seed(s); values "
                        + ", ".join(f"{v:.4g}" for v in values))
    fig.suptitle(f"Spread over seeds {', '.join(map(str, seeds))}")
    return _png(fig), captions


# ---------------------------------------------------------------- page


def _table(rows: list[list], header: list[str] | None = None) -> str:
    def cell(v, tag="td"):
        cls = ' class="num"' if isinstance(v, (int, float)) and not isinstance(v, bool) else ""
        return f"<{tag}{cls}>{html.escape(_fmt(v))}</{tag}>"
    head = "<tr>" + "".join(cell(h, "th") for h in header) + "</tr>" if header else ""
    return "<table>" + head + "".join("<tr>" + "".join(cell(v) for v in r) + "</tr>" for r in rows) + "</table>"


def _data_section(config: dict | None, notes: list[str]) -> str:
    parts = []
    data = (config or {}).get("data", {})
    manifests = {}
    for split in ("train", "eval"):
        directory = data.get(f"{split}_dir")
        if directory:
            path = os.path.join(directory, "manifest.json")
            manifest = _read_json(path, notes)
            if manifest is None and not os.path.exists(path):
                notes.append(f"data.{split}_dir manifest {path} is not there (shards on another machine, or "
                             "moved); its summary is left out.")
            if isinstance(manifest, dict):
                manifests[split] = (path, manifest)
    if manifests:
        names = list(manifests)
        fields = list(MANIFEST_FIELDS) + sorted({k for n in names
                                                  for k, _ in _flatten(manifests[n][1].get("warnings", {}), "warnings")})
        flat = {n: dict(_flatten(manifests[n][1])) for n in names}
        rows = [[f, *[flat[n].get(f, "") for n in names]] for f in fields]
        parts.append("<h3>Shards</h3>" + _table(rows, ["field", *[f"{n}: {manifests[n][0]}" for n in names]]))
    resolved = (config or {}).get("resolved", {}).get("data")
    if resolved:
        parts.append("<h3>Task data</h3>" + _table([[k, v] for k, v in _flatten(resolved)], ["field", "value"]))
    return "".join(parts)


def _results_section(run_dirs: list[tuple[str, str]], summary: dict | None, notes: list[str]) -> str:
    rows = []
    for label, d in run_dirs:
        eval_dir = os.path.join(d, "eval")
        names = sorted(n for n in os.listdir(eval_dir) if n.endswith("_results.json")) if os.path.isdir(eval_dir) else []
        for path in (os.path.join(eval_dir, n) for n in names):
            record = _read_json(path, notes)
            if isinstance(record, dict):
                for k, v in record.items():
                    if isinstance(v, (int, float)) and k not in ("step", "num_examples"):
                        rows.append([label or "run", record.get("split", os.path.basename(path)),
                                     record.get("step", ""), record.get("num_examples", ""), k, float(v)])
    out = _table(rows, ["run", "split", "step", "examples", "metric", "value"]) if rows else ""
    if summary:
        out += "<h3>Over seeds</h3>" + _table(
            [[k, m["mean"], m["std"], len(m["values"]), _fmt(m["values"])] for k, m in summary["metrics"].items()],
            ["metric", "mean", "std", "n", "values"])
    return out


def write_report(workdir: str, output: str | None = None, overwrite: bool = False) -> str:
    """Writes the report of the run in ``workdir`` (pretraining, fine-tuning, multi-seed fine-tuning;
    finished or still going) and returns the HTML path.

    Args:
      workdir: a run directory (``--workdir`` of ``bert-jax pretrain | finetune``).
      output: the HTML file (default ``workdir/report.html``); the PNGs go to the folder of its name
        beside it (``plot_dir_of``: ``NAME_files/``, ``report/`` for ``report.html``).
        Files there that bert-jax did not write are not replaced unless ``overwrite``.
    Raises:
      ReportError: ``workdir`` holds no run; ``output`` is a directory or would replace a user's file.
    """
    workdir = os.path.abspath(workdir)
    if not os.path.isdir(workdir):
        raise ReportError(f"{workdir} {'is not a directory' if os.path.exists(workdir) else 'does not exist'}; "
                          "pass a run directory (the --workdir of bert-jax pretrain or finetune).")
    run_dirs = _runs(workdir)
    summary_path = os.path.join(workdir, "eval", "summary.json")
    if not holds_run(workdir):
        if _is_model_config(os.path.join(workdir, "config.json")):
            raise ReportError(f"{workdir} is a model directory (its config.json describes a model, not a run); "
                              "pass a run directory (the --workdir of bert-jax pretrain or finetune).")
        raise ReportError(f"{workdir} holds no metrics.jsonl, config.json, seed_<s>/ runs or eval/summary.json; "
                          "pass a run directory (the --workdir of bert-jax pretrain or finetune).")
    given = output is not None
    output = os.path.abspath(output or os.path.join(workdir, "report.html"))
    plot_dir = plot_dir_of(output)
    _check_plot_paths(plot_dir)
    if given:  # the run's own report.html and report/ are always rewritten
        _check_output(output, plot_dir, overwrite)
    try:
        os.makedirs(plot_dir, exist_ok=True)
        probe = os.path.join(plot_dir, f".write-test-{os.getpid()}")
        open(probe, "wb").close()
        os.remove(probe)
    except OSError as e:
        raise ReportError(f"cannot write the report under {plot_dir} ({e.strerror}); pass --output FILE "
                          "in a directory you can write to.") from None
    notes: list[str] = []
    runs = {}
    for label, d in run_dirs:
        path = os.path.join(d, "metrics.jsonl")
        if os.path.isfile(path):
            runs[label] = read_metrics(path, notes)
        else:
            notes.append(f"{path} does not exist yet: nothing logged so far.")
    config, config_path = None, None
    for _, d in run_dirs:
        config = _read_run_config(os.path.join(d, "config.json"), notes)
        if config is not None:
            config_path = os.path.join(d, "config.json")
            break
    summary = _read_json(summary_path, notes)
    summary = summary if isinstance(summary, dict) and isinstance(summary.get("metrics"), dict) else None

    figures = [(stem, title, curve_figure(title, panels, runs)) for stem, title, panels in CURVES]
    figures.append((EVAL_PLOT, "Dev metrics at each evaluation", eval_figure(runs)))
    if summary:
        figures.append((SEED_PLOT, "Spread over seeds", seed_figure(summary)))
    body = []
    for stem, title, drawn in figures:
        if drawn is None:
            continue
        png, captions = drawn
        atomic_write_bytes(os.path.join(plot_dir, f"{stem}.png"), png)
        uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        body.append(f'<figure id="plot-{stem}"><img alt="{html.escape(title)}" src="{uri}">'
                    f"<figcaption>{'<br>'.join(html.escape(c) for c in captions)}</figcaption></figure>")
    if not body:
        notes.append("no metric has been logged yet, so there is nothing to plot.")

    cfg = config or {}
    total = cfg.get("resolved", {}).get("total_steps") or cfg.get("optim", {}).get("total_steps")
    last = {label or "run": max((r["step"] for r in rows), default=0) for label, rows in runs.items()}
    progress = "; ".join(f"{k}: step {v}" + (f" of {total}" if total else "") for k, v in last.items())
    mode = cfg.get("mode", "fine-tuning" if summary else "?")
    title = f"{mode} report: {os.path.basename(workdir)}" + (f" ({cfg['task']})" if cfg.get("task") else "")
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    page = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><meta name='generator' content='{GENERATOR}'>"
            f"<title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style><script>{_SCRIPT}</script></head><body>",
            f"<h1>{html.escape(title)}</h1><p class='meta'>{html.escape(workdir)}<br>last logged: "
            f"{html.escape(progress or 'nothing yet')}<br>written {now}</p>"]
    # The sections below add notes of their own (a damaged results file): build them first, so
    # that the Notes block at the top lists every note.
    results = _results_section(run_dirs, summary, notes)
    data = _data_section(config, notes)
    if notes:
        page.append("<div class='notes'><b>Notes</b><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes)
                    + "</ul></div>")
    page.append("<h2>Curves</h2>" + "".join(body))
    if results:
        page.append("<h2>Final results</h2>" + results)
    if data:
        page.append("<h2>Data</h2>" + data)
    if config is not None:
        page.append(f"<h2>Resolved config</h2><p class='meta'>{html.escape(config_path)}</p>"
                    "<details open><summary>as a table</summary>"
                    + _table([[k, v] for k, v in _flatten(config)], ["field", "value"])
                    + "</details><details><summary>as JSON</summary><pre>"
                    + html.escape(json.dumps(config, indent=2)) + "</pre></details>")
    page.append("</body></html>\n")
    atomic_write_bytes(output, "".join(page).encode("utf-8"))
    return output


def main(argv: list[str] | None = None) -> int:
    """``bert-jax report WORKDIR [--output FILE]``."""
    parser = argparse.ArgumentParser(
        prog="bert-jax report",
        description="Write WORKDIR/report.html (self-contained: plots embedded) and the plots as "
                    "PNGs in NAME_files/ beside NAME.html (report/ for report.html), for a pretraining or fine-tuning run, "
                    "finished or still going.")
    parser.add_argument("workdir", help="run directory (the --workdir of bert-jax pretrain or finetune)")
    parser.add_argument("--output", default=None, help="HTML file to write (default: WORKDIR/report.html)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an --output (or plots beside it) that bert-jax did not write")
    args = parser.parse_args(argv)
    try:
        path = write_report(args.workdir, args.output, overwrite=args.overwrite)
    except ReportError as e:
        print(f"bert-jax report: {e}", file=sys.stderr)
        return 2
    except ImportError as e:
        print(f"bert-jax report: {e}; install matplotlib (pip install 'matplotlib>=3.8').", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
