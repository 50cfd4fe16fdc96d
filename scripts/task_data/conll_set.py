"""The CoNLL-2003-layout set of ``derive_task_data.py``: rule-derived entities in IOB2."""

from __future__ import annotations

import collections
import re

from task_data.common import SPLITS, readme

# -------------------------------------------------------------- CoNLL layout
_TOKEN = re.compile(r"""
    \d+(?:\.\d+)+(?:(?:a|b|rc)\d+)?                       # dotted numbers: versions, decimals
  | \d+                                                   # integers
  | [A-Za-z_]\w*(?:-[A-Za-z]\w*)*(?:\.[A-Za-z_]\w*)*(?:\(\))?   # words, dotted names, calls
  | [^\w\s]                                               # any other character on its own
""", re.X)
KEYWORD_CONSTANTS = frozenset({"None", "True", "False"})
VERSION_CONTEXT = frozenset({"python", "version", "versions", "release", "releases", "in", "since", "until",
                             "before"})
_VERSION = re.compile(r"\d+(?:\.\d+)+(?:(?:a|b|rc)\d+)?$")


def conll_tokens(sentence: str) -> list[str]:
    return _TOKEN.findall(sentence)


def is_code(token: str) -> bool:
    """Identifiers written as code: with an underscore, a call `()`, or dotted names with a part of 3+
    characters (so `os.path.join` and `sys.argv` count, abbreviations like `e.g` do not)."""
    if not (token[0].isalpha() or token[0] == "_"):
        return False
    if "_" in token or token.endswith("()"):
        return True
    parts = token.split(".")
    return len(parts) > 1 and any(len(p) >= 3 for p in parts)


def entity_tags(tokens: list[str]) -> list[str]:
    """IOB2 tags from the rules in README (CODE, KW, VER, NUM)."""
    tags = ["O"] * len(tokens)
    for i, tok in enumerate(tokens):
        prev = tokens[i - 1] if i else ""
        if tok[0].isdigit():
            number_is_version = _VERSION.match(tok) and prev.lower() in VERSION_CONTEXT
            if prev == "Python" and tags[i - 1] == "O":
                tags[i - 1], tags[i] = "B-VER", "I-VER"  # "Python 3.11", "Python 3"
            elif number_is_version or tok.count(".") >= 2:
                tags[i] = "B-VER"
            else:
                tags[i] = "B-NUM"
        elif tok in KEYWORD_CONSTANTS and i > 0:
            tags[i] = "B-KW"  # sentence-initial "None of ..." is English, not the constant
        elif is_code(tok):
            tags[i] = "B-CODE"
    return tags


def make_conll(splits, rng, writer, sentences=(1300, 250, 250)):
    counts, examples = {}, {}
    for split, target in zip(SPLITS, sentences):
        docs = []
        for d in splits[split]:
            tokenised = [conll_tokens(s) for s in d.sentences]
            tagged = [(t, entity_tags(t)) for t in tokenised if t]
            if any(tag != "O" for _, tags in tagged for tag in tags):
                docs.append((d, tagged))
        # Documents holding the longest sentences first (a few per split), so every split has sentences
        # that need more than one 128-piece window; then random documents up to the target.
        # The rarest type (KW) would be missing from small splits by chance, so documents with a keyword
        # constant alternate with the others.
        longest = sorted(range(len(docs)), key=lambda k: -max(len(t) for t, _ in docs[k][1]))[:3]
        rest = [k for k in rng.permutation(len(docs)).tolist() if k not in longest]
        with_kw = [k for k in rest if any("B-KW" in tags for _, tags in docs[k][1])]
        without = [k for k in rest if k not in set(with_kw)]
        order = longest + [k for pair in zip(with_kw, without) for k in pair] + with_kw[len(without):] + \
            without[len(with_kw):]
        picked, total = [], 0
        for k in order:
            if total >= target:
                break
            doc, tagged = docs[k]
            tagged = tagged[:25]  # long documents would crowd out the others
            picked.append((doc, tagged))
            total += len(tagged)
        examples[split] = picked
        lines = []
        for doc, tagged in picked:
            lines.append("-DOCSTART- -X- -X- O\n\n")
            for tokens, tags in tagged:
                lines.append("".join(f"{tok} -X- -X- {tag}\n" for tok, tag in zip(tokens, tags)) + "\n")
        writer.text(f"{split}.txt", "".join(lines))
        entity_counts = collections.Counter(tag[2:] for _, tagged in picked for _, tags in tagged
                                            for tag in tags if tag.startswith("B-"))
        counts[split] = dict(documents=len(picked), sentences=total,
                             tokens=sum(len(t) for _, tagged in picked for t, _ in tagged),
                             longest=max(len(t) for _, tagged in picked for t, _ in tagged),
                             over80=sum(len(t) > 80 for _, tagged in picked for t, _ in tagged),
                             entities=dict(sorted(entity_counts.items())))

    # Baseline: each token gets its most frequent train tag (the CoNLL-2003 task's own baseline),
    # scored by exact entity-span F1.
    memory = collections.defaultdict(collections.Counter)
    for _, tagged in examples["train"]:
        for tokens, tags in tagged:
            for tok, tag in zip(tokens, tags):
                memory[tok][tag] += 1

    def spans(tags):
        out, start = set(), None
        for i, tag in enumerate([*tags, "O"]):
            if start is not None and not tag.startswith("I-"):
                out.add((start, i, tags[start][2:]))
                start = None
            if tag.startswith("B-"):
                start = i
        return out

    def f1(predict, lower=False):
        tp = fp = fn = 0
        for _, tagged in examples["dev"]:
            for tokens, tags in tagged:
                gold, pred = spans(tags), spans(predict(tokens, lower))
                tp, fp, fn = tp + len(gold & pred), fp + len(pred - gold), fn + len(gold - pred)
        return 2 * tp / max(1, 2 * tp + fp + fn)

    lower_memory = collections.defaultdict(collections.Counter)
    for tok, c in memory.items():
        lower_memory[tok.lower()].update(c)

    def lookup(tokens, lower):
        table_ = lower_memory if lower else memory
        tags = [table_[t.lower() if lower else t].most_common(1)[0][0] if (t.lower() if lower else t) in table_
                else "O" for t in tokens]
        # "I-" without a preceding entity starts one, as conlleval reads it.
        return [("B-" + t[2:]) if t.startswith("I-") and (i == 0 or tags[i - 1] == "O") else t
                for i, t in enumerate(tags)]

    seen_f1, lower_f1 = f1(lookup), f1(lookup, lower=True)
    dev_oov = [tok for _, tagged in examples["dev"] for tokens, tags in tagged
               for tok, tag in zip(tokens, tags) if tag != "O" and tok not in memory]
    dev_entities = sum(tag != "O" for _, tagged in examples["dev"] for _, tags in tagged for tag in tags)
    writer.text("README.md", readme(
        "conll_docs: code identifiers, keyword constants, versions and numbers in prose (CoNLL-2003 layout)",
        "CoNLL-2003: `train.txt`, `dev.txt`, `test.txt`; a `-DOCSTART- -X- -X- O` line (then a blank line) "
        "starts each corpus document, sentences are separated by blank lines, one token per line with four "
        "space-separated columns `token POS chunk NER`. **POS and chunk are the placeholder `-X-`**: no "
        "tagger was run, only the NER column carries information.",
        "Each corpus sentence is split into tokens by the regular expression in `conll_tokens` (dotted numbers "
        "such as `3.11` or `3.12.0rc1` stay whole, words keep inner hyphens, dotted names and a trailing `()` "
        "stay whole, as `os.path.join` or `print()`; any other punctuation character is its own token). "
        "Documents with at least one entity are taken (the 3 with the longest sentences first, then in random "
        "order, alternating documents that hold a `KW` with the others so the rare type reaches every split), "
        "their first 25 sentences each, until the split's sentence target. Tags, IOB2, by rule:\n\n"
        "- `VER`: `Python` followed by a number -> `B-VER I-VER` (`Python 3.11`, `Python 3`); a dotted number "
        "after `version(s)`, `release(s)`, `in`, `since`, `until`, `before`, or with 3+ parts -> `B-VER`.\n"
        "- `NUM`: any other number (`42`, `1.5`, a `2.0` not preceded by those words).\n"
        "- `KW`: `None`, `True`, `False` written with a capital, except as the first token (`None of these ...` "
        "is English).\n"
        "- `CODE`: a token with `_`, ending in `()`, or dotted names with a part of 3+ characters "
        "(`sys.argv`, `__init__`, `str.join()`; not `e.g`). Bare names (`re`, `open`) are not marked: the rule "
        "cannot tell them from English.",
        "`B-<type>` starts an entity, `I-<type>` continues it (only `Python <number>` spans two tokens), `O` "
        "is outside. Types: CODE, KW, VER, NUM.",
        [("split", "documents", "sentences", "tokens", "entities", "longest sentence (tokens)",
          "sentences > 80 tokens")] + [
            (s, counts[s]["documents"], counts[s]["sentences"], counts[s]["tokens"],
             ", ".join(f"{k} {v}" for k, v in counts[s]["entities"].items()), counts[s]["longest"],
             counts[s]["over80"]) for s in SPLITS],
        [("predictor", "entity F1"),
         ("all `O`", "0.000"),
         ("most frequent train tag of the exact (cased) token", f"{seen_f1:.3f}"),
         ("most frequent train tag of the lower-cased token (what an uncased model sees)", f"{lower_f1:.3f}")],
        f"- Unseen tokens: {len(dev_oov)} of the {dev_entities} dev entity tokens never occur in train "
        "(mostly identifiers); the lookup baseline cannot tag them, a model must use their shape (`_`, "
        "`.`, `()`, word pieces) and context.\n"
        "- Context: `VER` vs `NUM` for a dotted number depends on the previous word; `None` / `True` / "
        "`False` vs `none` / `true` / `false` differ only in case, which an uncased model loses, so it "
        "needs the context (`returns None`, `is True`).\n"
        "- Long inputs: every split holds sentences of more than 80 tokens (longest in the table), which "
        "exceed 128 word pieces with a small vocabulary, and identifiers such as "
        "`PyUnicode_AsUTF8AndSize` split into many word pieces.\n"))
    return {s: counts[s]["sentences"] for s in SPLITS}
