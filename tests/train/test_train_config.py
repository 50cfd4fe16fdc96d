"""Config files, command-line overrides and their refusals."""

import glob
import os
import re

import pytest

from bert_jax import launch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "pretrain", "*.py")))


def _cfg(name):
    return os.path.join(ROOT, "configs", "pretrain", name)


@pytest.mark.parametrize("path", [p for p in CONFIGS if not p.endswith("__init__.py")],
                         ids=os.path.basename)
def test_every_config_loads_and_documents_launch(path):
    config = launch.load_config(path)
    assert set(config.keys()) == set(launch.pretrain_defaults().keys())
    import importlib.util
    spec = importlib.util.spec_from_file_location("c", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert "bert-jax pretrain" in module.__doc__ or "launch_tpu_pod" in module.__doc__
    assert "Expected" in module.__doc__


def test_large_lamb_recipes():
    p1, p2 = launch.load_config(_cfg("large_phase1.py")), launch.load_config(_cfg("large_phase2.py"))
    assert (p1.global_batch_size, p1.optim.learning_rate, p1.optim.total_steps, p1.optim.warmup_fraction) == \
        (65536, 6e-3, 7038, 0.2843)
    assert (p2.global_batch_size, p2.optim.learning_rate, p2.optim.total_steps, p2.optim.warmup_fraction) == \
        (32768, 4e-3, 1563, 0.128)
    assert p1.optim.name == p2.optim.name == "lamb"
    adamw = launch.load_config(_cfg("base_adamw.py"))
    assert (adamw.optim.name, adamw.optim.learning_rate, adamw.optim.warmup_steps, adamw.optim.weight_decay,
            adamw.optim.schedule) == ("adamw", 1e-4, 10000, 0.01, "linear")


def test_overrides_apply_with_types():
    c = launch.load_config(_cfg("tiny.py"), ["optim.learning_rate=3e-4", "optim.name=lamb",
                                             "mesh_shape=(2,2,-1)", "use_nsp=False", "optim.total_steps=7"])
    assert c.optim.learning_rate == 3e-4 and c.optim.name == "lamb"
    assert tuple(c.mesh_shape) == (2, 2, -1) and c.use_nsp is False and c.optim.total_steps == 7


def test_unknown_field_is_an_error_with_suggestion():
    with pytest.raises(ValueError, match=r"unknown config field 'optim.learning_rte'.*optim.learning_rate"):
        launch.load_config(_cfg("tiny.py"), ["optim.learning_rte=1e-3"])
    with pytest.raises(ValueError, match="unknown config field"):
        launch.load_config(_cfg("tiny.py"), ["nonsense.deep.key=1"])


def test_wrong_type_is_an_error():
    with pytest.raises(ValueError, match="optim.total_steps is int"):
        launch.load_config(_cfg("tiny.py"), ["optim.total_steps=abc"])


def test_cli_refuses_unknown_field(tmp_path, capsys):
    code = launch.pretrain_main(["--config", _cfg("tiny.py"), "--workdir", str(tmp_path),
                                 "--config.optim.learnig_rate=1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown config field" in err and "optim.learning_rate" in err
    assert not os.listdir(tmp_path)  # nothing was started


def test_finetune_missing_config_file_is_refused(capsys):
    assert launch.finetune_main(["--config", "x", "--workdir", "y"]) == 2
    assert "config file 'x' not found" in capsys.readouterr().err


BROKEN = {
    "syntax": ("def get_config(:\n", r"bad\.py:1: invalid syntax; fix the Python syntax there"),
    "import": ("import no_such_module_here\n", r"bad\.py failed to run \(line 1: ModuleNotFoundError: "
                                               r"No module named 'no_such_module_here'\)"),
    "raises": ("from bert_jax.run_config import pretrain_defaults\n\ndef get_config():\n    c = pretrain_defaults()\n"
               "    c.nope.x = 1\n    return c\n", r"bad\.py: get_config\(\) failed \(line 5: AttributeError"),
    "dict": ("def get_config():\n    return {'seed': 1}\n", r"get_config\(\) returned a dict, not an "
                                                            r"ml_collections\.ConfigDict"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_config_file_is_named_with_its_line_not_a_traceback(case, tmp_path, capsys):
    """The user's own config file: a syntax error, a failing import or statement, a wrong return
    type -- each one line (exit 2) naming the file and, where there is one, the line."""
    text, message = BROKEN[case]
    path = tmp_path / "bad.py"
    path.write_text(text)
    assert launch.pretrain_main(["--config", str(path), "--workdir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bert-jax pretrain: "), err
    assert re.search(message, err[0]), err[0]
    assert not os.path.exists(tmp_path / "run")


def test_an_argument_to_a_config_that_takes_none_and_a_directory_are_refused(capsys):
    assert launch.finetune_main(["--config", os.path.join(ROOT, "configs", "glue", "rte.py") + ":foo",
                                 "--workdir", "y"]) == 2
    assert "get_config() takes no argument, but --config gave it 'foo'" in capsys.readouterr().err
    assert launch.finetune_main(["--config", os.path.join(ROOT, "configs", "glue"), "--workdir", "y"]) == 2
    err = capsys.readouterr().err
    assert "is a directory; pass one config file" in err and "configs/glue/cola.py" in err
    assert not os.path.exists("y")
