"""The one entry point: ``bert-jax <command> ...``.

Each command lives in the module that owns it; this file only dispatches, so
``bert-jax data ...`` never imports JAX and ``bert-jax --help`` is instant.
"""

from __future__ import annotations

import importlib
import os
import sys

# command -> ("module", "function", one-line help). The function takes argv
# (the arguments after the command) and returns an exit code.
COMMANDS = {
    "data": ("data_pipeline.cli", "main", "build, inspect pretraining shards"),
    "tokenizer": ("bert_jax.vocab", "main", "train a WordPiece vocabulary"),
    "pretrain": ("bert_jax.launch", "pretrain_main", "run (or resume) pretraining"),
    "finetune": ("bert_jax.launch", "finetune_main", "fine-tune on a registered task (GLUE, ...)"),
    "evaluate": ("bert_jax.launch", "evaluate_main", "score a run (or a model directory) on dev or test"),
    "predict": ("bert_jax.launch", "predict_main", "write predictions for a split without labels"),
    "glue-submit": ("bert_jax.launch", "glue_submit_main", "gather GLUE test predictions into one folder"),
    "convert": ("bert_jax.convert.cli", "main", "convert checkpoints to/from Hugging Face"),
    "quickstart": ("bert_jax.quickstart", "main", "tiny end-to-end run on the bundled corpus"),
    "report": ("bert_jax.report", "main", "write report.html (plots, config, data) for a run directory"),
}


def _usage() -> str:
    lines = ["usage: bert-jax [--verbose] <command> [args...]", "", "commands:"]
    for name, (_, _, text) in COMMANDS.items():
        lines.append(f"  {name:<11} {text}")
    lines.append("")
    lines.append("Run 'bert-jax <command> --help' for a command's options.")
    return "\n".join(lines)


def _stdout_reader_gone() -> bool:
    """stdout is a pipe whose reading end is closed (poll reports an error on the writing end)."""
    import select
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # no such file descriptor (a captured stdout)
        return False


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in argv[:1] or "-v" in argv[:1]
    if verbose:
        argv = argv[1:]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"bert-jax: unknown command {command!r}.\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, func_name, _ = COMMANDS[command]
    from bert_jax import console
    console.setup(verbose=verbose, quiet=command == "quickstart")
    func = getattr(importlib.import_module(module_name), func_name)
    try:
        return int(func(rest) or 0)
    except KeyboardInterrupt:
        # Training turns the first Ctrl-C into "save at this step and stop" (exit 130, said by the
        # trainer); this is a Ctrl-C anywhere else: reading data, the final evaluation, a second
        # Ctrl-C, or a command that does not train.
        if verbose:
            raise
        if command in ("pretrain", "finetune", "quickstart"):
            advice = ("checkpoints are written whole; run the same command again to go on (training resumes "
                      "from its newest checkpoint, and a finished one is evaluated again).")
        else:
            advice = ("what it was writing may be incomplete: run the same command again (with --overwrite if "
                      "it asks) before using its output.")
        print(f"bert-jax {command}: interrupted (Ctrl-C); {advice}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (`bert-jax data inspect W | head`): what it read is what it
        # wanted. Another pipe (a worker's, a socket) is a real error, raised as usual.
        if not _stdout_reader_gone():
            raise
        # Point stdout at nothing, so the interpreter's own flush at exit does not fail too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # as a shell reports a process ended by SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
