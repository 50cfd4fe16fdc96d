"""SQuAD reading, windowing and post-processing on paragraphs built from the bundled corpus."""

import glob
import json
import os
import re

import numpy as np
import pytest

from bert_jax.metrics import squad_evaluate
from bert_jax.tasks.squad_data import (SquadFeatures, parse_squad, read_squad_file, squad_features, squad_from_hf,
                                       truncate_question)
from bert_jax.tasks.squad_postprocess import postprocess_squad, write_squad_predictions
from bert_jax.tasks.text_classification_data import read_documents

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = sorted(glob.glob(os.path.join(ROOT, "data", "corpus", "*.txt")))


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    tokenizers = pytest.importorskip("tokenizers")
    from bert_jax.tokenization import BertTokenizerFast
    root = tmp_path_factory.mktemp("squad_vocab")
    tok = tokenizers.BertWordPieceTokenizer(lowercase=True)
    tok.train(CORPUS, vocab_size=1000, min_frequency=2, show_progress=False)
    tok.save_model(str(root))
    return BertTokenizerFast(str(root / "vocab.txt"))


def build_squad(num_paragraphs=40, questions_per_paragraph=3, unanswerable_every=4, seed=0):
    """Official-layout data from real corpus documents.

    Paragraph: a document's sentences joined by one space, or by three spaces between
    some sentences. Answer: the middle words of one of its sentences (a real span).
    Question: a real sentence from another document. Documents with non-ASCII text
    come first so accents, dashes and other scripts are covered.
    """
    rng = np.random.default_rng(seed)
    docs = [d for path in CORPUS for d in read_documents(path) if 8 <= len(d) <= 60]
    non_ascii = [d for d in docs if any(ord(ch) > 127 for s in d for ch in s)]
    ascii_docs = [d for d in docs if d not in non_ascii]
    chosen = non_ascii[:num_paragraphs // 2]
    chosen += [ascii_docs[i] for i in rng.choice(len(ascii_docs), num_paragraphs - len(chosen), replace=False)]
    paragraphs, qnum = [], 0
    for p, doc in enumerate(chosen):
        pieces, sentence_spans, pos = [], [], 0
        for k, sentence in enumerate(doc):
            if k:
                sep = "   " if rng.random() < 0.3 else " "
                pieces.append(sep)
                pos += len(sep)
            sentence_spans.append((pos, sentence))
            pieces.append(sentence)
            pos += len(sentence)
        context = "".join(pieces)
        qas = []
        for _ in range(questions_per_paragraph):
            other = docs[int(rng.integers(len(docs)))]
            question = other[int(rng.integers(len(other)))]
            qid = f"q{qnum}"
            qnum += 1
            if unanswerable_every and qnum % unanswerable_every == 0:
                qas.append({"id": qid, "question": question, "answers": [], "is_impossible": True})
                continue
            offset, sentence = sentence_spans[int(rng.integers(len(sentence_spans)))]
            words = [m.span() for m in re.finditer(r"\S+", sentence)]
            a = int(rng.integers(0, max(1, len(words) // 2)))
            b = min(len(words), a + int(rng.integers(1, 7)))
            special = [(o, s) for o, s in sentence_spans if any(ord(ch) > 127 for ch in s)]
            if special and rng.random() < 0.7:
                # Answer around a word with non-ASCII characters.
                offset, sentence = special[int(rng.integers(len(special)))]
                words = [m.span() for m in re.finditer(r"\S+", sentence)]
                hit = next(i for i, (ws, we) in enumerate(words) if any(ord(ch) > 127 for ch in sentence[ws:we]))
                a = max(0, hit - int(rng.integers(0, 3)))
                b = min(len(words), hit + 1 + int(rng.integers(0, 3)))
            start, end = offset + words[a][0], offset + words[b - 1][1]
            answer = {"text": context[start:end], "answer_start": start}
            qas.append({"id": qid, "question": question, "answers": [answer], "is_impossible": False})
        paragraphs.append({"context": context, "qas": qas})
    return {"version": "v2.0", "data": [{"title": "corpus", "paragraphs": paragraphs}]}


@pytest.fixture(scope="module")
def squad():
    return parse_squad(build_squad(), source="corpus")


@pytest.mark.parametrize("max_seq_length,doc_stride", [(64, 16), (96, 32), (128, 64)])
def test_windowing_round_trip(tokenizer, squad, max_seq_length, doc_stride):
    examples = squad.examples
    assert any(any(ord(ch) > 127 for ch in e.context) for e in examples)
    assert any("   " in e.context for e in examples)
    assert sum(any(ord(ch) > 127 for ch in e.answers[0][0]) for e in examples if e.answers) >= 20
    features = squad_features(examples, tokenizer, max_seq_length=max_seq_length, doc_stride=doc_stride,
                              max_query_length=16)
    assert features.input_ids.shape == (len(features), max_seq_length) and features.input_ids.dtype == np.int32
    counts = np.bincount(features.example_index, minlength=len(examples))
    assert counts.min() >= 1 and counts.max() >= 3  # the contexts are longer than one window
    for e, example in enumerate(examples):
        windows = np.flatnonzero(features.example_index == e)
        assert all(features.example_ids[w] == example.qid for w in windows)
        # Each context token has its max context in exactly one window.
        last = windows[-1]
        num_tokens = features.window_start[last] + int((features.context_offsets[last, :, 0] >= 0).sum())
        assert int(features.max_context[windows].sum()) == num_tokens
        if example.is_impossible:
            assert not features.start_positions[windows].any() and not features.end_positions[windows].any()
            continue
        text, char_start = example.answers[0]
        hits = 0
        for w in windows:
            offsets = features.context_offsets[w]
            ctx = offsets[:, 0] >= 0
            inside = offsets[ctx, 0].min() <= char_start and offsets[ctx, 1].max() >= char_start + len(text)
            s, t = features.start_positions[w], features.end_positions[w]
            assert (s > 0) == inside
            if s > 0:
                assert ctx[s] and ctx[t] and t >= s
                assert example.context[offsets[s, 0]:offsets[t, 1]] == text
                hits += 1
        assert hits >= 1, example.qid


def test_question_truncated_to_max_query_length(tokenizer, squad):
    example = max(squad.examples, key=lambda e: len(e.question))
    full = tokenizer(example.question, add_special_tokens=False)["input_ids"]
    assert len(full) > 8
    cut = truncate_question(tokenizer, example.question, 8)
    assert tokenizer(cut, add_special_tokens=False)["input_ids"] == full[:8]
    features = squad_features([example], tokenizer, max_seq_length=64, doc_stride=16, max_query_length=8)
    assert len(features) > 1
    for types, mask in zip(features.token_type_ids, features.attention_mask):
        # [CLS] + 8 question tokens + [SEP] are type 0.
        assert int((types[:mask.sum()] == 0).sum()) == 10
    assert (features.input_ids[:, 1:9] == np.array(full[:8])).all()


def gold_logits(features, examples, rng):
    """Noise, with a clear peak at the gold start/end ([CLS] where the window has no answer)."""
    start = rng.normal(size=features.input_ids.shape)
    end = rng.normal(size=features.input_ids.shape)
    rows = np.arange(len(features))
    start[rows, features.start_positions] += 20.0
    end[rows, features.end_positions] += 20.0
    # A window without the answer of an answerable question must not drive the null score down.
    answerable = np.array([not examples[i].is_impossible for i in features.example_index])
    start[answerable, 0] += 25.0 * (features.start_positions[answerable] == 0)
    return start.astype(np.float32), end.astype(np.float32)


def reachable(features, examples):
    """Answerable questions whose gold start token has its max context in a window holding the
    whole answer; for the others BERT's rule lets no window propose the gold span."""
    ok = set()
    for w in np.flatnonzero(features.start_positions > 0):
        if features.max_context[w, features.start_positions[w]]:
            ok.add(examples[features.example_index[w]].qid)
    return ok


def test_gold_logits_give_full_scores(tokenizer, squad):
    features = squad_features(squad.examples, tokenizer, max_seq_length=96, doc_stride=32, max_query_length=16)
    start, end = gold_logits(features, squad.examples, np.random.default_rng(0))
    result = postprocess_squad(squad.examples, features, start, end, version_2=True, max_answer_length=64)
    ok = reachable(features, squad.examples)
    answerable = [e for e in squad.examples if not e.is_impossible]
    assert len(ok) >= 0.9 * len(answerable)
    for example in squad.examples:
        if example.is_impossible:
            assert result.predictions[example.qid] == ""
        elif example.qid in ok:
            assert result.predictions[example.qid] == example.answers[0][0]
        else:  # the best span starts inside the answer, in the start token's max-context window
            assert result.predictions[example.qid] in example.answers[0][0]
    scores = squad_evaluate(squad.dataset, result.predictions, version="2.0", na_probs=result.null_odds)
    assert scores["missing"] == 0 and scores["NoAns_exact"] == 100.0
    assert scores["HasAns_exact"] == pytest.approx(100.0 * len(ok) / len(answerable))


def test_postprocess_is_deterministic_and_order_free(tokenizer, squad, tmp_path):
    features = squad_features(squad.examples, tokenizer, max_seq_length=64, doc_stride=16, max_query_length=16)
    rng = np.random.default_rng(1)
    # Coarse logits so ties are common and tie-breaking is exercised.
    start = np.round(rng.normal(size=features.input_ids.shape), 1).astype(np.float32)
    end = np.round(rng.normal(size=features.input_ids.shape), 1).astype(np.float32)
    kwargs = dict(version_2=True, n_best_size=5, max_answer_length=10)
    first = postprocess_squad(squad.examples, features, start, end, **kwargs)
    # A threshold at the median null odds, so both "" and span answers are predicted.
    kwargs["null_score_diff_threshold"] = float(np.median(list(first.null_odds.values())))
    ref = postprocess_squad(squad.examples, features, start, end, **kwargs)
    num_empty = sum(p == "" for p in ref.predictions.values())
    assert 0 < num_empty < len(ref.predictions)
    again = postprocess_squad(squad.examples, features, start.copy(), end.copy(), **kwargs)
    assert ref == again
    perm = rng.permutation(len(features))
    shuffled = postprocess_squad(squad.examples, features.select(perm), start[perm], end[perm], **kwargs)
    assert shuffled == ref
    # Split into uneven chunks, each padded to 8 rows with junk (what a sharded eval would return).
    chunks, parts = np.array_split(perm, 7), []
    for chunk in chunks:
        pad = (-len(chunk)) % 8
        part = features.select(np.concatenate([chunk, chunk[:1].repeat(pad)]))
        part.example_index[len(chunk):] = -1
        s = np.concatenate([start[chunk], rng.normal(size=(pad, start.shape[1]))])
        e = np.concatenate([end[chunk], rng.normal(size=(pad, end.shape[1]))])
        parts.append((part, s, e))
    merged = SquadFeatures(**{k: np.concatenate([getattr(p[0], k) for p in parts]) for k in SquadFeatures._ARRAYS},
                           example_ids=[i for p in parts for i in p[0].example_ids])
    chunked = postprocess_squad(squad.examples, merged, np.concatenate([p[1] for p in parts]),
                                np.concatenate([p[2] for p in parts]), **kwargs)
    assert chunked == ref
    # n-best lists: probabilities sum to 1, scores descending, spans within length, texts from the context.
    contexts = {e.qid: e.context for e in squad.examples}
    for qid, entries in ref.nbest.items():
        assert sum(e["probability"] for e in entries) == pytest.approx(1.0)
        assert any(e["text"] == "" for e in entries)
        totals = [e["start_logit"] + e["end_logit"] for e in entries if e["text"]]
        assert totals == sorted(totals, reverse=True)
        assert all(e["text"] in contexts[qid] for e in entries)
        assert (ref.predictions[qid] == "") == (ref.null_odds[qid] > kwargs["null_score_diff_threshold"])
    paths = write_squad_predictions(str(tmp_path), ref)
    assert sorted(os.listdir(tmp_path)) == ["nbest_predictions.json", "null_odds.json", "predictions.json"]
    with open(paths["predictions"], encoding="utf-8") as f:
        assert json.load(f) == ref.predictions


def test_v1_predictions_pick_the_top_span(tokenizer, squad):
    answerable = [e for e in squad.examples if not e.is_impossible]
    features = squad_features(answerable, tokenizer, max_seq_length=128, doc_stride=64, max_query_length=16)
    start, end = gold_logits(features, answerable, np.random.default_rng(3))
    result = postprocess_squad(answerable, features, start, end, max_answer_length=64)
    assert result.null_odds is None
    ok = reachable(features, answerable)
    assert len(ok) >= 0.9 * len(answerable)
    assert all(result.predictions[e.qid] == e.answers[0][0] for e in answerable if e.qid in ok)


def test_read_errors_and_skips(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"data": [\n  {"title": "x",\n   "paragraphs": [}\n]}', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.json: not valid JSON at line 3"):
        read_squad_file(str(bad))
    data = build_squad(num_paragraphs=2, questions_per_paragraph=2, unanswerable_every=0)
    qa = data["data"][0]["paragraphs"][0]["qas"][1]
    qa["answers"][0]["answer_start"] += 1
    path = tmp_path / "mismatch.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match=rf"mismatch\.json: question '{qa['id']}': answer .* is not at answer_start"):
        read_squad_file(str(path))
    out = read_squad_file(str(path), allow_skips=True)
    assert out.skipped["answer_mismatch"] == 1 and len(out.examples) == 3
    assert qa["id"] not in {e.qid for e in out.examples}
    data["data"][0]["paragraphs"][1]["context"] = "  "
    out = parse_squad(data, allow_skips=True)
    assert out.skipped == {"empty_context": 2, "answer_mismatch": 1, "empty_answer": 0, "impossible_with_answer": 0}
    with pytest.raises(ValueError, match=r"data\[0\]\.paragraphs\[0\]\.qas\[0\] has no 'question'"):
        parse_squad({"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "a", "answers": []}]}]}]})


def test_question_too_long_for_window(tokenizer, squad):
    example = max(squad.examples, key=lambda e: len(e.question))
    with pytest.raises(ValueError, match=rf"question '{example.qid}' takes \d+ tokens.*doc_stride=8"):
        squad_features([example], tokenizer, max_seq_length=24, doc_stride=8, max_query_length=64)


def test_logits_shape_error(tokenizer, squad):
    features = squad_features(squad.examples[:2], tokenizer, max_seq_length=64, doc_stride=16, max_query_length=16)
    with pytest.raises(ValueError, match=r"one row per feature window"):
        postprocess_squad(squad.examples[:2], features, np.zeros((1, 64)), np.zeros((1, 64)))


def test_hf_rows_convert_to_the_same_examples(squad):
    datasets = pytest.importorskip("datasets")
    rows = [{"id": e.qid, "title": e.title, "context": e.context, "question": e.question,
             "answers": {"text": [t for t, _ in e.answers], "answer_start": [s for _, s in e.answers]}}
            for e in squad.examples]
    converted = parse_squad(squad_from_hf(datasets.Dataset.from_list(rows)))
    assert converted.examples == squad.examples
