"""BERT-base phase 2 (seq 512): the last 100k steps of the original recipe on long
sequences, initialised from phase 1.

  bert-jax pretrain --config configs/pretrain/base_phase2.py --workdir /mnt/bucket/base512 \
      --config.data.train_dir=SHARDS_512 --config.init_from=/mnt/bucket/base

Expected: MLM accuracy ~0.70-0.72, NSP ~0.98; fine-tunes to ~84 MNLI-m.
"""

from bert_jax.run_config import pretrain_defaults


def get_config():
    c = pretrain_defaults()
    c.model.max_position_embeddings = 512
    c.data.max_seq_length = 512
    c.data.max_predictions_per_seq = 80
    c.global_batch_size = 256
    c.optim.name = "adamw"
    c.optim.learning_rate = 1e-4
    c.optim.total_steps = 100_000
    c.optim.warmup_steps = 10_000
    c.checkpoint.every_steps = 5000
    c.checkpoint.keep_period = 50_000
    return c
