"""GLUE-layout sets of ``derive_task_data.py``: acceptability [CoLA], next sentence [RTE],
similarity [STS-B] and documentation section [SST-2]."""

from __future__ import annotations

import collections

import numpy as np

from task_data.common import SPLITS, best_threshold_accuracy, fmt, jaccard, pearson, readme, usable, words_lower

# --------------------------------------------------------------- CoLA layout
CORRUPTIONS = ("swap_adjacent", "swap_two", "reverse_span")


def corrupt(words: list[str], rng: np.random.Generator) -> tuple[str, list[str]]:
    """Word order corrupted inside the sentence; the first and last words stay in place so that
    capitalisation and the final punctuation do not reveal the label."""
    inner = len(words) - 2
    for _ in range(20):
        kind = CORRUPTIONS[rng.integers(len(CORRUPTIONS))]
        out = list(words)
        if kind == "swap_adjacent":
            i = 1 + int(rng.integers(inner - 1))
            out[i], out[i + 1] = out[i + 1], out[i]
        elif kind == "swap_two":
            i, j = 1 + rng.choice(inner, 2, replace=False)
            out[i], out[j] = out[j], out[i]
        else:
            span = int(rng.integers(3, min(5, inner) + 1))
            i = 1 + int(rng.integers(inner - span + 1))
            out[i:i + span] = out[i:i + span][::-1]
        if out != words:
            return kind, out
    raise AssertionError(f"could not corrupt {' '.join(words)!r}")


def make_acceptability(splits, rng, writer, sizes=(2000, 300, 300)):
    examples = {}
    kinds = collections.Counter()
    for split, n in zip(SPLITS, sizes):
        pool = [(d, i, s) for d in splits[split] for i, s in enumerate(d.sentences) if usable(s)]
        chosen = [pool[k] for k in rng.choice(len(pool), n, replace=False)]
        labels = rng.permutation(np.arange(n) % 2)
        rows = []
        for (doc, i, sentence), label in zip(chosen, labels):
            words = sentence.split()
            if label == 0:
                kind, words = corrupt(words, rng)
                kinds[kind] += 1
            rows.append((doc, int(label), " ".join(words)))
        examples[split] = rows
    for split in ("train", "dev"):
        writer.tsv(f"{split}.tsv", [[doc.file, label, "" if label else "*", text]
                                    for doc, label, text in examples[split]])
    writer.tsv("test.tsv", [[k, text] for k, (_, _, text) in enumerate(examples["test"])], ["index", "sentence"])
    writer.tsv("test_labels.tsv", [[k, label] for k, (_, label, _) in enumerate(examples["test"])],
               ["index", "label"])

    # Cues: length (identical multisets of words, so no bag-of-words cue exists) and a word-order
    # statistic a model can learn: the share of a sentence's bigrams seen in the train documents.
    train_bigrams = set()
    for doc in splits["train"]:
        for s in doc.sentences:
            w = s.lower().split()
            train_bigrams.update(zip(w, w[1:]))
    train_texts = {s for d in splits["train"] for s in d.sentences}

    def seen(text):
        w = text.lower().split()
        pairs = list(zip(w, w[1:]))
        return sum(p in train_bigrams for p in pairs) / len(pairs)

    def feats(split, fn):
        return [fn(t) for _, _, t in examples[split]], [lab for _, lab, _ in examples[split]]

    tx, ty = feats("train", lambda t: len(t.split()))
    dx, dy = feats("dev", lambda t: len(t.split()))
    length_acc = best_threshold_accuracy(tx, ty, dx, dy)
    # Every bigram of a train example's original is "seen", so the threshold is fitted on dev and the
    # accuracy reported on test (both held out from the bigram table).
    dx2, dy2 = feats("dev", seen)
    ex2, ey2 = feats("test", seen)
    bigram_acc = best_threshold_accuracy(dx2, dy2, ex2, ey2)
    dev_labels = np.array(dy)
    majority = float(max(dev_labels.mean(), 1 - dev_labels.mean()))
    assert not any(t in train_texts for split in ("dev", "test") for _, _, t in examples[split])
    lengths = {lab: np.mean([len(t.split()) for _, l2, t in examples["train"] if l2 == lab]) for lab in (0, 1)}
    writer.text("README.md", readme(
        "glue_acceptability: is the word order of a real sentence intact? (CoLA layout)",
        "GLUE CoLA: `train.tsv`, `dev.tsv` without header, four tab-separated columns: source "
        "(the corpus file the sentence comes from), label (1/0), the original-label mark (`*` for 0, empty "
        "for 1), sentence. `test.tsv` with header `index\\tsentence`. The test labels, withheld from "
        "`test.tsv` as in GLUE, are in `test_labels.tsv` (`index\\tlabel`) for offline scoring.",
        "Sentences of 6-30 whitespace words are drawn without replacement from each split's documents; "
        "each is used once, kept as is (label 1) or corrupted (label 0), half and half at random. "
        "A corruption moves words strictly inside the sentence (the first and last word stay put): "
        "`swap_adjacent` swaps two neighbouring words, `swap_two` two random words, `reverse_span` "
        "reverses a span of 3-5 words; the result always differs from the original. "
        f"Corruptions used: {dict(sorted(kinds.items()))}.",
        "1 = a sentence of the corpus exactly as written; 0 = the same words in a corrupted order.",
        [("split", "examples", "label 1", "label 0")] + [
            (s, len(examples[s]), sum(l for _, l, _ in examples[s]), sum(1 - l for _, l, _ in examples[s]))
            for s in SPLITS],
        [("predictor", "accuracy", "MCC (the CoLA metric)"),
         ("majority class", f"{majority:.3f}", "0.000"),
         ("length threshold fitted on train", f"{length_acc:.3f}", "-"),
         ("share of bigrams seen in train documents, threshold fitted on dev (test accuracy)",
          f"{bigram_acc:.3f}", "-")],
        f"- Bag of words: none by construction (a corrupted sentence has exactly the words of its original).\n"
        f"- Length: mean words per train sentence {lengths[1]:.2f} (label 1) vs {lengths[0]:.2f} (label 0); "
        f"the best length threshold reaches {length_acc:.3f} on dev (chance is 0.5).\n"
        "- Capitalisation and final punctuation: unchanged (the first and last words never move).\n"
        "- Word order is learnable: how many of a sentence's bigrams occur in the train documents separates "
        f"the labels with {bigram_acc:.3f} held-out accuracy, so a model that learns English word order "
        "from the train set can beat the majority class.\n"))
    return {s: len(v) for s, v in examples.items()}


# ---------------------------------------------------------------- RTE layout
def make_nextsent(splits, rng, writer, sizes=(1600, 250, 250)):
    examples = {}
    for split, n in zip(SPLITS, sizes):
        docs = splits[split]
        pool = [(d, i) for d in docs for i in range(len(d.sentences) - 1)
                if usable(d.sentences[i]) and usable(d.sentences[i + 1])]
        others = collections.defaultdict(list)  # corpus file -> usable sentences (doc name, sentence)
        for d in docs:
            others[d.file] += [(d.name, s) for s in d.sentences if usable(s)]
        chosen = [pool[k] for k in rng.choice(len(pool), n, replace=False)]
        labels = rng.permutation(np.arange(n) % 2)  # 1 = entailment (the next sentence)
        rows = []
        for (doc, i), label in zip(chosen, labels):
            if label:
                second = doc.sentences[i + 1]
            else:
                # Another document of the same part of the documentation, so the topic vocabulary
                # of the negative is as close as the split allows.
                candidates = others[doc.file]
                while True:
                    name, second = candidates[rng.integers(len(candidates))]
                    if name != doc.name and (doc.sentences[i], second) not in splits["pairs"]:
                        break
            rows.append((doc.sentences[i], second, "entailment" if label else "not_entailment"))
        examples[split] = rows
    for split in ("train", "dev"):
        writer.tsv(f"{split}.tsv", [[k, a, b, lab] for k, (a, b, lab) in enumerate(examples[split])],
                   ["index", "sentence1", "sentence2", "label"])
    writer.tsv("test.tsv", [[k, a, b] for k, (a, b, _) in enumerate(examples["test"])],
               ["index", "sentence1", "sentence2"])
    writer.tsv("test_labels.tsv", [[k, lab] for k, (_, _, lab) in enumerate(examples["test"])], ["index", "label"])

    def feats(split, fn):
        return ([fn(a, b) for a, b, _ in examples[split]],
                [int(lab == "entailment") for _, _, lab in examples[split]])

    length = best_threshold_accuracy(*feats("train", lambda a, b: len(b.split())),
                                     *feats("dev", lambda a, b: len(b.split())))
    length_diff = best_threshold_accuracy(*feats("train", lambda a, b: abs(len(a.split()) - len(b.split()))),
                                          *feats("dev", lambda a, b: abs(len(a.split()) - len(b.split()))))
    overlap = best_threshold_accuracy(*feats("train", jaccard), *feats("dev", jaccard))
    dev_y = np.array(feats("dev", jaccard)[1])
    majority = float(max(dev_y.mean(), 1 - dev_y.mean()))
    writer.text("README.md", readme(
        "glue_nextsent: does sentence2 follow sentence1 in the same document? (RTE layout)",
        "GLUE RTE: `train.tsv`, `dev.tsv` with header `index\\tsentence1\\tsentence2\\tlabel`, labels "
        "`entailment` / `not_entailment`; `test.tsv` with header `index\\tsentence1\\tsentence2`. Test labels "
        "are in `test_labels.tsv` (`index\\tlabel`).",
        "sentence1 is drawn without replacement among the sentences of 6-30 words whose successor in the "
        "same document also has 6-30 words. Half at random (label `entailment`) get that successor as "
        "sentence2; the others (`not_entailment`) get a random 6-30-word sentence of *another* document "
        "of the same corpus file (same part of the documentation, same split).",
        "`entailment` = sentence2 is the sentence that follows sentence1 in the corpus; `not_entailment` = "
        "sentence2 comes from a different document.",
        [("split", "pairs", "entailment", "not_entailment")] + [
            (s, len(examples[s]), sum(lab == "entailment" for *_, lab in examples[s]),
             sum(lab != "entailment" for *_, lab in examples[s])) for s in SPLITS],
        [("predictor (threshold fitted on train)", "accuracy"),
         ("majority class", f"{majority:.3f}"),
         ("length of sentence2", f"{length:.3f}"),
         ("length difference", f"{length_diff:.3f}"),
         ("word overlap (Jaccard of lower-cased word sets)", f"{overlap:.3f}")],
        f"- Length of sentence2 and the length difference: {length:.3f} and {length_diff:.3f} on dev (chance 0.5).\n"
        f"- Lexical overlap is a real cue of coherence (consecutive sentences share topic words): "
        f"{overlap:.3f}. A model has to beat it with discourse cues (pronouns, 'This', 'However', "
        "continuing an enumeration) to be doing more than counting shared words.\n"))
    return {s: len(v) for s, v in examples.items()}


# -------------------------------------------------------------- STS-B layout
STS_HEADER = ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2",
              "score"]
RATIOS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


def make_similarity(splits, rng, writer, sizes=(1200, 240, 240)):
    examples = {}
    for split, n in zip(SPLITS, sizes):
        docs = splits[split]
        pool = [(d, i) for d in docs for i, s in enumerate(d.sentences) if usable(s, 6, 25)]
        donors = [(d, i) for d in docs for i, s in enumerate(d.sentences) if usable(s, 6, 40)]
        chosen = [pool[k] for k in rng.choice(len(pool), n, replace=False)]
        ratios = [RATIOS[k] for k in rng.permutation(np.arange(n) % len(RATIOS))]
        rows = []
        for (doc, i), r in zip(chosen, ratios):
            words = doc.sentences[i].split()
            want = round(r * len(words))
            best = None
            for _ in range(50):
                donor_doc, j = donors[rng.integers(len(donors))]
                donor = donor_doc.sentences[j].split()
                if donor_doc.name == doc.name or len(donor) < len(words):
                    continue
                # Replace word i by the donor's word i (same position), only where they differ, so the
                # share of changed words is exactly what the score says.
                differ = [k for k in range(len(words)) if words[k].lower() != donor[k].lower()]
                if best is None or len(differ) > len(best[2]):
                    best = (donor_doc, j, differ, donor)
                if len(differ) >= want:
                    break
            donor_doc, j, differ, donor = best
            replaced = sorted(rng.choice(differ, min(want, len(differ)), replace=False).tolist())
            out = list(words)
            for k in replaced:
                out[k] = donor[k]
            score = 5.0 * (1 - len(replaced) / len(words))
            rows.append((doc, i, donor_doc, j, " ".join(words), " ".join(out), score))
        examples[split] = rows

    def row(k, ex, with_score):
        doc, i, ddoc, j, a, b, score = ex
        cells = [k, "pydocs", doc.file, "py3.11", f"{doc.index:04d}{i:03d}", f"{doc.name}:{i}",
                 f"{ddoc.name}:{j}", a, b]
        return cells + [f"{score:.3f}"] if with_score else cells

    for split in ("train", "dev"):
        writer.tsv(f"{split}.tsv", [row(k, ex, True) for k, ex in enumerate(examples[split])], STS_HEADER)
    writer.tsv("test.tsv", [row(k, ex, False) for k, ex in enumerate(examples["test"])], STS_HEADER[:-1])
    writer.tsv("test_labels.tsv", [[k, f"{ex[-1]:.3f}"] for k, ex in enumerate(examples["test"])],
               ["index", "score"])
    dev = examples["dev"]
    scores = [ex[-1] for ex in dev]
    length_r = pearson([abs(len(ex[4].split()) - len(ex[5].split())) for ex in dev], scores)
    overlap_r = pearson([jaccard(ex[4], ex[5]) for ex in dev], scores)
    hist = collections.Counter(round(ex[-1]) for s in SPLITS for ex in examples[s])
    writer.text("README.md", readme(
        "glue_similarity: graded similarity of a sentence and a partly replaced copy (STS-B layout)",
        "GLUE STS-B: `train.tsv`, `dev.tsv` with the header `" + " ".join(STS_HEADER) + "` (tab-separated), "
        "the score in the last column; `test.tsv` with the same columns less `score`. genre = `pydocs`, "
        "filename = the corpus file, year = `py3.11`, old_index = document and sentence number, "
        "source1 / source2 = `<file>:<document>:<sentence>` of sentence1 and of the donor sentence. Test "
        "scores are in `test_labels.tsv` (`index\\tscore`).",
        "sentence1 is a real sentence of 6-25 words. A ratio r is drawn evenly from {0, 0.2, 0.4, 0.6, 0.8, 1}; "
        "a donor sentence at least as long is drawn from another document of the same split, and "
        "k = round(r * n) of sentence1's n word positions, chosen at random among the positions where the "
        "donor's word differs, are replaced by the donor's word at the same position. sentence2 therefore "
        "has exactly n words, n - k of them sentence1's in order. score = 5 * (1 - k / n) (k is smaller than "
        "round(r * n) only when too few positions differ in 50 donor draws).",
        "score in [0, 5]: 5 = identical, 0 = every word replaced by the donor's (then sentence2 is the donor's "
        "first n words); in between, the share of sentence1's words kept.",
        [("split", "pairs", "score ~0", "~1", "~2", "~3", "~4", "5")] + [
            (s, len(examples[s]), *[sum(round(ex[-1]) == v for ex in examples[s]) for v in range(6)])
            for s in SPLITS],
        [("predictor", "Pearson with the score"),
         ("constant (e.g. the train mean)", "undefined (0 by convention)"),
         ("length difference", fmt(length_r)),
         ("word overlap (Jaccard of lower-cased word sets)", fmt(overlap_r))],
        "- Length: sentence2 always has sentence1's word count, so length carries no signal "
        f"(length-difference Pearson: {fmt(length_r)}).\n"
        "- Lexical overlap *is* the construct here: the score is the share of words kept, and the Jaccard "
        f"overlap of the word sets correlates {fmt(overlap_r)} with it. The set tests that a model learns "
        "to compare two texts token by token across the [SEP]; it is not a test of paraphrase.\n"
        f"- Score histogram (rounded, all splits): {dict(sorted(hist.items()))}.\n"))
    return {s: len(v) for s, v in examples.items()}


# ------------------------------------------------------------- SQuAD layout

# --------------------------------------------------------------- SST-2 layout
SECTION_FILES = ("howto", "library")  # label 1, label 0 (the tutorial has too few dev documents)


def make_section(splits, rng, writer, sizes=(1800, 300, 300)):
    examples = {}
    for split, n in zip(SPLITS, sizes):
        rows = []
        for label, file in ((1, SECTION_FILES[0]), (0, SECTION_FILES[1])):
            pool = sorted({s for d in splits[split] if d.file == file for s in d.sentences if usable(s)})
            rows += [(pool[k], label) for k in rng.choice(len(pool), n // 2, replace=False)]
        examples[split] = [rows[k] for k in rng.permutation(len(rows))]
    for split in ("train", "dev"):
        writer.tsv(f"{split}.tsv", [[text, label] for text, label in examples[split]], ["sentence", "label"])
    writer.tsv("test.tsv", [[k, text] for k, (text, _) in enumerate(examples["test"])], ["index", "sentence"])
    writer.tsv("test_labels.tsv", [[k, label] for k, (_, label) in enumerate(examples["test"])],
               ["index", "label"])

    # Cues: length, and bag of words (the task is mostly lexical: a multinomial naive Bayes on
    # lower-cased words, fitted on train, is the strong surface baseline a fine-tuned model is measured by).
    tx, ty = [len(t.split()) for t, _ in examples["train"]], [lab for _, lab in examples["train"]]
    dx, dy = [len(t.split()) for t, _ in examples["dev"]], [lab for _, lab in examples["dev"]]
    length_acc = best_threshold_accuracy(tx, ty, dx, dy)
    counts = {0: collections.Counter(), 1: collections.Counter()}
    for text, label in examples["train"]:
        counts[label].update(words_lower(text))
    vocab = set(counts[0]) | set(counts[1])
    totals = {lab: sum(c.values()) + len(vocab) for lab, c in counts.items()}

    def nb(text):
        score = sum(np.log((counts[1][w] + 1) / totals[1]) - np.log((counts[0][w] + 1) / totals[0])
                    for w in words_lower(text) if w in vocab)
        return int(score > 0)

    nb_acc = float(np.mean([nb(t) == lab for t, lab in examples["dev"]]))
    train_texts = {t for t, _ in examples["train"]}
    assert not any(t in train_texts for split in ("dev", "test") for t, _ in examples[split])
    writer.text("README.md", readme(
        "glue_section: is a sentence from the Python HOWTOs or from the library reference? (SST-2 layout)",
        "GLUE SST-2: `train.tsv`, `dev.tsv` with header `sentence\tlabel`; `test.tsv` with header "
        "`index\tsentence`. The test labels, withheld from `test.tsv` as in GLUE, are in `test_labels.tsv` "
        "(`index\tlabel`) for offline scoring.",
        f"Sentences of 6-30 whitespace words, each used once, drawn without replacement from the split's "
        f"documents of `{SECTION_FILES[0]}.txt` (label 1) and `{SECTION_FILES[1]}.txt` (label 0), half and "
        "half, then shuffled. The sentences are unchanged.",
        f"1 = the sentence comes from the HOWTO guides ({SECTION_FILES[0]}.txt); 0 = from the library reference "
        f"({SECTION_FILES[1]}.txt).",
        [("split", "examples", "label 1", "label 0")] + [
            (s, len(examples[s]), sum(lab for _, lab in examples[s]), sum(1 - lab for _, lab in examples[s]))
            for s in SPLITS],
        [("predictor (fitted on train)", "accuracy"), ("majority class", "0.500"),
         ("length threshold", f"{length_acc:.3f}"),
         ("naive Bayes on lower-cased words (bag of words)", f"{nb_acc:.3f}")],
        f"- Length: the best length threshold reaches {length_acc:.3f} on dev (chance 0.5).\n"
        f"- Vocabulary *is* the main cue (the HOWTOs walk the reader through a topic; the library reference "
        f"describes functions and parameters): a bag-of-words naive Bayes reaches {nb_acc:.3f}. The "
        "set checks that single-sentence classification learns; it is not a test of sentiment.\n"))
    return {s: len(v) for s, v in examples.items()}
