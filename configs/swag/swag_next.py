"""swag_next: which of four endings continues a sentence of the bundled corpus
(``data/tasks/swag_next``, SWAG layout; 700 train / 150 dev / 150 test questions). Offline, on
the tiny pretraining recipe (``configs/pretrain/tiny.py``; same model shape).

  bert-jax pretrain --config configs/pretrain/tiny.py --workdir /tmp/tiny \
      --config.data.train_dir=/tmp/shards
  bert-jax finetune --config configs/swag/swag_next.py --workdir /tmp/swag_next \
      --config.init_from=/tmp/tiny
  bert-jax predict --config configs/swag/swag_next.py --workdir /tmp/swag_next \
      --config.init_from=/tmp/tiny --split test

test.csv has no labels (as SWAG's); they are in data/tasks/swag_next/test_labels.tsv for scoring
<workdir>/eval/test/predictions.csv offline. Dev baselines (README): chance 0.25, longest
ending 0.267, largest word overlap with sent1 0.560. Expected from the quickstart's pretrained
encoder (bert-jax quickstart, then --config.init_from=runs/quickstart/pretrain) with
--config.optim.learning_rate=5e-4 --config.optim.total_steps=300: dev accuracy ~0.38 (seed 0);
from a 300-step tiny pretraining run it stays at chance (0.22-0.29; docs/ner_swag.md).
"""

import pathlib

from bert_jax.run_config import finetune_defaults

DATA = pathlib.Path(__file__).resolve().parents[2] / "data" / "tasks" / "swag_next"


def get_config():
    c = finetune_defaults("swag")
    c.data.data_dir = str(DATA)
    c.data.max_seq_length = 64  # the tiny recipe's length; sent1 + sent2 + ending fit in it
    # The tiny pretraining shape (configs/pretrain/tiny.py); init_from must match it.
    c.model.hidden_size = 128
    c.model.num_hidden_layers = 2
    c.model.num_attention_heads = 4
    c.model.intermediate_size = 512
    c.model.max_position_embeddings = 128
    c.model_dtype = "float32"
    c.global_batch_size = 16
    c.optim.learning_rate = 1e-3
    c.optim.total_steps = 200
    c.checkpoint.every_steps = 100
    c.log_every_steps = 20
    c.eval_every_steps = 100
    return c
