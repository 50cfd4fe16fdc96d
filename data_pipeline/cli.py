"""``bert-jax data build ...`` and ``bert-jax data inspect DIR``: flags in, ``BuildOptions`` out.

Exit codes: 0 done; 1 the build or inspection failed (the message says why and
what to do); 2 a usage error: bad flags, or an ``--output`` that is a file or
not writable.
"""

from __future__ import annotations

import argparse
import logging
import sys

from data_pipeline import build, shards, sources, tokens


def _shard_range(text: str) -> tuple[int, int]:
    try:
        lo, hi = (int(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard-range must look like START:END (e.g. 0:16), got {text!r}") from None
    return lo, hi


def _at_least_zero(flag: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = -1
        if value < 0:
            raise argparse.ArgumentTypeError(f"{flag} must be a whole number >= 0, got {text!r}")
        return value
    return parse


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bert-jax data", description="Build and inspect BERT pretraining shards.")
    sub = parser.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="text -> masked NSP examples in N shards + manifest")
    b.add_argument("--input", nargs="+", action="extend", required=True,
                   help="files, directories (*.txt), globs, or hf:NAME / hf:PATH (a datasets dataset)")
    b.add_argument("--input-format", choices=sources.INPUT_FORMATS, default="bert",
                   help="bert: a sentence per line, blank line between documents; lines: a document per line; "
                        "paragraphs: blank-line separated documents (lines and paragraphs are sentence-split)")
    b.add_argument("--vocab", required=True, help="vocab.txt (or a tokenizer directory)")
    b.add_argument("--lower-case", dest="do_lower_case", action=argparse.BooleanOptionalAction, default=None,
                   help="lower-case the text (an uncased vocabulary); --no-lower-case for a cased one. Default: "
                        "the do_lower_case of the tokenizer_config.json beside --vocab (bert-jax tokenizer train "
                        "writes one), else lower-case")
    b.add_argument("--output", required=True, help="output directory")
    b.add_argument("--max-seq-length", type=int, default=128)
    b.add_argument("--max-predictions-per-seq", type=int, default=20)
    b.add_argument("--masked-lm-prob", type=float, default=0.15)
    b.add_argument("--dupe-factor", type=int, default=5)
    b.add_argument("--short-seq-prob", type=float, default=0.1)
    b.add_argument("--num-shards", type=int, default=1)
    b.add_argument("--seed", type=int, default=12345)
    b.add_argument("--whole-word-masking", action="store_true")
    b.add_argument("--dynamic-masking", action="store_true", help="store unmasked ids; the loader masks each epoch")
    b.add_argument("--workers", type=int, default=1, help="worker processes (output does not depend on it)")
    b.add_argument("--shard-range", type=_shard_range, default=None,
                   help="build only shards START:END (to split a build across machines)")
    b.add_argument("--overwrite", action="store_true",
                   help="delete the shards of a previous build with other options or inputs, and rebuild")
    b.add_argument("--on-invalid-utf8", choices=("skip", "error"), default="skip")
    b.add_argument("--text-column", default="text", help="text column of an hf: dataset")
    b.add_argument("--dataset-split", default="train", help="split of an hf: dataset")

    i = sub.add_parser("inspect", help="statistics and decoded examples of a built directory")
    i.add_argument("directory")
    i.add_argument("--examples", type=_at_least_zero("--examples"), default=3, help="decoded examples to show")
    i.add_argument("--max-examples", type=_at_least_zero("--max-examples"), default=200_000,
                   help="analyse at most this many examples, from the first shards (0 = all)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "inspect":
        from data_pipeline import inspect

        try:
            print(inspect.report(args.directory, num_decoded=args.examples, max_examples=args.max_examples or None))
        except (shards.ShardError, ValueError) as err:
            print(f"bert-jax data inspect: error: {err}", file=sys.stderr)
            return 2
        return 0
    opts = build.BuildOptions(
        inputs=tuple(args.input),
        vocab_file=args.vocab,
        input_format=args.input_format,
        do_lower_case=tokens.vocab_casing(args.vocab) if args.do_lower_case is None else args.do_lower_case,
        max_seq_length=args.max_seq_length,
        max_predictions_per_seq=args.max_predictions_per_seq,
        masked_lm_prob=args.masked_lm_prob,
        dupe_factor=args.dupe_factor,
        short_seq_prob=args.short_seq_prob,
        num_shards=args.num_shards,
        seed=args.seed,
        whole_word_masking=args.whole_word_masking,
        dynamic_masking=args.dynamic_masking,
        on_invalid_utf8=args.on_invalid_utf8,
        text_column=args.text_column,
        dataset_split=args.dataset_split,
    )
    try:
        manifest = build.build(opts, args.output, workers=args.workers, shard_range=args.shard_range, overwrite=args.overwrite)
    except build.OutputError as err:
        print(f"bert-jax data build: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bert-jax data build: interrupted; the shards finished so far are kept (each is verified before "
              f"reuse); run the same command again to build the rest into {args.output}", file=sys.stderr)
        return 130
    except (build.BuildError, sources.InputError, shards.ShardError, tokens.VocabError, ValueError) as err:
        print(f"bert-jax data build: error: {err}", file=sys.stderr)
        return 2
    if manifest is None:
        print(f"built shards {args.shard_range}; run the same command on the other ranges, then once more "
              f"in the directory holding all shards to write the manifest")
    else:
        print(f"wrote {manifest['num_examples']} examples in {manifest['num_shards']} shard(s) to {args.output}")
    return 0
