"""BERT-base phase 1 (seq 128), the original recipe: Adam(W) lr 1e-4, batch 256,
900k steps, 10k warmup, linear decay, weight decay 0.01.

  bert-jax pretrain --config configs/pretrain/base_phase1.py --workdir /mnt/bucket/base \
      --config.data.train_dir=SHARDS_128 --config.mesh_shape='(-1,1,1)'

Expected (Wikipedia + BooksCorpus): MLM accuracy ~0.65-0.70 and NSP accuracy
~0.97 at the end of phase 1; then run base_phase2.py with init from this run.
"""

from bert_jax.run_config import pretrain_defaults


def get_config():
    c = pretrain_defaults()
    c.data.max_seq_length = 128
    c.data.max_predictions_per_seq = 20
    c.global_batch_size = 256
    c.optim.name = "adamw"
    c.optim.learning_rate = 1e-4
    c.optim.total_steps = 900_000
    c.optim.warmup_steps = 10_000
    c.checkpoint.every_steps = 5000
    c.checkpoint.keep_period = 100_000
    return c
