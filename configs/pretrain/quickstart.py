"""The quickstart recipe: a tiny BERT that visibly learns on the bundled corpus in minutes on 2 CPU cores.

  bert-jax quickstart --workdir runs/quickstart        # builds vocab + shards, then runs this config

Shape and budget were chosen by measurement (docs/benchmarks.md, "quickstart recipe"):
hidden 128, 2 layers, 4 heads, seq 64, 10 predictions per sequence, batch 32, AdamW lr 2e-3
with 10% warmup and linear decay. Evaluated on the held-out documentation part before and after
(one pass over its shards).
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
    c.optim.total_steps = 1500
    c.optim.warmup_steps = -1
    c.optim.warmup_fraction = 0.1
    c.checkpoint.every_steps = 500
    c.log_every_steps = 50
    c.eval_every_steps = 0  # evaluated at the start and at the end
    c.eval_at_start = True
    c.eval_steps = 0
    return c
