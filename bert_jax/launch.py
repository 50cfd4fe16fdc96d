"""``bert-jax pretrain | finetune | evaluate | predict | glue-submit``: the command-line entry points.

The only module that reads command-line flags. Each command loads ``--config
FILE[:ARG]`` with ``--config.a.b=value`` overrides (``bert_jax.run_config``),
then hands the config to the wiring that owns the work:

  pretrain     bert_jax.trainer.run_training + bert_jax.tasks.pretraining.pretraining_job
  finetune     bert_jax.finetuning.run_finetuning (one run, or one per seed)
  evaluate     bert_jax.finetuning.run_evaluation on dev (metrics) or test (submission files)
  predict      the same on a split without labels: predictions files only
  glue-submit  gather the GLUE test submission files of several runs into one folder

Exit codes: 0 done; 2 a setting or input that cannot work (the message says what to
change; nothing was written); 3 the loss became NaN/Inf; 143 / 130 stopped by
SIGTERM / SIGINT after saving a checkpoint (rerun the same command to resume).
"""

from __future__ import annotations

import argparse
import logging
import sys

from bert_jax.run_config import ConfigError, finetune_defaults, load_config, pretrain_defaults  # noqa: F401

log = logging.getLogger("bert_jax")
PREEMPTED_EXIT_CODE = 143  # 128 + SIGTERM, what schedulers expect of a terminated job


def run_pretraining(config, workdir: str, *, module=None, make_loader=None) -> dict:
    """Pretrain (or resume) in ``workdir`` (see ``bert_jax.trainer.run_training``).

    Args:
      config: a pretraining ``ConfigDict`` (see ``run_config.pretrain_defaults``).
      module: optional Flax module to train instead of ``BertForPreTrainingModule``.
      make_loader: optional ``(shard_dir, config, seed) -> loader`` replacing ``open_loader``.
    """
    from bert_jax.tasks.pretraining import pretraining_job
    from bert_jax.trainer import run_training
    return run_training(config, workdir, pretraining_job(module, make_loader))


def run_finetuning(config, workdir: str) -> dict:
    """Fine-tune (or resume) in ``workdir`` (see ``bert_jax.finetuning.run_finetuning``)."""
    from bert_jax.finetuning import run_finetuning as run
    return run(config, workdir)


_DESCRIPTIONS = {
    "bert-jax pretrain": "Pretrain BERT (MLM + NSP) on built shards, or resume the run in --workdir.",
    "bert-jax finetune": "Fine-tune a task (the config's task) from init_from, or resume the run in --workdir.",
    "bert-jax evaluate": "Score a fine-tuning run's checkpoint (or init_from) on a split; writes eval/ and the report.",
    "bert-jax predict": "Write a fine-tuning run's predictions for a split (default test) under --workdir/eval/.",
}


def _parser(prog: str, extra=None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=_DESCRIPTIONS.get(prog, __doc__.split("\n")[0]),
                                     epilog="Any config field can be overridden as --config.a.b=value.")
    parser.add_argument("--config", required=True, help="config file, optionally FILE:ARG")
    parser.add_argument("--workdir", required=True, help="run directory (checkpoints, logs, config.json)")
    if extra:
        extra(parser)
    return parser


def _parse(parser, argv):
    args, rest = parser.parse_known_args(argv)
    overrides = []
    for item in rest:
        if not item.startswith("--config."):
            parser.error(f"unrecognised argument {item!r}; overrides look like --config.optim.learning_rate=1e-4")
        overrides.append(item[len("--config."):])
    return args, overrides


def write_report_quietly(workdir: str) -> None:
    """``WORKDIR/report.html`` (process 0); a report that cannot be written never fails a run."""
    import jax
    if jax.process_index() != 0:
        return
    from bert_jax.report import ReportError, write_report
    try:
        log.info("report: %s", write_report(workdir))
    except (ReportError, ImportError, OSError) as e:
        log.warning("report not written: %s", e)


def _run(prog: str, argv: list[str], work, extra=None) -> int:
    args, overrides = _parse(_parser(prog, extra), argv)
    from bert_jax.checkpointing import CheckpointError
    from bert_jax.train import NonFiniteLoss
    try:
        config = load_config(args.config, overrides)
        args.given = frozenset(o.split("=", 1)[0] for o in overrides)  # what the command line set
        _check_mode(prog, args.config, config)
        result = work(config, args)
    except (ConfigError, CheckpointError, FileNotFoundError) as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    except NonFiniteLoss as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 3
    return int(result or 0)


def _check_mode(prog: str, path: str, config) -> None:
    """A fine-tuning config given to ``pretrain``, or a pretraining one to ``finetune`` /
    ``evaluate`` / ``predict``, is refused naming what to use instead."""
    want = "pretrain" if prog.endswith("pretrain") else "finetune"
    have = config.get("mode", want)
    if have == want:
        return
    if have not in ("pretrain", "finetune"):
        raise ConfigError(f"{path}: mode={have!r} is neither 'pretrain' nor 'finetune'; build the config with "
                          "run_config.pretrain_defaults() or finetune_defaults(task) and leave mode as they set it.")
    if have == "finetune":
        raise ConfigError(f"{path} is a fine-tuning config (mode='finetune'): use it with bert-jax finetune, "
                          f"evaluate or predict; {prog} takes a pretraining config, e.g. configs/pretrain/tiny.py.")
    extra = ("; a pretraining run's held-out accuracy is in its metrics.jsonl"
             if prog.endswith(("evaluate", "predict")) else "")
    raise ConfigError(f"{path} is a pretraining config (mode='pretrain'): use it with bert-jax pretrain; {prog} "
                      f"takes a fine-tuning config, e.g. configs/glue/rte.py with "
                      f"--config.init_from=<pretraining workdir>{extra}.")


def pretrain_main(argv: list[str]) -> int:
    """``bert-jax pretrain --config FILE --workdir W [--config.x=v ...]``."""
    def work(config, args):
        code = run_pretraining(config, args.workdir).get("exit_code", 0)
        write_report_quietly(args.workdir)
        return code
    return _run("bert-jax pretrain", argv, work)


def finetune_main(argv: list[str]) -> int:
    """``bert-jax finetune --config configs/glue/TASK.py --workdir W --config.init_from=SRC``."""
    def work(config, args):
        from bert_jax.finetuning import results_table
        result = run_finetuning(config, args.workdir)
        write_report_quietly(args.workdir)
        if result.get("exit_code"):
            return result["exit_code"]
        if "summary" in result:
            print(results_table(result["summary"], f"{config.task}: mean +- std over seeds {list(config.seeds)}"))
        else:
            print(results_table(result.get("eval", {}), f"{config.task} ({config.eval_split}, step {result['step']})"))
        return 0
    return _run("bert-jax finetune", argv, work)


def _eval_flags(default_split: str):
    def add(parser):
        parser.add_argument("--split", default=default_split, help=f"split to run on (default {default_split})")
        parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
    return add


def evaluate_main(argv: list[str]) -> int:
    """``bert-jax evaluate --config F --workdir W [--split dev|test] [--step N]``."""
    def work(config, args):
        from bert_jax.finetuning import results_table, run_evaluation
        from bert_jax.report import holds_run
        values = run_evaluation(config, args.workdir, split=args.split, step=args.step, given=args.given)
        if holds_run(args.workdir):  # not a new workdir a model directory was scored into
            write_report_quietly(args.workdir)
        print(results_table(values, f"{config.task} ({args.split})") if values else
              f"{config.task} ({args.split}): predictions written under {args.workdir}/eval/")
        return 0
    return _run("bert-jax evaluate", argv, work, _eval_flags("dev"))


def predict_main(argv: list[str]) -> int:
    """``bert-jax predict --config F --workdir W [--split test] [--step N]``: prediction files only."""
    def work(config, args):
        from bert_jax.finetuning import run_evaluation
        run_evaluation(config, args.workdir, split=args.split, step=args.step, given=args.given)
        print(f"{config.task} ({args.split}): predictions written under {args.workdir}/eval/ (each "
              "<split>_results.json there lists its files)")
        return 0
    return _run("bert-jax predict", argv, work, _eval_flags("test"))


def glue_submit_main(argv: list[str]) -> int:
    """``bert-jax glue-submit --output DIR RUN_WORKDIR...``."""
    parser = argparse.ArgumentParser(prog="bert-jax glue-submit",
                                     description="Gather GLUE test submission files of several runs into one folder.")
    parser.add_argument("workdirs", nargs="+", help="fine-tuning workdirs evaluated with --split test")
    parser.add_argument("--output", required=True)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    from bert_jax.tasks.glue import SUBMISSION_FILES, gather_submission, submission_provenance
    try:
        found = gather_submission(args.workdirs, args.output, overwrite=args.overwrite)
    except ValueError as e:
        print(f"bert-jax glue-submit: {e}", file=sys.stderr)
        return 2
    for line in submission_provenance(found):
        print(line)
    missing = sorted(set(f"{v}.tsv" for v in SUBMISSION_FILES) - set(found))
    print(f"{len(found)} submission file(s) in {args.output}" +
          (f"; missing for a full GLUE submission: {', '.join(missing)}" if missing else ""))
    return 0
