"""BertConfig: Hugging Face field names and defaults, config.json round trips, validation."""

import dataclasses
import json
import sys

import pytest

from bert_jax.config import BertConfig

# bert-base-uncased's config.json as published (transformers 4.6 era), including keys we do not model.
BERT_BASE_UNCASED = {
    "architectures": ["BertForMaskedLM"],
    "attention_probs_dropout_prob": 0.1,
    "gradient_checkpointing": False,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 768,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-12,
    "max_position_embeddings": 512,
    "model_type": "bert",
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
    "transformers_version": "4.6.0.dev0",
    "type_vocab_size": 2,
    "use_cache": True,
    "vocab_size": 30522,
}


def test_defaults_are_hugging_face_defaults():
    c = BertConfig()
    assert (c.vocab_size, c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size) == \
        (30522, 768, 12, 12, 3072)
    assert (c.hidden_act, c.hidden_dropout_prob, c.attention_probs_dropout_prob) == ("gelu", 0.1, 0.1)
    assert (c.max_position_embeddings, c.type_vocab_size, c.initializer_range, c.layer_norm_eps) == \
        (512, 2, 0.02, 1e-12)
    assert (c.pad_token_id, c.position_embedding_type, c.is_decoder, c.add_cross_attention) == \
        (0, "absolute", False, False)
    assert (c.classifier_dropout, c.num_labels, c.problem_type, c.tie_word_embeddings) == (None, 2, None, True)
    assert c.id2label == {0: "LABEL_0", 1: "LABEL_1"} and c.label2id == {"LABEL_0": 0, "LABEL_1": 1}


def test_defaults_match_installed_transformers():
    transformers = pytest.importorskip("transformers")
    theirs = transformers.BertConfig().to_dict()
    ours = BertConfig().to_dict()
    for key, value in ours.items():
        if key in theirs and key not in ("id2label", "extra"):
            assert theirs[key] == value, key
    assert {int(k): v for k, v in ours["id2label"].items()} == {int(k): v for k, v in theirs["id2label"].items()}


def test_real_config_json_round_trips_with_extra_keys(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(BERT_BASE_UNCASED))
    config = BertConfig.from_pretrained(tmp_path)
    assert config.hidden_size == 768 and config.extra["architectures"] == ["BertForMaskedLM"]
    assert config.extra["gradient_checkpointing"] is False
    out = tmp_path / "out"
    config.save_pretrained(out)
    written = json.loads((out / "config.json").read_text())
    for key, value in BERT_BASE_UNCASED.items():
        assert written[key] == value, key
    assert BertConfig.from_json_file(out / "config.json") == config
    assert not list(out.glob("*.tmp"))


def test_labels_and_overrides(tmp_path):
    data = {**BERT_BASE_UNCASED, "id2label": {"0": "neg", "1": "neu", "2": "pos"},
            "label2id": {"neg": 0, "neu": 1, "pos": 2}}
    (tmp_path / "config.json").write_text(json.dumps(data))
    config = BertConfig.from_pretrained(tmp_path)
    assert config.num_labels == 3 and config.id2label[2] == "pos" and config.label2id["neu"] == 1
    resized = BertConfig.from_pretrained(tmp_path, num_labels=5)
    assert resized.num_labels == 5 and resized.id2label[4] == "LABEL_4" and len(resized.label2id) == 5
    assert config.replace(problem_type="regression").problem_type == "regression"
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.hidden_size = 10
    assert hash(config) == hash(BertConfig.from_pretrained(tmp_path))


@pytest.mark.parametrize("changes, message", [
    ({"hidden_size": 100, "num_attention_heads": 12}, "hidden_size \\(100\\) must be divisible by num_attention_heads"),
    ({"hidden_act": "gelu_magic"}, "hidden_act 'gelu_magic' is not supported"),
    ({"vocab_size": -5}, "vocab_size must be a positive integer, got -5"),
    ({"num_hidden_layers": 0}, "num_hidden_layers must be a positive integer"),
    ({"hidden_dropout_prob": 1.5}, "hidden_dropout_prob must be in \\[0, 1\\)"),
    ({"position_embedding_type": "relative_key"}, "only 'absolute'"),
    ({"problem_type": "ranking"}, "problem_type 'ranking'"),
    ({"add_cross_attention": True}, "needs is_decoder=True"),
])
def test_invalid_values_are_rejected(changes, message):
    with pytest.raises(ValueError, match=message):
        BertConfig(**changes)


def test_bad_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text('{"hidden_size": 768,\n "num_attention_heads": 7}')
    with pytest.raises(ValueError, match=f"{bad}.*divisible"):
        BertConfig.from_json_file(bad)
    bad.write_text('{"hidden_size": 768,\n oops}')
    with pytest.raises(ValueError, match=f"{bad}:2: not valid JSON"):
        BertConfig.from_json_file(bad)
    with pytest.raises(FileNotFoundError, match="No config.json"):
        BertConfig.from_pretrained(tmp_path / "missing")


def test_importing_config_does_not_load_jax():
    import subprocess

    code = "import bert_jax.config, sys; assert 'jax' not in sys.modules, 'jax imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_config_of_another_architecture_is_named_as_such(tmp_path, capsys):
    """A RoBERTa directory was read as BERT: "pass --target", then a list of 39 roberta.* keys
    that belong to no parameter, without saying the model is not BERT."""
    from bert_jax.convert import cli
    model = tmp_path / "roberta"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"architectures": ["RobertaForMaskedLM"], "model_type": "roberta",
                                                   "hidden_size": 32, "num_hidden_layers": 1}))
    with pytest.raises(ValueError, match=r"config.json: model_type 'roberta' is not BERT"):
        BertConfig.from_pretrained(model)
    assert cli.main(["--from", "hf", str(model), "--to", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "model_type 'roberta' is not BERT; bert-jax reads BERT models (model_type 'bert') only" in err, err
    assert not (tmp_path / "out").exists()


def test_recorded_relative_paths_resolve_against_the_run_directory_or_stay_as_recorded(tmp_path):
    """A run's relative init_from / vocab_file are read relative to where it was started; once that
    directory is gone (the project moved, or was copied from another machine), as recorded."""
    import ml_collections
    from bert_jax.run_config import recorded_defaults, recorded_run
    start = tmp_path / "project"
    (start / "pt").mkdir(parents=True)
    (start / "vocab.txt").write_text("[PAD]\n")
    run = tmp_path / "run"
    run.mkdir()
    record = {"init_from": "pt", "model": {}, "resolved": {"cwd": str(start), "data": {"vocab_file": "vocab.txt"}}}
    (run / "config.json").write_text(json.dumps(record))

    def filled():
        config = ml_collections.ConfigDict({"init_from": "", "data": {"vocab_file": ""}, "model": {}})
        recorded_defaults(config, recorded_run(str(run)))
        return config.init_from, config.data.vocab_file
    assert filled() == (str(start / "pt"), str(start / "vocab.txt"))
    record["init_from"] = "scratch"
    (run / "config.json").write_text(json.dumps(record))
    assert filled()[0] == "scratch"
    record["init_from"], record["resolved"]["cwd"] = "pt", str(tmp_path / "gone")
    (run / "config.json").write_text(json.dumps(record))
    assert filled() == ("pt", "")  # as recorded; the vocabulary is not filled when it is not found


def test_a_resume_may_change_length_intervals_and_paths_but_not_the_recipe():
    """recipe_changes, per field kind, on a fine-tuning config (GLUE RTE)."""
    import os
    from bert_jax.launch import load_config
    from bert_jax.run_config import recipe_changes
    rte = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "glue", "rte.py")
    recorded = {**json.loads(json.dumps(load_config(rte, []).to_dict())), "resolved": {"model": {"hidden_size": 128}}}
    allowed = ["optim.total_steps=99", "checkpoint.every_steps=7", "log_every_steps=3", "eval_every_steps=5",
               "data.data_dir='/moved/rte'", "init_from='/elsewhere'", "mesh_shape=(1,1,1)", "num_microbatches=2",
               "model.hidden_size=64", "scan_layers=True"]  # shapes and layout: the checkpoint's own checks
    assert recipe_changes(recorded, load_config(rte, allowed)) == []
    ner = rte.replace(os.path.join("glue", "rte.py"), os.path.join("ner", "conll_docs.py"))
    recorded_ner = json.loads(json.dumps(load_config(ner, []).to_dict()))  # the file's layout and the scoring mode
    assert recipe_changes(recorded_ner, load_config(ner, ["data.mode='strict'", "data.num_columns=2",
                                                         "data.label_column=1"])) == []
    assert [str(c) for c in recipe_changes(recorded_ner, load_config(ner, ["data.labels=O,B-X"]))] == \
        [f"data.labels {list(load_config(ner, []).data.labels)!r} -> ['O', 'B-X']"]
    refused = ["optim.b2=0.9", "global_batch_size=4", "seed=9", "data.max_seq_length=32",
               "data.bucket_lengths=(16,32)", "model.hidden_dropout_prob=0.0"]
    changes = recipe_changes(recorded, load_config(rte, refused))
    assert [c.field for c in changes] == sorted(r.split("=")[0] for r in refused), changes


def test_bare_comma_lists_are_names_only_for_lists_of_names():
    """--config.data.labels=O,B-X splits into names; a list of numbers (seeds, mesh) given a word
    is still refused at once, not read as ('a',) and failed on later with a traceback."""
    import os
    from bert_jax.launch import load_config
    from bert_jax.run_config import ConfigError
    configs = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
    assert load_config(os.path.join(configs, "ner", "conll_docs.py"), ["data.labels=O, B-X"]).data.labels == ("O", "B-X")
    rte = os.path.join(configs, "glue", "rte.py")
    assert load_config(rte, ["seeds=0,1"]).seeds == (0, 1)
    for bad in ("seeds=a", "mesh_shape=1x1"):
        with pytest.raises(ConfigError, match="is tuple"):
            load_config(rte, [bad])


def test_every_data_path_field_is_named_as_an_input_or_not():
    """A resume may move any path and evaluation fills the run's own input paths: a new
    ``data.*_dir`` / ``*_file`` field must be put in one list or the other (else a resume that
    moved it would be refused as a change of recipe)."""
    from bert_jax.run_config import _INPUT_PATHS, _OTHER_PATHS, finetune_defaults, pretrain_defaults
    from bert_jax.tasks import registry
    datas = [pretrain_defaults().data] + [finetune_defaults(t).data for t in registry.task_names()]
    paths = {k for data in datas for k in data.keys() if k.endswith(("_dir", "_file"))}
    assert paths and paths <= set(_INPUT_PATHS + _OTHER_PATHS), paths - set(_INPUT_PATHS + _OTHER_PATHS)


def test_a_vocabulary_rewritten_in_place_is_named_as_such_not_advised_again(tmp_path):
    """The vocabulary refusal advised --config.data.vocab_file=<the run's recorded file>; when
    that file was rewritten in place (a new `tokenizer train` into the same folder) it named the
    very file in use, advice that could not work."""
    import pytest
    from bert_jax.run_config import ConfigError, check_same_vocabulary
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n")
    recorded = {"mode": "finetune", "model": {},
                "resolved": {"cwd": str(tmp_path), "data": {"vocab_file": "vocab.txt", "vocab_hash": "aa"}}}
    check_same_vocabulary(recorded, {"vocab_file": str(vocab), "vocab_hash": "aa"}, "W", "resume")  # the same
    for doing, tail in (("resume", "or use a new --workdir."), ("evaluate", "as --config.data.vocab_file.")):
        with pytest.raises(ConfigError) as error:
            check_same_vocabulary(recorded, {"vocab_file": str(vocab), "vocab_hash": "bb"}, "W", doing)
        message = str(error.value)
        assert "has been rewritten or removed since: restore the vocab.txt it was trained with" in message
        assert f"--config.data.vocab_file={vocab}" not in message and message.endswith(tail), message


def test_the_flags_a_refused_resume_gives_read_back_as_the_recorded_values():
    """Pasted into a shell, each flag gives the field its recorded value back: a tuple of names was
    a bash syntax error (unquoted parentheses), and quoted it still split into '(a' ... 'b)'."""
    import shlex
    import ml_collections
    from bert_jax.run_config import Change, _as_json, _flag, apply_override
    recorded = {"labels": ("O", "B-PER", "I-PER"), "lengths": (32, 64), "one": (128,), "none": (), "lr": 1e-5,
                "name": "it's a b", "flag": True, "steps": 3, "empty": ""}
    for field, value in recorded.items():
        config = ml_collections.ConfigDict({field: value})
        config[field] = type(value)() if not isinstance(value, (bool, int, float)) else (not value if isinstance(
            value, bool) else value + 1)
        (flag,) = shlex.split(_flag(Change(field, _as_json(value), "changed")))
        apply_override(config, flag.removeprefix("--config."))
        assert config[field] == value and type(config[field]) is type(value), (field, flag, config[field])
