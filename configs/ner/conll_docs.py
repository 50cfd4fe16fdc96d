"""conll_docs: code identifiers, keyword constants, versions and numbers in the prose of the
bundled corpus (``data/tasks/conll_docs``, CoNLL-2003 layout, IOB2). Offline, on the tiny
pretraining recipe (``configs/pretrain/tiny.py``; same model shape).

  bert-jax pretrain --config configs/pretrain/tiny.py --workdir /tmp/tiny \
      --config.data.train_dir=/tmp/shards
  bert-jax finetune --config configs/ner/conll_docs.py --workdir /tmp/conll_docs \
      --config.init_from=/tmp/tiny

Dev baselines (data/tasks/conll_docs/README.md): all ``O`` 0.0 entity F1; the most frequent
training tag of each lower-cased token 0.429 (reported as ``baseline_lookup_f1``).
Expected: not yet measured as shipped (hidden 128 from the tiny pretraining); a hidden-32 model
trained from scratch for 200 steps reaches dev entity F1 0.58-0.60 over three seeds
(tests/tasks/test_ner_task.py, docs/ner_swag.md), so this recipe should clear 0.429 too.
"""

import pathlib

from bert_jax.run_config import finetune_defaults

DATA = pathlib.Path(__file__).resolve().parents[2] / "data" / "tasks" / "conll_docs"
LABELS = ("O", "B-CODE", "B-KW", "B-NUM", "B-VER", "I-VER")  # the tags of train.txt (README: Labels)


def get_config():
    c = finetune_defaults("conll2003")
    c.data.data_dir = str(DATA)
    c.data.labels = LABELS
    c.data.max_seq_length = 64  # sentences of more than 62 pieces become windows
    c.data.doc_stride = 16
    # The tiny pretraining shape (configs/pretrain/tiny.py); init_from must match it.
    c.model.hidden_size = 128
    c.model.num_hidden_layers = 2
    c.model.num_attention_heads = 4
    c.model.intermediate_size = 512
    c.model.max_position_embeddings = 128
    c.model_dtype = "float32"
    c.global_batch_size = 32
    c.optim.learning_rate = 1e-3
    c.optim.total_steps = 300
    c.checkpoint.every_steps = 100
    c.log_every_steps = 20
    c.eval_every_steps = 100
    return c
