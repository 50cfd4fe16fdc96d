"""docs/config_reference.md is generated from the config code: a field added without
regenerating it (python scripts/config_reference.py) fails here."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_config_reference_is_current():
    res = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "config_reference.py"), "--check"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


def test_every_shared_field_is_described():
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import config_reference
    text = config_reference.render()
    undocumented = [line for line in text.splitlines() if line.startswith("| `") and line.endswith("|  |")]
    assert not undocumented, undocumented


def test_a_new_field_makes_the_reference_stale(monkeypatch):
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import config_reference
    from bert_jax import run_config
    original = run_config.common_defaults

    def with_new_field():
        c = original()
        c.brand_new_field = 1
        return c

    monkeypatch.setattr(run_config, "common_defaults", with_new_field)
    with open(config_reference.OUTPUT, encoding="utf-8") as f:
        assert config_reference.render() != f.read()
