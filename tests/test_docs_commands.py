"""Every shell command in README.md and docs/*.md matches the CLI: a `bert-jax` command
names an existing command, each of its flags is one that command accepts (its --help
lists it), and each `--config.<field>=<value>` is a field of the config file it loads; a
`python benchmarks|scripts/<file>.py` command names an existing script and its flags.
So a documented command cannot drift from the code."""

import functools
import glob
import os
import re
import shlex
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
WITH_SUBCOMMAND = {"data", "tokenizer"}


def _commands(path):
    """``(line number, logical command)`` of each shell line in the file's bash blocks."""
    out, in_block, pending, start = [], False, "", 0
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            stripped = line.strip()
            if stripped.startswith("```"):
                in_block = stripped in ("```bash", "```sh", "```shell", "```console")
                continue
            if not in_block:
                continue
            if not pending:
                start = number
            text = re.split(r"\s+#", line.rstrip("\n"), maxsplit=1)[0]
            if text.rstrip().endswith("\\"):
                pending += text.rstrip()[:-1] + " "
                continue
            out.append((start, (pending + text).strip()))
            pending = ""
    return out


def _bert_jax_calls(command):
    """The ``bert-jax ...`` invocations in a shell line (after ``&&``, ``;``, ``.venv/bin/``)."""
    calls = []
    for part in re.split(r"&&|;|\|\|", command):
        part = part.strip()
        part = re.sub(r"^(\S*/)?bert-jax\b", "bert-jax", part)
        if part.startswith("bert-jax "):
            try:
                calls.append(shlex.split(part))
            except ValueError:
                continue
    return calls


@functools.lru_cache(maxsize=None)
def _help(*words):
    res = subprocess.run([sys.executable, "-m", "bert_jax.cli", *words, "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert res.returncode == 0, f"bert-jax {' '.join(words)} --help failed: {res.stderr[-500:]}"
    return res.stdout


CASES = [(os.path.relpath(p, ROOT), n, c) for p in DOCS for n, c in _commands(p)
         if _bert_jax_calls(c) or re.search(r"python3? (benchmarks|scripts)/\S+\.py", c)]


def test_the_docs_have_commands():
    assert len(CASES) >= 25


@pytest.mark.parametrize("where,line,command", CASES, ids=[f"{w}:{n}" for w, n, _ in CASES])
def test_documented_command_matches_the_cli(where, line, command):
    from bert_jax import cli
    from bert_jax.run_config import ConfigError, apply_override, load_config
    for argv in _bert_jax_calls(command):
        sub = argv[1]
        assert sub in cli.COMMANDS, f"{where}:{line}: unknown command {sub!r}"
        words = (sub, argv[2]) if sub in WITH_SUBCOMMAND and len(argv) > 2 and not argv[2].startswith("-") \
            else (sub,)
        text = _help(*words)
        config_path = None
        if "--config" in argv:
            config_path = argv[argv.index("--config") + 1]
        overrides = [a[len("--config."):] for a in argv if a.startswith("--config.")]
        for arg in argv:
            if arg.startswith("--") and not arg.startswith("--config."):
                flag = arg.split("=", 1)[0]
                assert re.search(re.escape(flag) + r"\b", text), f"{where}:{line}: {flag} is not a flag of " \
                                                                   f"bert-jax {' '.join(words)}"
        if overrides:
            assert config_path, f"{where}:{line}: --config.* overrides without --config"
            config = load_config(os.path.join(ROOT, config_path.split(":")[0]) +
                                 (":" + config_path.split(":")[1] if ":" in config_path else ""))
            for item in overrides:
                try:
                    apply_override(config, item)
                except ConfigError as e:
                    if "unknown config field" in str(e):
                        raise AssertionError(f"{where}:{line}: {e}") from None
    for script, rest in re.findall(r"python3? ((?:benchmarks|scripts)/\S+\.py)([^|&;]*)", command):
        path = os.path.join(ROOT, script)
        assert os.path.isfile(path), f"{where}:{line}: {script} does not exist"
        flags = [a.split("=", 1)[0] for a in rest.split() if a.startswith("--")]
        if flags:
            res = subprocess.run([sys.executable, path, "--help"], cwd=ROOT, capture_output=True, text=True,
                                 timeout=300)
            for flag in flags:
                assert flag in res.stdout, f"{where}:{line}: {flag} is not a flag of {script}"
