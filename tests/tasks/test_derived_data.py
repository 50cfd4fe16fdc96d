"""The bundled task sets under data/tasks: exactly what scripts/derive_task_data.py makes, readable
through the readers in the layouts they mimic, and true to their derivation rules on every example."""

import collections
import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest

from bert_jax.tasks.conll_data import read_conll
from bert_jax.tasks.glue_data import read_glue
from bert_jax.tasks.swag_data import read_swag

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TASKS = os.path.join(ROOT, "data", "tasks")
SETS = ("glue_acceptability", "glue_nextsent", "glue_similarity", "squad_cloze", "conll_docs", "swag_next",
        "glue_section")


def load_script():
    spec = importlib.util.spec_from_file_location("derive_task_data", os.path.join(ROOT, "scripts",
                                                                                   "derive_task_data.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def corpus():
    """Every corpus sentence, and every pair of consecutive sentences of a document."""
    script = load_script()
    docs = script.read_corpus(os.path.join(ROOT, "data", "corpus"))
    sentences = {s for d in docs for s in d.sentences}
    pairs = {(a, b) for d in docs for a, b in zip(d.sentences, d.sentences[1:])}
    train = {s for d in docs if script.split_of(d) == "train" for s in d.sentences}
    return sentences, pairs, train


@pytest.mark.slow  # ~16 s: rebuilds every derived set
def test_committed_sets_are_what_the_script_makes(tmp_path):
    load_script().derive(os.path.join(ROOT, "data", "corpus"), str(tmp_path))
    for name in SETS:
        made, committed = sorted(os.listdir(tmp_path / name)), sorted(os.listdir(os.path.join(TASKS, name)))
        assert made == committed, name
        for file in made:
            with open(tmp_path / name / file, "rb") as a, open(os.path.join(TASKS, name, file), "rb") as b:
                assert a.read() == b.read(), f"{name}/{file} differs: rerun python scripts/derive_task_data.py"
    total = sum(os.path.getsize(os.path.join(TASKS, n, f)) for n in SETS for f in os.listdir(os.path.join(TASKS, n)))
    assert total < 5.5e6  # the bundled task sets stay small (4.9 MB; the SQuAD-layout train file is 1.5 MB of it)


def test_acceptability_reads_as_cola(corpus):
    sentences, _, train = corpus
    path = os.path.join(TASKS, "glue_acceptability")
    data = {s: read_glue("cola", path, s) for s in ("train", "dev", "test")}
    assert [len(v) for v in data.values()] == [2000, 300, 300]
    for split in ("train", "dev"):
        assert collections.Counter(e.label for e in data[split]) == {"0": len(data[split]) // 2,
                                                                     "1": len(data[split]) // 2}
        for e in data[split]:
            # Label 1 is a corpus sentence verbatim; label 0 is not (its word order was changed).
            assert (e.text_a in sentences) == (e.label == "1"), e
            assert split == "train" or e.text_a not in train
    labels = [line.split("\t")[1] for line in open(os.path.join(path, "test_labels.tsv")).read().splitlines()[1:]]
    assert [(e.text_a in sentences) for e in data["test"]] == [lab == "1" for lab in labels]


def test_section_reads_as_sst2_and_each_sentence_comes_from_its_labelled_file(corpus):
    _, _, train = corpus
    script = load_script()
    docs = script.read_corpus(os.path.join(ROOT, "data", "corpus"))
    file_of = collections.defaultdict(set)
    for d in docs:
        for s in d.sentences:
            file_of[s].add(d.file)
    path = os.path.join(TASKS, "glue_section")
    data = {s: read_glue("sst2", path, s) for s in ("train", "dev", "test")}
    assert [len(v) for v in data.values()] == [1800, 300, 300]
    labels = [line.split("\t")[1] for line in open(os.path.join(path, "test_labels.tsv")).read().splitlines()[1:]]
    data_labels = {"train": [e.label for e in data["train"]], "dev": [e.label for e in data["dev"]], "test": labels}
    for split, examples in data.items():
        assert collections.Counter(data_labels[split]) == {"0": len(examples) // 2, "1": len(examples) // 2}
        texts = [e.text_a for e in examples]
        assert len(set(texts)) == len(texts)
        for text, label in zip(texts, data_labels[split]):
            assert {"1": "howto", "0": "library"}[label] in file_of[text], text
            assert split == "train" or text not in train


def test_nextsent_reads_as_rte(corpus):
    _, pairs, train = corpus
    path = os.path.join(TASKS, "glue_nextsent")
    for split, n in (("train", 1600), ("dev", 250), ("test", 250)):
        examples = read_glue("rte", path, split)
        assert len(examples) == n
        if split == "test":
            assert {e.label for e in examples} == {None}
            continue
        for e in examples:
            assert ((e.text_a, e.text_b) in pairs) == (e.label == "entailment"), e
            assert split == "train" or (e.text_a not in train and e.text_b not in train)
        assert sum(e.label == "entailment" for e in examples) == n // 2


def test_similarity_reads_as_stsb(corpus):
    sentences, _, train = corpus
    path = os.path.join(TASKS, "glue_similarity")
    for split, n in (("train", 1200), ("dev", 240), ("test", 240)):
        examples = read_glue("stsb", path, split)
        assert len(examples) == n
        for e in examples:
            assert e.text_a in sentences and (split == "train" or e.text_a not in train)
            a, b = e.text_a.split(), e.text_b.split()
            assert len(a) == len(b)
            if e.label is not None:  # the score is the share of sentence1's words kept in place
                kept = sum(x.lower() == y.lower() for x, y in zip(a, b))
                assert abs(e.label - 5 * kept / len(a)) < 1e-3, e


def test_squad_answers_sit_at_their_offsets():
    for split in ("train", "dev"):
        v1 = json.load(open(os.path.join(TASKS, "squad_cloze", f"{split}-v1.1.json")))
        v2 = json.load(open(os.path.join(TASKS, "squad_cloze", f"{split}-v2.0.json")))
        assert v1["version"] == "1.1" and v2["version"] == "v2.0"
        answerable, impossible, long_contexts = set(), 0, 0
        for article in v1["data"]:
            for para in article["paragraphs"]:
                context = para["context"]
                long_contexts += len(context.split()) > 48  # several 64-token windows
                for q in para["qas"]:
                    (answer,) = q["answers"]
                    start, text = answer["answer_start"], answer["text"]
                    assert context[start:start + len(text)] == text and 1 <= len(text.split()) <= 3
                    assert q["question"].count("____") == 1
                    assert q["question"].replace("____", text) in context
                    answerable.add(q["id"])
        for article in v2["data"]:
            context = article["paragraphs"][0]["context"]
            for q in article["paragraphs"][0]["qas"]:
                if q["is_impossible"]:
                    impossible += 1
                    before, after = q["question"].split("____")
                    assert q["answers"] == [] and not re.search(re.escape(before) + ".+?" + re.escape(after), context)
                else:
                    assert q["id"] in answerable
        assert impossible == 2 * len(v2["data"]) and long_contexts >= 10
        # v2.0 asks the answerable questions of v1.1's first contexts (all of dev's), and only those
        v1_first = v1["data"][:len(v2["data"])]
        assert [a["paragraphs"][0]["context"] for a in v2["data"]] == [a["paragraphs"][0]["context"] for a in v1_first]
        assert sum(len(a["paragraphs"][0]["qas"]) for a in v2["data"]) == \
            sum(len(a["paragraphs"][0]["qas"]) for a in v1_first) + impossible
        assert split == "train" or len(v2["data"]) == len(v1["data"])


def test_conll_and_swag_read_through_their_readers(corpus):
    _, pairs, train = corpus
    labels = ("O", "B-CODE", "B-KW", "B-NUM", "B-VER", "I-VER")
    for split in ("train", "dev", "test"):
        sentences = read_conll(os.path.join(TASKS, "conll_docs", f"{split}.txt"), labels)
        found = {lab for s in sentences for lab in s.labels}
        assert found == set(labels), (split, found)  # every type in every split
    for file, n in (("train.csv", 700), ("val.csv", 150), ("test.csv", 150)):
        examples = read_swag(os.path.join(TASKS, "swag_next", file))
        assert len(examples) == n and all(len(e.endings) == 4 for e in examples)
        if file == "test.csv":
            continue
        counts = collections.Counter(e.label for e in examples)
        assert sorted(counts) == [0, 1, 2, 3] and max(counts.values()) - min(counts.values()) <= 1
        for e in examples:
            assert (e.context, f"{e.start} {e.endings[e.label]}") in pairs
            assert sum((e.context, f"{e.start} {x}") in pairs for x in e.endings) == 1
            assert file == "train.csv" or e.context not in train


def test_readers_do_not_import_jax():
    """Each reader loaded on its own file (bert_jax.tasks/__init__ itself imports the training tasks)."""
    for name in ("glue_data", "conll_data", "swag_data"):
        path = os.path.join(ROOT, "bert_jax", "tasks", f"{name}.py")
        code = ("import importlib.util, sys; "
                f"spec = importlib.util.spec_from_file_location({name!r}, {path!r}); "
                "m = importlib.util.module_from_spec(spec); sys.modules[spec.name] = m; spec.loader.exec_module(m); "
                "assert 'jax' not in sys.modules, 'jax imported'")
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT})
