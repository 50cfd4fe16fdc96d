"""The SQuAD-layout set of ``derive_task_data.py`` (v1.1 and v2.0): cloze questions with answer spans."""

from __future__ import annotations

import collections
import hashlib
import re
import string

import numpy as np

from task_data.common import readme, usable

STOPWORDS = frozenset("""a an the and or but if then else of to in on at by for with from as is are was were be been
being it its this that these those there their they them he she we you i not no can may will would should could
than which who whom whose what when where why how all any each some such also only more most other into out up
over under about after before between so do does did has have had one two use used using see""".split())
_WORD = re.compile(r"\S+")
_EDGE = "\"'([{<"
_TAIL = "\"')]}>.,;:!?"
BLANK = "____"


def answer_spans(sentence: str) -> list[tuple[int, int]]:
    """Candidate answers: 1-3 consecutive words (edge punctuation stripped), none a stop word at either
    end, inner words without trailing punctuation; as (start, end) character offsets in `sentence`."""
    cores = []
    for m in _WORD.finditer(sentence):
        tok = m.group()
        lead = len(tok) - len(tok.lstrip(_EDGE))
        core = tok[lead:].rstrip(_TAIL)
        start = m.start() + lead
        cores.append((start, start + len(core), core, tok.endswith(tuple(_TAIL)) or lead > 0))
    spans = []
    for i, (start, _, core, _) in enumerate(cores):
        for length in (1, 2, 3):
            last = cores[i:i + length]
            if len(last) < length or any(c[3] for c in last[:-1]):
                break
            end, last_core = last[-1][1], last[-1][2]
            if all(len(c) >= 3 and c.lower() not in STOPWORDS and any(ch.isalnum() for ch in c)
                   for c in (core, last_core)):
                spans.append((start, end))
    return spans


def normalize_answer(text: str) -> str:
    """SQuAD's official normalisation: lower case, no punctuation, articles or extra spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def squad_f1(prediction: str, truth: str) -> float:
    p, t = normalize_answer(prediction).split(), normalize_answer(truth).split()
    if not p or not t:
        return float(p == t)
    common = sum((collections.Counter(p) & collections.Counter(t)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(t)
    return 2 * precision * recall / (precision + recall)


def cloze_question(sentence: str, a: int, b: int, side: int) -> str:
    """``sentence`` with ``[a, b)`` replaced by ``BLANK``, cut to the ``side`` words on either side of
    the gap (an exact slice of the sentence, so the question's two parts occur in it as they are)."""
    words = [(m.start(), m.end()) for m in _WORD.finditer(sentence)]
    left = [w for w in words if w[1] <= a][-side:]
    right = [w for w in words if w[0] >= b][:side]
    start = left[0][0] if left else a
    end = right[-1][1] if right else b
    return sentence[start:a] + BLANK + sentence[b:end]


def make_squad(splits, rng, writer, contexts=(2000, 150), v2_train_contexts=500, per_context=3,
               impossible_per_context=2, max_sentences=3, side=3):
    out = {}
    stats = {}
    for split, n in zip(("train", "dev"), contexts):
        docs = [d for d in splits[split]
                if 3 <= len(d.sentences) and all(s and "\t" not in s for s in d.sentences[:max_sentences])]
        chosen = [docs[k] for k in rng.choice(len(docs), min(n, len(docs)), replace=False)]
        other_sentences = [(d.name, s) for d in splits[split] for s in d.sentences if usable(s, 6, 40)]
        articles_v1, articles_v2 = [], []
        for number, doc in enumerate(chosen):
            sentences = doc.sentences[:max_sentences]
            context = " ".join(sentences)
            offsets = np.cumsum([0] + [len(s) + 1 for s in sentences])
            candidates = [k for k, s in enumerate(sentences) if usable(s, 6, 40) and answer_spans(s)]
            qas = []
            for k in rng.permutation(candidates)[:per_context]:
                sentence = sentences[k]
                spans = answer_spans(sentence)
                a, b = spans[rng.integers(len(spans))]
                start = int(offsets[k]) + a
                answer = sentence[a:b]
                assert context[start:start + len(answer)] == answer
                qid = hashlib.sha1(f"{doc.name}:{k}:{a}:{b}".encode()).hexdigest()[:24]
                qas.append({"answers": [{"answer_start": start, "text": answer}],
                            "question": cloze_question(sentence, a, b, side), "id": qid})
            title = f"{doc.file} {doc.index}"
            articles_v1.append({"title": title, "paragraphs": [{"context": context, "qas": qas}]})
            if split == "train" and number >= v2_train_contexts:
                continue
            impossible = []
            while len(impossible) < impossible_per_context:
                name, sentence = other_sentences[rng.integers(len(other_sentences))]
                spans = answer_spans(sentence)
                if name == doc.name or not spans:
                    continue
                a, b = spans[rng.integers(len(spans))]
                question = cloze_question(sentence, a, b, side)
                before, after = question.split(BLANK)
                if re.search(re.escape(before) + ".+?" + re.escape(after), context):
                    continue  # its two parts occur in this context around some span: answerable here
                qid = hashlib.sha1(f"{doc.name}:impossible:{name}:{sentence}:{a}".encode()).hexdigest()[:24]
                impossible.append({"question": question, "id": qid, "answers": [], "is_impossible": True})
            v2 = [{**q, "is_impossible": False} for q in qas] + impossible
            v2 = [v2[j] for j in rng.permutation(len(v2))]
            articles_v2.append({"title": title, "paragraphs": [{"context": context, "qas": v2}]})
        out[split] = (articles_v1, articles_v2)
        writer.json(f"{split}-v1.1.json", {"version": "1.1", "data": articles_v1})
        writer.json(f"{split}-v2.0.json", {"version": "v2.0", "data": articles_v2})

        # Baselines over this split: the first sentence / first three words of the context.
        first_f1, first3_f1, first_v2, noans_v2, words, qwords = [], [], [], [], [], []
        for art in articles_v1:
            para = art["paragraphs"][0]
            context = para["context"]
            words.append(len(context.split()))
            first = context[:context.find(". ") + 1] if ". " in context else context
            first3 = " ".join(context.split()[:3])
            for q in para["qas"]:
                first_f1.append(squad_f1(first, q["answers"][0]["text"]))
                first3_f1.append(squad_f1(first3, q["answers"][0]["text"]))
                qwords.append(len(q["question"].split()))
        for art in articles_v2:
            para = art["paragraphs"][0]
            context = para["context"]
            first = context[:context.find(". ") + 1] if ". " in context else context
            for q in para["qas"]:
                gold = q["answers"][0]["text"] if q["answers"] else ""
                first_v2.append(squad_f1(first, gold))
                noans_v2.append(float(gold == ""))
        stats[split] = dict(contexts=len(articles_v1), v2_contexts=len(articles_v2),
                            v1=sum(len(a["paragraphs"][0]["qas"]) for a in articles_v1),
                            v2=sum(len(a["paragraphs"][0]["qas"]) for a in articles_v2),
                            first=np.mean(first_f1), first3=np.mean(first3_f1), first_v2=np.mean(first_v2),
                            noans=np.mean(noans_v2), long=sum(w > 48 for w in words),
                            mean_words=np.mean(words), mean_qwords=np.mean(qwords))
    dev, train = stats["dev"], stats["train"]
    writer.text("README.md", readme(
        "squad_cloze: find the blanked span of a sentence in its paragraph (SQuAD v1.1 / v2.0 layout)",
        "SQuAD JSON: `train-v1.1.json`, `dev-v1.1.json` (`{\"version\", \"data\": [{\"title\", \"paragraphs\": "
        "[{\"context\", \"qas\": [{\"id\", \"question\", \"answers\": [{\"text\", \"answer_start\"}]}]}]}]}`); "
        "`train-v2.0.json`, `dev-v2.0.json` add `is_impossible` to every question (`answers: []` when true). "
        "There is no test split, as in SQuAD.",
        f"One article per document: the context is the document's first {max_sentences} sentences joined by "
        f"single spaces (mean {dev['mean_words']:.0f} words on dev; {train['long']} train and {dev['long']} dev "
        "contexts have more than 48 words, so at 64 tokens per window they need several). Up to "
        f"{per_context} questions per context: a sentence of 6-40 words of the context with an answer span "
        f"replaced by `____`, cut to the {side} words on either side of the gap (an exact slice of the sentence; "
        f"mean {dev['mean_qwords']:.1f} words on dev). The span is 1-3 consecutive words (edge punctuation "
        "stripped) whose first and last words are not stop words and have 3+ characters; the answer is that "
        "span at its exact character offset (`context[answer_start:][:len(text)] == text`, checked). One gold "
        "answer per question: the blanked occurrence (other occurrences of the same text score the same under "
        f"the official text-based metric). v2.0 adds {impossible_per_context} unanswerable questions per context: "
        "a sentence of another document of the same split, blanked and cut the same way, kept only when its two "
        "parts do not occur in the context around any span (`plausible_answers` are not given). v2.0 shares "
        f"v1.1's contexts and answerable question ids: all of dev's, the first {v2_train_contexts} of train's "
        "(to keep the files small; v1.1 train has every context).",
        "answer = the text removed from the question; v2.0: `is_impossible` = the question comes from another "
        "document.",
        [("split", "contexts (v1.1 / v2.0)", "v1.1 questions", "v2.0 questions")] + [
            (s, f"{stats[s]['contexts']} / {stats[s]['v2_contexts']}", stats[s]["v1"], stats[s]["v2"])
            for s in ("train", "dev")],
        [("predictor", "F1 (official normalisation)"),
         ("v1.1: always the context's first sentence", f"{100 * dev['first']:.1f}"),
         ("v1.1: always the context's first 3 words", f"{100 * dev['first3']:.1f}"),
         ("v2.0: always the first sentence", f"{100 * dev['first_v2']:.1f}"),
         ("v2.0: always no answer", f"{100 * dev['noans']:.1f}")],
        "- Position: the blanked sentence is any sentence of the context, so 'the first sentence' scores "
        f"{100 * dev['first']:.1f} F1.\n"
        "- The question is a slice of a context sentence with a gap: matching its words on either side of the "
        "gap against the context locates the answer, which needs the alignment of those words, not their "
        "meaning.\n"
        "- v2.0: an unanswerable question comes from any other document of the same split, so a topic "
        "mismatch often, but not always, gives it away.\n"))
    return {s: (stats[s]["v1"], stats[s]["v2"]) for s in ("train", "dev")}
