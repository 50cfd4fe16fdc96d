"""The SWAG-layout set of ``derive_task_data.py``: a sentence's real continuation vs. three others."""

from __future__ import annotations

import collections

import numpy as np

from task_data.common import SPLITS, jaccard, readme, usable

# --------------------------------------------------------------- SWAG layout
SWAG_HEADER = ["video-id", "fold-ind", "startphrase", "sent1", "sent2", "gold-source",
               "ending0", "ending1", "ending2", "ending3", "label"]
PREFIX_WORDS = 2


def make_swag(splits, rng, writer, sizes=(700, 150, 150)):
    examples = {}
    for split, n in zip(SPLITS, sizes):
        docs = splits[split]
        pool = [(d, i) for d in docs for i in range(len(d.sentences) - 1)
                if usable(d.sentences[i], 6, 30) and usable(d.sentences[i + 1], 6, 30)]
        by_prefix, by_first, endings = (collections.defaultdict(list), collections.defaultdict(list), [])
        for d in docs:
            for s in d.sentences:
                if usable(s, 6, 30):
                    w = s.split()
                    item = (d.name, " ".join(w[PREFIX_WORDS:]))
                    by_prefix[" ".join(w[:PREFIX_WORDS]).lower()].append(item)
                    by_first[w[0].lower()].append(item)
                    endings.append(item)
        chosen = [pool[k] for k in rng.choice(len(pool), n, replace=False)]
        labels = rng.permutation(np.arange(n) % 4)
        rows = []
        for (doc, i), label in zip(chosen, labels):
            nxt = doc.sentences[i + 1].split()
            sent2, gold = " ".join(nxt[:PREFIX_WORDS]), " ".join(nxt[PREFIX_WORDS:])
            distractors = []
            # Endings of sentences that start with the same two words, else the same first word, else any;
            # among them the closest in length to the gold ending, so neither the opening words nor
            # the length give the answer away.
            for group in (by_prefix[sent2.lower()], by_first[nxt[0].lower()], endings):
                options = [e for name, e in group if name != doc.name and e != gold and e not in distractors
                           and (doc.sentences[i], f"{sent2} {e}") not in splits["pairs"]]
                if not options:
                    continue
                options = [options[k] for k in rng.permutation(len(options))]
                options.sort(key=lambda e: abs(len(e.split()) - len(gold.split())))
                distractors += options[:3 - len(distractors)]
                if len(distractors) == 3:
                    break
            choices = list(distractors)
            choices.insert(int(label), gold)
            rows.append((doc, i, doc.sentences[i], sent2, choices, int(label)))
        examples[split] = rows
    files = {"train": "train.csv", "dev": "val.csv", "test": "test.csv"}
    for split, filename in files.items():
        rows = []
        for doc, i, sent1, sent2, choices, label in examples[split]:
            row = [doc.name, i, f"{sent1} {sent2}", sent1, sent2, "gold", *choices]
            rows.append(row + [label] if split != "test" else row)
        writer.csv(filename, rows, SWAG_HEADER if split != "test" else SWAG_HEADER[:-1])
    writer.tsv("test_labels.tsv", [[k, ex[-1]] for k, ex in enumerate(examples["test"])], ["index", "label"])
    dev = examples["dev"]

    def accuracy(score):
        return float(np.mean([int(np.argmax([score(s1, c) for c in choices])) == label
                              for _, _, s1, _, choices, label in dev]))

    longest = accuracy(lambda s1, c: len(c.split()))
    shortest = accuracy(lambda s1, c: -len(c.split()))
    overlap = accuracy(lambda s1, c: jaccard(s1, c))
    writer.text("README.md", readme(
        "swag_next: which ending continues the next sentence? (SWAG layout)",
        "SWAG CSV: `train.csv`, `val.csv` with the header `" + ",".join(SWAG_HEADER) + "`; `test.csv` "
        "without `label`. video-id = `<file>:<document>`, fold-ind = the sentence number in the document, "
        "gold-source = `gold`, startphrase = sent1 + ' ' + sent2. Test labels are in `test_labels.tsv`.",
        f"sent1 is a sentence of 6-30 words whose successor in the same document also has 6-30 words; sent2 "
        f"is the successor's first {PREFIX_WORDS} words, and the correct ending the rest of it. The three "
        "distractors are the rests (after their first two words) of real sentences of *other* documents of "
        "the same split, never one that follows sent1 anywhere in the corpus: sentences that open with the "
        "same two words if there are enough, else the same first word, else any; among those, the ones closest in length to the correct ending. The correct "
        "ending's position (label) is uniform over 0-3.",
        "label = index (0-3) of the ending that completes sent2 as the corpus does.",
        [("split", "examples", "label 0", "label 1", "label 2", "label 3")] + [
            (s, len(examples[s]), *[sum(ex[-1] == v for ex in examples[s]) for v in range(4)]) for s in SPLITS],
        [("predictor", "accuracy"), ("chance / majority label", "0.250"),
         ("longest ending", f"{longest:.3f}"), ("shortest ending", f"{shortest:.3f}"),
         ("ending with the largest word overlap with sent1", f"{overlap:.3f}")],
        f"- Length: longest {longest:.3f}, shortest {shortest:.3f} (chance 0.25): distractors are length-matched.\n"
        "- Opening: every choice continues sent2's words; distractors come from sentences that start the same "
        "way where the split has them, so the first word of an ending is not a giveaway.\n"
        f"- Lexical overlap with sent1 picks the right ending {overlap:.3f} of the time: consecutive sentences "
        "share topic words, a genuine (learnable) cue.\n"))
    return {s: len(v) for s, v in examples.items()}
