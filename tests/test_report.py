"""``bert-jax report``: the HTML report of a real tiny pretraining run, of a run still writing,
of a multi-seed fine-tuning, and the page as a headless browser renders it."""

import base64
import html
import io
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="matplotlib is a bert-jax dependency (pyproject.toml); install it")
Image = pytest.importorskip("PIL.Image", reason="Pillow comes with matplotlib; install matplotlib")

from bert_jax import cli, report  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, "configs", "pretrain", "tiny.py")
CORPUS = [os.path.join(ROOT, "data", "corpus", n) for n in ("tutorial.txt", "howto.txt")]
PRETRAIN_PLOTS = {"loss", "accuracy", "learning_rate", "grad_norm", "throughput"}


@pytest.fixture(scope="module")
def pretrain_run(tmp_path_factory):
    """A 10-step pretraining run (hidden 32) on shards of two corpus files, evaluated at steps 5 and 10."""
    pytest.importorskip("jax")
    tokenizers = pytest.importorskip("tokenizers")
    from bert_jax import launch
    from data_pipeline import cli as data_cli
    root = tmp_path_factory.mktemp("report_run")
    tok = tokenizers.BertWordPieceTokenizer(lowercase=True)
    tok.train(CORPUS, vocab_size=500, min_frequency=2, show_progress=False)
    tok.save_model(str(root))
    shards = str(root / "shards")
    assert data_cli.main(["build", "--input", *CORPUS, "--vocab", str(root / "vocab.txt"), "--output", shards,
                          "--max-seq-length", "32", "--max-predictions-per-seq", "5", "--dupe-factor", "1",
                          "--seed", "3"]) in (0, None)
    config = launch.load_config(TINY, [f"data.train_dir={shards!r}", f"data.eval_dir={shards!r}",
                                       "data.max_seq_length=32", "data.max_predictions_per_seq=5",
                                       "model.hidden_size=32", "model.intermediate_size=37",
                                       "model.max_position_embeddings=32", "global_batch_size=8",
                                       "optim.total_steps=10", "optim.warmup_steps=2", "log_every_steps=2",
                                       "eval_every_steps=5", "eval_steps=2", "checkpoint.every_steps=0"])
    workdir = root / "run"
    launch.run_pretraining(config, str(workdir))
    return workdir


def rows_of(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def figures(page: str) -> dict[str, bytes]:
    """plot id -> decoded PNG bytes of its <img>; every <img> must carry a PNG data URI."""
    imgs = re.findall(r"<img [^>]*>", page)
    out = {}
    for fig_id, src in re.findall(r'<figure id="plot-([a-z_]+)"><img [^>]*src="([^"]*)"', page):
        assert src.startswith("data:image/png;base64,"), fig_id
        out[fig_id] = base64.b64decode(src.split(",", 1)[1], validate=True)
    assert len(out) == len(imgs), "an <img> outside a plot figure, or without a data URI"
    return out


def check_png(data: bytes):
    """Decodes with Pillow; a real plot is wide, and not a blank canvas."""
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.format == "PNG" and image.width >= 600 and image.height >= 250, image.size
    colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert len(colours) > 50, len(colours)


def caption(page: str, fig_id: str) -> str:
    return re.search(rf'<figure id="plot-{fig_id}">.*?<figcaption>(.*?)</figcaption>', page).group(1)


def test_report_of_a_pretraining_run(pretrain_run):
    path = report.write_report(str(pretrain_run))
    assert path == os.path.join(str(pretrain_run), "report.html")
    page = open(path, encoding="utf-8").read()
    assert "http://" not in page and "https://" not in page  # nothing fetched from the network
    plots = figures(page)
    assert set(plots) == PRETRAIN_PLOTS  # no fine-tuning plots for a pretraining run
    for stem, data in plots.items():
        check_png(data)
        assert open(pretrain_run / "report" / f"{stem}.png", "rb").read() == data
    assert not [n for n in os.listdir(pretrain_run / "report") if ".tmp" in n]

    rows = rows_of(pretrain_run)
    train = [r for r in rows if "train/loss" in r]
    evals = [r for r in rows if "eval/mlm_accuracy" in r]
    assert [r["step"] for r in train] == [2, 4, 6, 8, 10] and [r["step"] for r in evals] == [5, 10]
    assert f"train/loss: last {train[-1]['train/loss']:.6g} at step 10 (5 points)" in caption(page, "loss")
    assert f"eval/mlm_loss: last {evals[-1]['eval/mlm_loss']:.6g} at step 10 (2 points)" in caption(page, "loss")
    acc = caption(page, "accuracy")
    for key in ("train/mlm_accuracy", "eval/mlm_accuracy", "train/nsp_accuracy", "eval/nsp_accuracy"):
        assert f"{key}: last {rows[-1][key] if key in rows[-1] else train[-1][key]:.6g} at step 10" in acc
    assert f"train/mfu: last {train[-1]['train/mfu']:.6g}" in caption(page, "throughput")
    assert "step 10 of 10" in page

    manifest = json.load(open(os.path.join(pretrain_run.parent, "shards", "manifest.json")))
    shards_table = page.split("<h3>Shards</h3>")[1].split("</table>")[0]
    for field in ("num_examples", "num_documents", "max_seq_length", "vocab_size", "masked_lm_prob"):
        assert re.search(rf"<td>{field}</td><td[^>]*>{manifest[field]:g}</td>", shards_table), field
    config = json.load(open(pretrain_run / "config.json"))
    assert re.search(rf"<td>optim.learning_rate</td><td[^>]*>{config['optim']['learning_rate']:g}</td>", page)
    assert "<td>resolved.vocab_size</td>" in page


def test_a_run_still_writing(pretrain_run, tmp_path):
    """A cut last line, a resumed run's re-logged step, a garbled middle line and a NaN are shown, not fatal."""
    rows = [r for r in rows_of(pretrain_run) if "train/loss" in r]
    shutil.copy(pretrain_run / "config.json", tmp_path / "config.json")
    first, second, third = (dict(r) for r in rows[:3])
    second["train/loss"] = "nan"  # how the metric writer spells a non-finite value
    relogged = dict(third, **{"train/loss": third["train/loss"] - 0.5})  # after a resume, the newest row wins
    text = "\n".join(json.dumps(r) for r in (first, second)) + "\n" + '{"step": 6, "tra\n'
    text += json.dumps(third) + "\n" + json.dumps(relogged) + "\n" + json.dumps(rows[3])[:40]
    (tmp_path / "metrics.jsonl").write_text(text)
    page = open(report.write_report(str(tmp_path)), encoding="utf-8").read()
    assert "metrics.jsonl:6: the last line is cut mid-write" in page
    assert "line(s) 3 are not JSON rows" in page
    loss = caption(page, "loss")
    assert f"train/loss: last {relogged['train/loss']:.6g} at step 6 (3 points); non-finite at step(s) 4" in loss
    assert "step 6 of 10" in page
    for data in figures(page).values():
        check_png(data)


def test_a_run_with_no_metrics_yet(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 2, "train/lo')
    page = open(report.write_report(str(tmp_path)), encoding="utf-8").read()
    assert "<img" not in page and "nothing to plot" in page and "cut mid-write" in page


def multi_seed_run(root, seeds=(0, 1, 2)):
    """A multi-seed fine-tuning workdir as ``bert_jax.finetuning.run_finetuning`` lays it out, with the
    keys the metric writer logs for a classification task (values: noisy but deterministic)."""
    rng = np.random.default_rng(0)
    final = {}
    for seed in seeds:
        run = root / f"seed_{seed}"
        (run / "eval").mkdir(parents=True)
        (run / "config.json").write_text(json.dumps({"seed": seed, "mode": "finetune", "task": "docs_section",
                                                     "optim": {"total_steps": 40}, "seeds": []}))
        lines = []
        for step in (10, 20, 30, 40):
            lines.append({"step": step, "train/accuracy": 0.25 + step / 100 + rng.normal(0, 0.02),
                          "train/grad_norm": 1 / step ** 0.5, "train/learning_rate": 1e-3 * (1 - step / 40),
                          "train/loss": 1.4 - step / 50, "train/param_norm": 38 + step / 100,
                          "train/step_time_s": 0.3, "train/seq_per_s": 100 + rng.normal(0, 5),
                          "train/tokens_per_s": 6400.0, "train/mfu": 0.03})
            if step % 20 == 0:
                lines.append({"step": step, "eval/accuracy": 0.3 + step / 100 + rng.normal(0, 0.03),
                              "eval/baseline_majority": 0.25})
        final[seed] = lines[-1]["eval/accuracy"]
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
        (run / "eval" / "dev_results.json").write_text(json.dumps(
            {"step": 40, "task": "docs_section", "split": "dev", "num_examples": 488, "accuracy": final[seed],
             "baseline_majority": 0.25, "prediction_files": ["eval/dev/predictions.tsv"]}))
    values = [final[s] for s in seeds]
    (root / "eval").mkdir()
    (root / "eval" / "summary.json").write_text(json.dumps({"task": "docs_section", "seeds": list(seeds), "metrics": {
        # as finetuning.run_finetuning: the sample std, 0.0 for one seed (numpy would warn and give nan)
        "accuracy": {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                     "values": values},
        "baseline_majority": {"mean": 0.25, "std": 0.0, "values": [0.25] * len(seeds)}}}))
    return values


def test_report_of_a_multi_seed_finetuning(tmp_path):
    values = multi_seed_run(tmp_path)
    page = open(report.write_report(str(tmp_path)), encoding="utf-8").read()
    plots = figures(page)
    assert set(plots) == {"loss", "accuracy", "learning_rate", "grad_norm", "throughput", "eval_metrics",
                          "seed_spread"}
    for data in plots.values():
        check_png(data)
    for seed, value in zip((0, 1, 2), values):
        assert f"seed {seed}: eval/accuracy: " in caption(page, "eval_metrics")
        assert f"{value:.4g} @ 40" in caption(page, "eval_metrics")
        assert f"seed {seed}: train/loss: last" in caption(page, "loss")
    # The majority baseline is drawn inside the accuracy panel, not as a panel of its own.
    assert "eval/baseline_majority:" not in caption(page, "eval_metrics")
    spread = caption(page, "seed_spread")
    assert spread == (f"accuracy: mean {np.mean(values):.4g} ± {np.std(values, ddof=1):.4g} over 3 seed(s); "
                      f"values {', '.join(f'{v:.4g}' for v in values)}")
    assert page.count("<td>dev</td>") == 6  # accuracy and baseline for each seed
    assert "step 40 of 40" in page
    # A damaged results file is left out and named in the Notes block (its note was lost before).
    damaged = tmp_path / "seed_1" / "eval" / "dev_results.json"
    damaged.write_text(damaged.read_text()[:20])
    page = open(report.write_report(str(tmp_path), overwrite=True), encoding="utf-8").read()
    notes = page.split("<div class='notes'>", 1)[1].split("</div>", 1)[0]
    assert f"{damaged} could not be read" in html.unescape(notes) and page.count("<td>dev</td>") == 4


def test_baseline_is_matched_to_its_metric():
    keys = ["eval/accuracy", "eval/f1", "eval/baseline_majority_accuracy", "eval/baseline_majority_f1",
            "eval/baseline_first_sentence_f1", "eval/dev/exact_match", "eval/dev/baseline_no_answer"]
    assert report._baseline_of("eval/baseline_majority_f1", keys) == "eval/f1"
    assert report._baseline_of("eval/baseline_majority_accuracy", keys) == "eval/accuracy"
    assert report._baseline_of("eval/baseline_first_sentence_f1", keys) == "eval/f1"
    assert report._baseline_of("eval/dev/baseline_no_answer", keys) == "eval/dev/exact_match"
    assert report._baseline_of("eval/baseline_other", keys) is None  # two metrics: which one is unknown


def test_command_line(tmp_path, capsys):
    run = tmp_path / "run[lr=1e-4]"  # glob characters in a workdir name are common in sweeps
    multi_seed_run(run, seeds=(1, 2))
    out = tmp_path / "elsewhere" / "r.html"
    out.parent.mkdir()
    assert cli.main(["report", str(run), "--output", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    page = out.read_text()
    assert "seed 1: train/loss" in page and "seed 2: eval/accuracy" in page and "<td>dev</td>" in page
    assert (tmp_path / "elsewhere" / "r_files" / "seed_spread.png").is_file()  # in a folder of the page's name
    assert not (run / "report.html").exists()
    # a second report into the same folder keeps its own plots: one shared report/ had the
    # second replace the first's PNGs, unsaid
    other = tmp_path / "other"
    multi_seed_run(other, seeds=(3,))
    assert cli.main(["report", str(other), "--output", str(out.parent / "s.html")]) == 0
    assert (out.parent / "r_files" / "seed_spread.png").read_bytes() != \
        (out.parent / "s_files" / "seed_spread.png").read_bytes()
    assert sorted(os.listdir(out.parent)) == ["r.html", "r_files", "s.html", "s_files"]
    # where the plots go is taken: named, with nothing written (--overwrite replaces only files)
    (out.parent / "t_files").write_text("mine\n")
    (out.parent / "u_files" / "loss.png").mkdir(parents=True)
    for name, taken, what in (("t", "t_files", "is a file"), ("u", os.path.join("u_files", "loss.png"), "is not a file")):
        for extra in ([], ["--overwrite"]):
            assert cli.main(["report", str(run), "--output", str(out.parent / f"{name}.html"), *extra]) == 2
            assert f"{out.parent / taken} {what}, where the report" in capsys.readouterr().err
            assert not (out.parent / f"{name}.html").exists()
    assert (out.parent / "t_files").read_text() == "mine\n" and os.listdir(out.parent / "u_files") == ["loss.png"]
    # and so in the run's own report/ (the default --output), before any plot is written there
    (run / "report" / "seed_spread.png").mkdir(parents=True)
    assert cli.main(["report", str(run)]) == 2
    assert f"{run / 'report' / 'seed_spread.png'} is not a file, where the report" in capsys.readouterr().err
    assert os.listdir(run / "report") == ["seed_spread.png"] and not (run / "report.html").exists()
    (tmp_path / "empty").mkdir()
    assert cli.main(["report", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "empty") in err and "holds no metrics.jsonl" in err and "--workdir" in err
    assert cli.main(["report", str(tmp_path / "missing")]) == 2
    assert f"{tmp_path / 'missing'} does not exist; pass a run directory" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert cli.main(["report", str(tmp_path / "afile")]) == 2
    assert f"{tmp_path / 'afile'} is not a directory" in capsys.readouterr().err


def test_a_model_directory_or_a_config_json_of_another_shape(tmp_path, capsys):
    """A Hugging Face model directory was reported as a run (exit 0, report.html written into the
    model's folder); a config.json that is valid JSON of another shape (a list, "resolved": null,
    "optim": 5) was an AttributeError traceback. The first is refused, the second noted."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"architectures": ["BertForMaskedLM"], "model_type": "bert",
                                                   "hidden_size": 32}))
    assert cli.main(["report", str(model)]) == 2
    assert capsys.readouterr().err.strip() == (f"bert-jax report: {model} is a model directory (its config.json "
                                               "describes a model, not a run); pass a run directory (the --workdir "
                                               "of bert-jax pretrain or finetune).")
    assert sorted(os.listdir(model)) == ["config.json"]
    for i, odd in enumerate(([1, 2], {"mode": "finetune", "resolved": None}, {"mode": "pretrain", "optim": 5},
                             {"mode": "finetune", "resolved": {"data": [1]}})):
        run = tmp_path / f"odd{i}"
        run.mkdir()
        (run / "config.json").write_text(json.dumps(odd))
        (run / "metrics.jsonl").write_text(json.dumps({"step": 2, "train/loss": 1.0}) + "\n")
        assert cli.main(["report", str(run)]) == 0, odd
        page = (run / "report.html").read_text()
        assert f"{run / 'config.json'} is not a bert-jax run config" in html.unescape(page), odd


def test_output_never_replaces_a_users_files_without_overwrite(tmp_path, capsys):
    """An --output that exists and is not a report (or plots beside it that are not ours) is
    refused, nothing changed; a directory is refused without a leftover temporary file; rerunning
    onto its own report works, and --overwrite replaces the user's file as asked."""
    run = tmp_path / "run"
    multi_seed_run(run, seeds=(1,))
    notes = tmp_path / "notes.html"
    notes.write_text("<p>my notes: run bert-jax report after each run</p>\n")  # names it, is not one
    assert cli.main(["report", str(run), "--output", str(notes)]) == 2
    assert "notes.html already exists and was not written by bert-jax report" in capsys.readouterr().err
    assert notes.read_text() == "<p>my notes: run bert-jax report after each run</p>\n"
    paper = tmp_path / "paper"
    (paper / "summary_files").mkdir(parents=True)
    (paper / "summary_files" / "loss.png").write_bytes(b"my figure")
    assert cli.main(["report", str(run), "--output", str(paper / "summary.html")]) == 2
    assert "loss.png already exists" in capsys.readouterr().err
    assert (paper / "summary_files" / "loss.png").read_bytes() == b"my figure" and not (paper / "summary.html").exists()
    (tmp_path / "adir").mkdir()
    assert cli.main(["report", str(run), "--output", str(tmp_path / "adir")]) == 2
    assert "is a directory; pass an HTML file" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["adir", "notes.html", "paper", "run"]  # no report.tmp-* left
    out = tmp_path / "elsewhere.html"
    assert cli.main(["report", str(run), "--output", str(out)]) == 0
    assert cli.main(["report", str(run), "--output", str(out)]) == 0  # its own files: rewritten
    assert cli.main(["report", str(run), "--output", str(notes), "--overwrite"]) == 0
    assert "<meta name='generator' content='bert-jax report'>" in notes.read_text()


def test_headless_chromium_renders_every_image(pretrain_run, tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); .ci/run installs it")
    path = report.write_report(str(pretrain_run), str(tmp_path / "report.html"))
    count = open(path, encoding="utf-8").read().count("<img ")
    args = [chromium, "--headless", "--disable-gpu", "--no-sandbox", f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "shot.png"
    subprocess.run(args + [f"--screenshot={shot}", "--window-size=1200,3000", f"file://{path}"],
                   check=True, capture_output=True, timeout=120)
    image = Image.open(shot)
    assert image.size == (1200, 3000)
    assert len(image.convert("RGB").getcolors(maxcolors=1 << 22)) > 100  # plots drawn, not a blank page
    dom = subprocess.run(args + ["--dump-dom", f"file://{path}"], check=True, capture_output=True, text=True,
                         timeout=120).stdout
    assert f'data-images-decoded="{count}/{count}"' in dom, re.search(r"<body[^>]*>", dom)
    assert count == len(PRETRAIN_PLOTS)
