"""``bert-jax convert`` output directories: no silent overwrite, never into a training workdir."""

import logging
import os

import numpy as np
import pytest

from bert_jax.config import BertConfig
from bert_jax.convert import cli
from bert_jax.modeling import BertForPreTraining


@pytest.fixture(scope="module")
def source(tiny_kwargs, tmp_path_factory):
    directory = tmp_path_factory.mktemp("source")
    BertForPreTraining(BertConfig(**tiny_kwargs), seed=0).save_pretrained(directory, format="bert-jax")
    return directory


def _snapshot(directory):
    """Relative path -> bytes of every file below ``directory``."""
    out = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, directory)] = f.read()
    return out


def _convert(capsys, *argv):
    code = cli.main(list(argv))
    return code, capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--to", "--to-hf", "--to-tf"])
def test_non_empty_output_is_refused_without_overwrite(flag, source, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.json").write_text('{"hidden_size": 768}\n')
    (out / "notes.txt").write_text("mine\n")
    before = _snapshot(out)
    code, err = _convert(capsys, "--from", "bert-jax", str(source), flag, str(out))
    assert code == 2
    assert f"output {str(out)!r} is not empty (config.json, notes.txt); choose a new directory, or pass " \
           f"--overwrite" in err
    assert _snapshot(out) == before


@pytest.mark.parametrize("mark", ["checkpoints", "metrics.jsonl"])
@pytest.mark.parametrize("overwrite", [False, True])
def test_training_workdir_is_never_written_even_with_overwrite(mark, overwrite, source, tmp_path, capsys):
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "config.json").write_text('{"model": {"hidden_size": 32}}\n')
    if mark == "checkpoints":
        (workdir / "checkpoints" / "2").mkdir(parents=True)
        (workdir / "checkpoints" / "2" / "meta").write_text("step 2\n")
    else:
        (workdir / "metrics.jsonl").write_text('{"step": 1}\n')
    before = _snapshot(workdir)
    code, err = _convert(capsys, "--from", "bert-jax", str(source), "--to-hf", str(workdir),
                         *(["--overwrite"] if overwrite else []))
    assert code == 2
    assert f"output {str(workdir)!r} is a training workdir (it has {mark})" in err
    assert "--overwrite does not apply to workdirs" in err
    assert _snapshot(workdir) == before
    if mark == "checkpoints":  # the workdir as a source read in the wrong layout: the right one is named
        code, err = _convert(capsys, "--from", "hf", str(workdir), "--to", str(tmp_path / "out"))
        assert code == 2 and "It is a bert-jax training workdir (it has checkpoints/): convert it with " \
            "--from bert-jax." in err


def test_overwrite_replaces_model_files_of_any_layout_and_keeps_the_rest(source, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["--from", "bert-jax", str(source), "--to-tf", str(out)]) == 0
    (out / "notes.txt").write_text("mine\n")
    (out / "vocab.txt").write_text("[PAD]\n[UNK]\n")  # another model's vocabulary
    code, _ = _convert(capsys, "--from", "bert-jax", str(source), "--to-hf", str(out), "--overwrite")
    assert code == 0
    # The TF files and the old vocabulary are gone, so nothing stale can be loaded with the new weights.
    assert sorted(os.listdir(out)) == ["config.json", "model.safetensors", "notes.txt"]
    loaded = BertForPreTraining.from_pretrained(out)
    original = BertForPreTraining.from_pretrained(source)
    np.testing.assert_array_equal(np.asarray(loaded.params["cls"]["predictions"]["bias"]),
                                  np.asarray(original.params["cls"]["predictions"]["bias"]))


def test_existing_empty_directory_and_output_file(source, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["--from", "bert-jax", str(source), "--to", str(empty)]) == 0
    file = tmp_path / "file"
    file.write_text("x")
    code, err = _convert(capsys, "--from", "bert-jax", str(source), "--to", str(file))
    assert code == 2 and f"output {str(file)!r} is a file" in err and file.read_text() == "x"


def test_step_is_refused_for_a_source_with_one_set_of_weights(source, tmp_path, capsys):
    """--step was silently ignored for an export or a Hugging Face folder."""
    code, err = _convert(capsys, "--from", "bert-jax", str(source), "--step", "3", "--to-hf", str(tmp_path / "out"))
    assert code == 2 and "--step picks a checkpoint of a training workdir" in err
    assert not (tmp_path / "out").exists()


def test_mistyped_target_wrong_layout_and_missing_tf_data_are_named(source, tmp_path, capsys, caplog):
    """A mistyped --target said "cannot tell the model class ...; pass --target" although it was
    passed; --from hf on a bert-jax export did not name --from bert-jax; a TF index without its data
    file was a bare "[Errno 2]". Each advice, followed, converts."""
    out = tmp_path / "out"
    code, err = _convert(capsys, "--from", "bert-jax", str(source), "--to-hf", str(out),
                         "--target", "BertForTokenClassificatoin")
    assert code == 2 and "--target BertForTokenClassificatoin is not a model class (did you mean " \
                         "BertForTokenClassification?)" in err and not out.exists()
    code, err = _convert(capsys, "--from", "hf", str(source), "--to-hf", str(out))
    assert code == 2 and "It is a bert-jax model directory (it has bert_jax_params.safetensors): convert it " \
                         "with --from bert-jax." in err and not out.exists()
    with caplog.at_level(logging.WARNING, logger="bert_jax"):  # a new head, as it says, once
        assert cli.main(["--from", "bert-jax", str(source), "--to-hf", str(out),
                         "--target", "BertForTokenClassification"]) == 0
    assert [r.levelno for r in caplog.records if "classifier.bias, classifier.weight" in r.getMessage()] == [logging.WARNING]
    tf_dir = tmp_path / "tf"
    assert cli.main(["--from", "bert-jax", str(source), "--to-tf", str(tf_dir)]) == 0
    data = next(p for p in tf_dir.iterdir() if ".data-" in p.name)
    data.rename(tmp_path / data.name)
    code, err = _convert(capsys, "--from", "tf", str(tf_dir), "--to-hf", str(tmp_path / "from_tf"))
    assert code == 2 and f"{data} does not exist" in err and "copy it beside the index" in err
    (tmp_path / data.name).rename(data)
    assert cli.main(["--from", "tf", str(tf_dir), "--to-hf", str(tmp_path / "from_tf")]) == 0


@pytest.mark.parametrize("mode", ["pretrain", "finetune"])
def test_a_cased_runs_export_carries_its_casing(mode, tmp_path):
    """A run's vocabulary without tokenizer files beside it (the shards' copy) went out as a bare
    vocab.txt, which every tokenizer loads as lower-casing: a cased model's export lower-cased its
    input, unsaid. The export now holds the tokenizer files made with the casing the run read its
    text with (the shards' manifest, or a fine-tuning run's data.lowercase)."""
    import json
    from bert_jax.tokenization import BertTokenizerFast
    shards = tmp_path / "shards"
    shards.mkdir()
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "Hello", "hello", "World", "world"]
    (shards / "vocab.txt").write_text("\n".join(tokens) + "\n")
    (shards / "manifest.json").write_text(json.dumps({"tokenizer": {"do_lower_case": False}}))
    run = tmp_path / "run"
    run.mkdir()
    data = {"train_dir": str(shards)} if mode == "pretrain" else {"vocab_file": str(shards / "vocab.txt"),
                                                                  "lowercase": False}
    (run / "config.json").write_text(json.dumps({"mode": mode, "model": {}, "data": data}))
    files = cli._tokenizer_files(str(run), is_run=True)
    assert files["vocab.txt"] == (shards / "vocab.txt").read_bytes()
    out = tmp_path / "out"
    out.mkdir()
    for name, content in files.items():
        (out / name).write_bytes(content)
    assert BertTokenizerFast.from_pretrained(str(out)).tokenize("Hello World") == ["Hello", "World"]
    if mode == "finetune":  # an uncased run's export lower-cases, as before
        (run / "config.json").write_text(json.dumps({"mode": mode, "model": {}, "data": {**data, "lowercase": True}}))
        for name, content in cli._tokenizer_files(str(run), is_run=True).items():
            (out / name).write_bytes(content)
        assert BertTokenizerFast.from_pretrained(str(out)).tokenize("Hello World") == ["hello", "world"]
