"""The `bert-jax` dispatcher: every command resolves to a real function."""

import importlib
import subprocess
import sys

import pytest

from bert_jax import cli


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_every_command_resolves(command):
    module_name, func_name, _ = cli.COMMANDS[command]
    func = getattr(importlib.import_module(module_name), func_name)
    assert callable(func)


def test_unknown_command_is_an_error(capsys):
    assert cli.main(["no-such-command"]) == 2
    assert "unknown command 'no-such-command'" in capsys.readouterr().err


def test_help_lists_commands(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in cli.COMMANDS:
        assert command in out


def test_package_import_does_not_load_jax():
    # The data pipeline imports bert_jax for its tokenizer; that must stay light.
    code = "import bert_jax, data_pipeline, sys; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_imports_run_one_way_between_modules_convert_and_models():
    """modules <- convert <- models: the converter builds the Flax modules to know parameter
    shapes, and the user-facing classes read and write checkpoints through the converter; none of
    them imports the one above it (the classes and the converter used to import each other from
    inside functions)."""
    code = ("import sys; import bert_jax.modeling.modules; a = 'bert_jax.convert' in sys.modules; "
            "import bert_jax.convert; b = 'bert_jax.modeling.models' in sys.modules; "
            "from bert_jax.modeling import BertModel; print(a, b, BertModel.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "bert_jax.modeling.models"]


@pytest.mark.parametrize("command", ["pretrain", "finetune", "evaluate", "predict"])
def test_each_run_command_says_what_it_does(command, capsys):
    """Their --help showed the launcher module's docstring ("the command-line entry points")."""
    from bert_jax import launch
    with pytest.raises(SystemExit):
        getattr(launch, f"{command}_main")(["--help"])
    out = capsys.readouterr().out
    assert "entry points" not in out and launch._DESCRIPTIONS[f"bert-jax {command}"].split()[0] in out


@pytest.mark.parametrize("override, said", [
    ("remat_policy=dots", "bert-jax pretrain: --config.remat_policy: Unknown remat_policy 'dots'; use 'none', 'full' "
                          "or one of ['checkpoint_dots', "),
    ("distributed.initialize=yes", "bert-jax pretrain: distributed.initialize=yes found no cluster to join "),
])
def test_a_setting_jax_refuses_is_one_line_naming_the_field(override, said, tmp_path):
    """Both were tracebacks (a ValueError from inside the model, or JAX's bare "coordinator_address
    should be defined.")."""
    import os
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    run = subprocess.run([sys.executable, "-m", "bert_jax.cli", "pretrain", "--config",
                          os.path.join(root, "configs", "pretrain", "tiny.py"), "--workdir", str(tmp_path / "w"),
                          f"--config.{override}"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and run.stderr.startswith(said) and run.stderr.count("\n") == 1, run.stderr
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("flags, named", [
    (["--workdir", "gs://my-bert/run"], "--workdir=gs://my-bert/run is a URL"),
    (["--workdir", "w", "--config.data.train_dir=gs://my-bert/shards"], "--config.data.train_dir=gs://my-bert/shards is a URL"),
])
def test_a_url_is_refused_before_anything_is_written(flags, named, tmp_path):
    """``--workdir gs://...`` (as the docs once showed) made a local folder ``gs:``, trained, and
    failed at the first checkpoint save with hundreds of lines of traceback."""
    import os
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    run = subprocess.run([sys.executable, "-m", "bert_jax.cli", "pretrain", "--config",
                          os.path.join(root, "configs", "pretrain", "tiny.py"), *flags],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 2 and named in run.stderr and "Mount the bucket" in run.stderr, run.stderr
    assert run.stderr.count("\n") == 1 and os.listdir(tmp_path) == []
