"""Tiny BERT (hidden 128, 2 layers) on the bundled corpus: minutes on 2 CPU cores.

  bert-jax tokenizer train --input data/corpus/*.txt --vocab-size 2000 --output /tmp/vocab
  bert-jax data build --input data/corpus/*.txt --vocab /tmp/vocab/vocab.txt \
      --output /tmp/shards --max-seq-length 64 --max-predictions-per-seq 10
  bert-jax pretrain --config configs/pretrain/tiny.py --workdir /tmp/tiny \
      --config.data.train_dir=/tmp/shards

Expected (1,000-token vocabulary): MLM accuracy rises from chance (0.001) past the
best context-free guess (always the most frequent token, 0.034) to ~0.10 in 300
steps (about a minute on 2 CPU cores); the loss falls from ~ln(vocab) + ln 2.
"""

from bert_jax.run_config import pretrain_defaults


def get_config():
    c = pretrain_defaults()
    c.model.vocab_size = -1  # from the shards' manifest
    c.model.hidden_size = 128
    c.model.num_hidden_layers = 2
    c.model.num_attention_heads = 4
    c.model.intermediate_size = 512
    c.model.max_position_embeddings = 128
    c.model_dtype = "float32"
    c.data.max_seq_length = 64
    c.data.max_predictions_per_seq = 10
    c.global_batch_size = 32
    c.optim.name = "adamw"
    c.optim.learning_rate = 2e-3
    c.optim.total_steps = 300
    c.optim.warmup_steps = 30
    c.checkpoint.every_steps = 100
    c.log_every_steps = 20
    c.eval_every_steps = 100
    c.eval_steps = 5
    return c
