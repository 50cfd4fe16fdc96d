"""Derive small fine-tuning sets, in the original benchmark file layouts, from the bundled corpus.

Every sentence in every set is a real sentence of ``data/corpus/*.txt`` (the Python 3.11
documentation, PSF licence), or one transformed by a stated rule (words swapped, replaced by
the words of another real sentence, a span blanked out). Nothing is written by hand.

Splits are by *document*: ``sha1("<file>:<document index>")`` puts 80% of the documents in
train, 10% in dev and 10% in test, so dev/test sentences (and the distractors or negatives
drawn for them) come from documents that train never sees. Random choices use
``np.random.default_rng([SEED, <set number>])``; the output depends only on the corpus.

Sets (layout mimicked in brackets; each directory gets a README.md with sizes and baselines):
  glue_acceptability [CoLA]    real sentence (1) vs. the same sentence with its word order corrupted (0)
  glue_nextsent      [RTE]     sentence2 follows sentence1 in its document, or comes from another one
  glue_similarity    [STS-B]   sentence2 = sentence1 with a fraction r of its words replaced; score 5(1-r)
  squad_cloze        [SQuAD]   a sentence of the paragraph with an answer span blanked out, cut to 3 words
                               either side of the gap (v2.0: plus such cuts of other documents, unanswerable)
  conll_docs         [CoNLL-2003] rule-derived CODE / KW / VER / NUM entities in IOB2
  swag_next          [SWAG]    the continuation of a sentence's successor vs. three other real endings

    python scripts/derive_task_data.py                       # rewrite data/tasks/
    python scripts/derive_task_data.py --output /tmp/tasks   # elsewhere (tests compare the two)

The makers live in ``scripts/task_data/``, one module per layout (``glue_sets``, ``squad_set``,
``conll_set``, ``swag_set``); ``common`` holds the corpus and its splits, the writer of a set's
files and README, and the baseline metrics.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from task_data.common import ROOT, SEED, Writer, by_split, read_corpus, split_of  # noqa: E402,F401 (tests use split_of)
from task_data.conll_set import make_conll  # noqa: E402
from task_data.glue_sets import make_acceptability, make_nextsent, make_section, make_similarity  # noqa: E402
from task_data.squad_set import make_squad  # noqa: E402
from task_data.swag_set import make_swag  # noqa: E402

SETS = (
    ("glue_acceptability", make_acceptability),
    ("glue_nextsent", make_nextsent),
    ("glue_similarity", make_similarity),
    ("squad_cloze", make_squad),
    ("conll_docs", make_conll),
    ("swag_next", make_swag),
    ("glue_section", make_section),  # appended last: each set's RNG stream is fixed by its position
)


def derive(corpus_dir: str, output_dir: str, only: list[str] | None = None) -> dict:
    """Writes every set (or those in `only`) under `output_dir`; returns {set: {split: size}}."""
    docs = read_corpus(corpus_dir)
    splits = by_split(docs)
    # Consecutive sentence pairs anywhere in the corpus: a negative or distractor must not be one (a
    # sentence repeated in several documents can have several true successors).
    splits["pairs"] = {(a, b) for d in docs for a, b in zip(d.sentences, d.sentences[1:])}
    summary = {}
    for number, (name, make) in enumerate(SETS):
        if only and name not in only:
            continue
        rng = np.random.default_rng([SEED, number])
        summary[name] = make(splits, rng, Writer(output_dir, name))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default=os.path.join(ROOT, "data", "corpus"))
    parser.add_argument("--output", default=os.path.join(ROOT, "data", "tasks"))
    parser.add_argument("--only", nargs="*", choices=[name for name, _ in SETS], help="derive only these sets")
    args = parser.parse_args(argv)
    summary = derive(args.corpus, args.output, args.only)
    total = 0
    for name, sizes in summary.items():
        folder = os.path.join(args.output, name)
        size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
        total += size
        print(f"{name:20s} {size / 1e3:8.1f} kB  " + "  ".join(f"{s}={n}" for s, n in sizes.items()))
    print(f"{'total':20s} {total / 1e3:8.1f} kB -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
