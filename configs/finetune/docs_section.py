"""docs_section: which Python documentation part (tutorial, library, reference,
whatsnew) a sentence of the bundled corpus comes from. Fine-tunes the tiny
pretraining recipe (``configs/pretrain/tiny.py``; same model shape) offline.

  bert-jax pretrain --config configs/pretrain/tiny.py --workdir /tmp/tiny \
      --config.data.train_dir=/tmp/shards
  bert-jax finetune --config configs/finetune/docs_section.py --workdir /tmp/docs_section \
      --config.init_from=/tmp/tiny

The vocabulary is the one the pretraining shards were built with (found through
the pretraining workdir). Dev holds 15% of the *documents* of each part;
every label is capped at the smallest label's count (1,275 train / 122 dev
sentences each), so the majority-class baseline is 0.25. Expected: dev accuracy
~0.54 after 300 steps (about a minute on 2 CPU cores) from a 300-step tiny
pretraining run, written to /tmp/docs_section/eval/dev_results.json. A random
encoder (--config.init_from=scratch --config.data.vocab_file=...) reaches about
the same: such short pretraining does not yet help this mostly lexical task
(docs/benchmarks/finetune.md).
"""

import pathlib

from bert_jax.run_config import finetune_defaults

CORPUS = pathlib.Path(__file__).resolve().parents[2] / "data" / "corpus"


def get_config():
    c = finetune_defaults("docs_section")
    c.task = "docs_section"
    c.data.corpus_dir = str(CORPUS)
    c.data.labels = ("tutorial", "library", "reference", "whatsnew")
    c.data.max_seq_length = 64
    c.data.dev_percent = 15
    c.data.balance = True  # every label capped at the smallest one's count
    # The tiny pretraining shape (configs/pretrain/tiny.py); init_from must match it.
    c.model.hidden_size = 128
    c.model.num_hidden_layers = 2
    c.model.num_attention_heads = 4
    c.model.intermediate_size = 512
    c.model.max_position_embeddings = 128
    c.model.type_vocab_size = 2
    c.model_dtype = "float32"
    c.global_batch_size = 32
    c.optim.learning_rate = 1e-3
    c.optim.total_steps = 300
    c.checkpoint.every_steps = 100
    c.log_every_steps = 20
    c.eval_every_steps = 100
    return c
