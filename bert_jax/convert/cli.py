"""``bert-jax convert``: Hugging Face model directories <-> bert-jax checkpoint directories.

  bert-jax convert --from hf HF_DIR --to OUT_DIR                 # HF -> bert-jax layout
  bert-jax convert --from bert-jax DIR --to-hf OUT_DIR           # bert-jax -> HF (transformers loads it)
  bert-jax convert --from bert-jax WORKDIR --step 300 --to-hf OUT_DIR  # a training run's checkpoint
  bert-jax convert --from hf HF_DIR --to OUT_DIR --target BertModel   # also change the class

The model class comes from ``--target``, else the source's ``architectures`` entry.
Freshly initialised heads are listed in a warning; unused checkpoint heads are
listed in the log.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

logger = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    examples = __doc__.split("\n\n")[1]
    parser = argparse.ArgumentParser(
        prog="bert-jax convert", description="Convert checkpoints between Hugging Face and bert-jax layouts.",
        epilog="examples:\n" + examples, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="source_format", choices=("hf", "bert-jax"), required=True,
                        help="layout of the source directory")
    parser.add_argument("source", help="source model directory")
    out = parser.add_mutually_exclusive_group(required=True)
    out.add_argument("--to", dest="to_native", metavar="DIR", help="write a bert-jax checkpoint directory")
    out.add_argument("--to-hf", dest="to_hf", metavar="DIR", help="write a Hugging Face directory (safetensors)")
    parser.add_argument("--target", default=None,
                        help="model class, e.g. BertForPreTraining (default: the source's architectures[0])")
    parser.add_argument("--seed", type=int, default=0, help="seed for heads the checkpoint lacks")
    parser.add_argument("--step", type=int, default=None,
                        help="with a training workdir as source: the checkpoint step (default: the latest)")
    return parser


def _load_training_checkpoint(workdir: str, step: int | None):
    """(params, config, target) of a training run's checkpoint, restored onto the CPU."""
    from bert_jax import checkpointing
    from bert_jax.config import BertConfig

    params, meta = checkpointing.restore_params_to_cpu(os.path.join(workdir, "checkpoints"), step)
    target = meta.get("target")
    if target is None:  # checkpoints written before the class was recorded
        target = "BertForPreTraining" if "cls" in params else None
    return params, BertConfig.from_dict(meta["model"]), target


def convert(source_format: str, source: str, destination: str, to_hf: bool, target: str | None = None,
            seed: int = 0, step: int | None = None) -> str:
    """Converts one directory; returns the target class name used."""
    from bert_jax.convert import hf, native
    from bert_jax.modeling.modules import TASK_MODULES

    if not os.path.isdir(source):
        raise FileNotFoundError(f"source {source!r} is not a directory.")
    if os.path.abspath(source) == os.path.abspath(destination):
        raise ValueError("source and destination are the same directory; choose a new output directory.")
    if source_format == "bert-jax" and os.path.isdir(os.path.join(source, "checkpoints")):
        params, config, source_target = _load_training_checkpoint(source, step)
        state = hf.params_to_hf_state_dict(hf.unstack_layers(params), config, source_target or target)
    elif source_format == "bert-jax":
        if not native.is_native_checkpoint(source):
            raise FileNotFoundError(f"{source!r} has no {native.NATIVE_WEIGHTS}; is it a Hugging Face "
                                    f"directory (use --from hf)?")
        params, config, source_target = native.load_native_checkpoint(source)
        state = hf.params_to_hf_state_dict(params, config, source_target)
    else:
        state, config = hf.load_hf_checkpoint(source)
        source_target = (config.extra.get("architectures") or [None])[0]
    target = target or source_target
    if target not in TASK_MODULES:
        raise ValueError(f"cannot tell the model class (got {target!r}); pass --target, one of "
                         f"{', '.join(TASK_MODULES)}.")
    params, report = hf.hf_state_dict_to_params(state, config, target, seed=seed)
    if to_hf:
        hf.save_hf_checkpoint(params, config, destination, target)
    else:
        native.save_native_checkpoint(params, config, destination, target)
    logger.info("%s: %d tensors loaded, %d unused, %d freshly initialised -> %s", target, len(report.loaded),
                len(report.unused), len(report.initialized), destination)
    return target


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    destination = args.to_hf or args.to_native
    try:
        target = convert(args.source_format, args.source, destination, bool(args.to_hf), args.target, args.seed,
                         args.step)
    except (ValueError, FileNotFoundError, ImportError) as e:
        print(f"bert-jax convert: error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {target} to {destination} ({'Hugging Face' if args.to_hf else 'bert-jax'} layout)")
    return 0
