"""Fixtures of the training tests: a vocabulary and shards built once per session
from the bundled corpus (pretraining and fine-tuning tests both start from them)."""

import os

import pytest

import train_helpers as helpers


@pytest.fixture(scope="session")
def corpus_shards(tmp_path_factory):
    """``{"vocab", "shards"}``: a 1,000-token WordPiece vocabulary and 64-token shards
    (10 predictions) built from the whole corpus."""
    pytest.importorskip("tokenizers")
    root = tmp_path_factory.mktemp("corpus")
    vocab = helpers.train_vocab(helpers.CORPUS, str(root))
    return {"vocab": vocab, "shards": helpers.build_shards(helpers.CORPUS, vocab, str(root / "shards"))}


@pytest.fixture(scope="session")
def quickstart_pretrained(tmp_path_factory):
    """``{"workdir", "train_dir", "eval_dir", "result", "config"}``: the quickstart's data and
    pretraining recipe (configs/pretrain/quickstart.py: the tiny shape, 4,000 steps, no dropout) --
    a 2,000-token vocabulary and shards (dupe factor 5) from every corpus file but faq.txt --
    evaluated once at the end over faq.txt (dupe factor 5 here, ~2,500 pairs, for a tighter NSP
    figure than the quickstart's one pass). About 6 minutes on 2 CPU cores, run once per session
    for the slow tests that need a pretrained encoder."""
    pytest.importorskip("tokenizers")
    from bert_jax import launch
    from bert_jax.vocab import train_wordpiece
    from data_pipeline.build import BuildOptions, build
    root = tmp_path_factory.mktemp("quickstart_pretrained")
    train_files = [f for f in helpers.CORPUS if os.path.basename(f) != "faq.txt"]
    held_files = [f for f in helpers.CORPUS if os.path.basename(f) == "faq.txt"]
    train_wordpiece(train_files, 2000, lowercase=True, output_dir=root / "vocab")
    common = dict(vocab_file=str(root / "vocab" / "vocab.txt"), max_seq_length=helpers.SEQ,
                  max_predictions_per_seq=helpers.PRED, seed=0, dupe_factor=5)
    train_dir, eval_dir = str(root / "train"), str(root / "eval")
    build(BuildOptions(inputs=tuple(train_files), num_shards=4, **common), train_dir)
    build(BuildOptions(inputs=tuple(held_files), num_shards=1, **common), eval_dir)
    config = launch.load_config(helpers.QUICKSTART, [
        f"data.train_dir={train_dir!r}", f"data.eval_dir={eval_dir!r}", "eval_at_start=False",
        "log_every_steps=500", "checkpoint.every_steps=0", "eval_steps=0"])
    workdir = str(root / "pretrain")
    result = launch.run_pretraining(config, workdir)
    return {"workdir": workdir, "train_dir": train_dir, "eval_dir": eval_dir, "result": result, "config": config}
