"""``bert-jax convert``: Hugging Face, original TensorFlow and bert-jax checkpoint directories, any direction.

  bert-jax convert --from hf HF_DIR --to OUT_DIR                 # HF -> bert-jax layout
  bert-jax convert --from bert-jax DIR --to-hf OUT_DIR           # bert-jax -> HF (transformers loads it)
  bert-jax convert --from bert-jax WORKDIR --step 300 --to-hf OUT_DIR  # a training run's checkpoint
  bert-jax convert --from hf HF_DIR --to OUT_DIR --target BertModel   # also change the class
  bert-jax convert --from tf TF_DIR --to-hf OUT_DIR              # original bert_model.ckpt + bert_config.json
  bert-jax convert --from bert-jax DIR --to-tf OUT_DIR           # back to the original TF layout

The model class comes from ``--target``, else the source's ``architectures`` entry
(for a TF checkpoint: the heads it holds). Freshly initialised heads are listed in
a warning; unused checkpoint heads, TF optimizer slots and ``global_step`` are
reported. The output directory must be new or empty unless ``--overwrite`` is
given; a training workdir is never written into.
"""

from __future__ import annotations

import argparse
import glob
import logging
import os
import sys

from bert_jax.vocab import TOKENIZER_FILES

logger = logging.getLogger(__name__)

# Files a conversion writes or that decide how a directory loads; --overwrite removes them all first,
# so no stale weights of another layout stay behind to be loaded instead of the new ones.
_MODEL_FILES = ("config.json", "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "bert_jax_params.safetensors", "bert_config.json", "checkpoint")
# The tokenizer a model directory loads with (vocab.TOKENIZER_FILES) is copied with the model, and
# removed by --overwrite so that another model's vocabulary never stays beside new weights.
_MODEL_PREFIXES = ("bert_model.ckpt.", "model-0")  # TF checkpoint files; sharded safetensors


def _parser() -> argparse.ArgumentParser:
    examples = __doc__.split("\n\n")[1]
    parser = argparse.ArgumentParser(
        prog="bert-jax convert", description="Convert checkpoints between Hugging Face, TensorFlow and bert-jax.",
        epilog="examples:\n" + examples, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="source_format", choices=("hf", "bert-jax", "tf"), required=True,
                        help="layout of the source directory")
    parser.add_argument("source", help="source model directory")
    out = parser.add_mutually_exclusive_group(required=True)
    out.add_argument("--to", dest="to_native", metavar="DIR", help="write a bert-jax checkpoint directory")
    out.add_argument("--to-hf", dest="to_hf", metavar="DIR", help="write a Hugging Face directory (safetensors)")
    out.add_argument("--to-tf", dest="to_tf", metavar="DIR",
                     help="write the original TensorFlow layout (bert_model.ckpt.* + bert_config.json)")
    parser.add_argument("--target", default=None,
                        help="model class, e.g. BertForPreTraining (default: the source's architectures[0])")
    parser.add_argument("--seed", type=int, default=0, help="seed for heads the checkpoint lacks")
    parser.add_argument("--step", type=int, default=None,
                        help="with a training workdir as source: the checkpoint step (default: the latest)")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into a non-empty output directory, replacing its model files "
                             "(never a training workdir)")
    return parser


def check_destination(destination: str, overwrite: bool) -> None:
    """Refuses a training workdir always, and a non-empty directory unless ``overwrite``."""
    if os.path.exists(destination) and not os.path.isdir(destination):
        raise ValueError(f"output {destination!r} is a file; choose a directory path.")
    parent = os.path.dirname(os.path.abspath(destination))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):  # checked before the (slow) load: makedirs would fail after it
        raise ValueError(f"output {destination!r} cannot be made: {parent} is a file; choose a path of directories.")
    if not os.path.isdir(destination):
        return
    marks = [name for name in ("checkpoints", "metrics.jsonl") if os.path.exists(os.path.join(destination, name))]
    if marks:
        raise ValueError(f"output {destination!r} is a training workdir (it has {' and '.join(marks)}); writing "
                         f"there would replace the config.json that resuming and fine-tuning read. Choose a new "
                         f"output directory (--overwrite does not apply to workdirs).")
    entries = sorted(os.listdir(destination))
    if entries and not overwrite:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise ValueError(f"output {destination!r} is not empty ({shown}); choose a new directory, or pass "
                         f"--overwrite to replace its model files.")


def _remove_model_files(directory: str) -> None:
    if not os.path.isdir(directory):
        return
    for name in os.listdir(directory):
        if name in _MODEL_FILES or name in TOKENIZER_FILES or name.startswith(_MODEL_PREFIXES):
            os.remove(os.path.join(directory, name))


def _tokenizer_files(source: str, is_run: bool) -> dict[str, bytes]:
    """The tokenizer files to write beside the converted model, read before anything is removed
    (the output may be the folder that holds them): the source's, or for a training run the
    vocabulary its config.json records (with the tokenizer files made beside it). A converted
    model is only usable with its vocabulary, so finding none is a warning."""
    from bert_jax.run_config import recorded_vocab_file
    files, folder = {}, source
    if is_run:
        try:
            vocab = recorded_vocab_file(source)
        except (OSError, ValueError) as e:
            vocab, why = None, f"its config.json could not be read: {str(e).rstrip('.')}"
        else:
            why = "its config.json names none that still exists"
        if vocab is None:
            logger.warning("%s: no vocabulary found (%s); copy the vocab.txt it was trained with into the output "
                           "before loading a tokenizer from it.", source, why)
            return files
        folder = os.path.dirname(vocab)  # tokenizer files made with it (bert-jax tokenizer train)
        if os.path.basename(vocab) != "vocab.txt" or not os.path.isfile(os.path.join(folder, "tokenizer_config.json")):
            return _tokenizer_made_for_run(source, vocab)
    for name in TOKENIZER_FILES:
        if os.path.isfile(os.path.join(folder, name)):
            with open(os.path.join(folder, name), "rb") as f:
                files[name] = f.read()
    if "vocab.txt" not in files and "tokenizer.json" not in files:  # tokenizer.json holds the vocabulary too
        logger.warning("%s holds no vocab.txt: the output has no vocabulary; copy the one the model was trained "
                       "with into it before loading a tokenizer from it.", source)
    return files


def _tokenizer_made_for_run(workdir: str, vocab: str) -> dict[str, bytes]:
    """The tokenizer files of a run's vocabulary that has none beside it (the shards' copy): made
    with the casing the run read its text with. Only ``vocab.txt`` went out before, which every
    tokenizer loads as lower-casing: a cased model's export lower-cased its input, unsaid."""
    import tempfile
    from bert_jax.tokenization import BertTokenizerFast
    with open(vocab, "rb") as f:
        files = {"vocab.txt": f.read()}
    from bert_jax.warm_start import run_lowercase
    lowercase = run_lowercase(workdir)
    if lowercase is None:
        return files
    with tempfile.TemporaryDirectory() as tmp:
        BertTokenizerFast(vocab, do_lower_case=lowercase).save_pretrained(tmp)
        for name in os.listdir(tmp):
            if name != "vocab.txt":  # the run's own file, byte for byte
                with open(os.path.join(tmp, name), "rb") as f:
                    files[name] = f.read()
    return files


def _what_it_holds(source: str) -> str:
    """What a directory that is not a bert-jax export looks like, and the command that reads it."""
    path = os.path.abspath(source)
    names = set(os.listdir(path))
    parent = os.path.dirname(path)
    if os.path.basename(path).isdigit() and os.path.basename(parent) == "checkpoints":
        return (f"it is step {int(os.path.basename(path))} of the training run {os.path.dirname(parent)}: pass the "
                f"run with --step, e.g. --from bert-jax {os.path.dirname(parent)} --step {int(os.path.basename(path))}.")
    if "bert_config.json" in names or any(n.startswith("bert_model.ckpt.") for n in names):
        return "it holds an original TensorFlow checkpoint: use --from tf."
    if "config.json" in names and names & {"model.safetensors", "model.safetensors.index.json", "pytorch_model.bin"}:
        return "it holds a Hugging Face model: use --from hf."
    if not names:
        return "the directory is empty; pass a bert-jax export or a training workdir (the folder holding checkpoints/)."
    return ("it is neither a training workdir (no checkpoints/) nor a Hugging Face or TensorFlow model directory; "
            "pass the folder that holds the model.")


def _load_training_checkpoint(workdir: str, step: int | None):
    """(params, config, target) of a training run's checkpoint, restored onto the CPU."""
    from bert_jax import checkpointing
    from bert_jax.config import BertConfig

    params, meta = checkpointing.restore_params_to_cpu(os.path.join(workdir, "checkpoints"), step)
    target = meta.get("target")
    if target is None:  # checkpoints written before the class was recorded
        target = "BertForPreTraining" if "cls" in params else None
    config = BertConfig.from_dict(meta["model"])
    names = _label_names(workdir)
    if target in ("BertForSequenceClassification", "BertForTokenClassification") and names and \
            len(names) == config.num_labels:
        # the task's own names, as a Hugging Face pipeline reports them (not LABEL_0, LABEL_1)
        config = config.replace(id2label=dict(enumerate(names)), label2id=None)
    return params, config, target


def _label_names(workdir: str) -> list[str] | None:
    """The class names a fine-tuning run recorded (``resolved.data.labels``), in classifier order."""
    from bert_jax.run_config import read_recorded
    try:
        names = ((read_recorded(workdir).get("resolved") or {}).get("data") or {}).get("labels")
    except (OSError, ValueError):
        return None
    return list(names) if isinstance(names, list) and all(isinstance(n, str) for n in names) else None


def convert(source_format: str, source: str, destination: str, to: str, target: str | None = None,
            seed: int = 0, step: int | None = None, overwrite: bool = False) -> str:
    """Converts one directory into layout ``to`` ("bert-jax", "hf" or "tf"); returns the target class used."""
    from bert_jax.convert import hf, native, tf
    from bert_jax.modeling.modules import TASK_MODULES

    if not os.path.isdir(source):
        folder = os.path.dirname(source) or "."
        if os.path.isfile(source) and source.endswith((".zip", ".tar.gz", ".tgz", ".tar")):
            raise FileNotFoundError(f"source {source!r} is an archive; unpack it and pass the folder it holds.")
        if os.path.isfile(source) or os.path.isfile(source + ".index"):  # a file, or a TF checkpoint prefix
            raise FileNotFoundError(f"source {source!r} is a file (or a checkpoint's file prefix); pass the folder that "
                                    f"holds it: {folder}")
        packed = [p for p in glob.glob(glob.escape(source) + ".*") if p.endswith((".zip", ".tar.gz", ".tgz", ".tar"))]
        if packed:  # Google's releases come as NAME.zip
            raise FileNotFoundError(f"source {source!r} does not exist, but {packed[0]} does: unpack it and pass the "
                                    "folder it holds.")
        raise FileNotFoundError(f"source {source!r} does not exist; check the path.")
    if target is not None and target not in TASK_MODULES:
        import difflib
        close = difflib.get_close_matches(target, list(TASK_MODULES), n=1)
        raise ValueError(f"--target {target} is not a model class" + (f" (did you mean {close[0]}?)" if close else "")
                         + f"; use one of {', '.join(TASK_MODULES)}.")
    if os.path.abspath(source) == os.path.abspath(destination):
        raise ValueError("source and destination are the same directory; choose a new output directory.")
    is_run = source_format == "bert-jax" and os.path.isdir(os.path.join(source, "checkpoints"))
    if step is not None and not is_run:
        raise ValueError(f"--step picks a checkpoint of a training workdir (--from bert-jax WORKDIR, the folder "
                         f"holding checkpoints/); {source!r} is not one: pass the workdir, or drop --step.")
    check_destination(destination, overwrite)
    if is_run:
        params, config, source_target = _load_training_checkpoint(source, step)
        state = hf.params_to_hf_state_dict(hf.unstack_layers(params), config, source_target or target)
    elif source_format == "bert-jax":
        if not native.is_native_checkpoint(source):
            raise FileNotFoundError(f"{source!r} has no {native.NATIVE_WEIGHTS}; {_what_it_holds(source)}")
        params, config, source_target = native.load_native_checkpoint(source)
        state = hf.params_to_hf_state_dict(params, config, source_target)
    elif source_format == "tf":
        state, config, source_target, _ = tf.load_tf_checkpoint(source, target)  # logs what it skipped
    else:
        if tf.is_tf_checkpoint(source) and not os.path.isfile(os.path.join(source, "config.json")):
            raise FileNotFoundError(f"{source!r} holds an original TensorFlow checkpoint (*.index), not a Hugging Face "
                                    "model: convert it with --from tf.")
        state, config = hf.load_hf_checkpoint(source)
        source_target = (config.extra.get("architectures") or [None])[0]
    target = target or source_target
    if target not in TASK_MODULES:
        raise ValueError(f"cannot tell the model class (got {target!r}); pass --target, one of "
                         f"{', '.join(TASK_MODULES)}.")
    params, report = hf.hf_state_dict_to_params(state, config, target, seed=seed)
    tokenizer = _tokenizer_files(source, is_run)
    tokens = len(tokenizer.get("vocab.txt", b"").splitlines())
    if tokens > config.vocab_size:  # its ids would index past the embedding table
        logger.warning("%s: its vocab.txt has %d tokens but the model embeds %d: it is not the vocabulary this model "
                       "was trained with; copied as it is, replace it in the output with the right one.",
                       source, tokens, config.vocab_size)
    if overwrite:
        _remove_model_files(destination)
    if to == "hf":
        hf.save_hf_checkpoint(params, config, destination, target)
    elif to == "tf":
        tf.save_tf_checkpoint(params, config, destination, target)
    else:
        native.save_native_checkpoint(params, config, destination, target)
    for name, content in tokenizer.items():
        with open(os.path.join(destination, name), "wb") as f:
            f.write(content)
    logger.info("%s: %d tensors loaded, %d unused, %d freshly initialised -> %s", target, len(report.loaded),
                len(report.unused), len(report.initialized), destination)
    return target


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    destination, to = ((args.to_hf, "hf") if args.to_hf else (args.to_tf, "tf") if args.to_tf
                       else (args.to_native, "bert-jax"))
    try:
        target = convert(args.source_format, args.source, destination, to, args.target, args.seed, args.step,
                         args.overwrite)
    except (ValueError, FileNotFoundError, ImportError) as e:
        print(f"bert-jax convert: error: {e}", file=sys.stderr)
        return 2
    names = {"hf": "Hugging Face", "tf": "original TensorFlow", "bert-jax": "bert-jax"}
    print(f"wrote {target} to {destination} ({names[to]} layout)")
    return 0
