"""BERT-large phase 2 (seq 512) with LAMB: global batch 32,768, lr 4e-3, 1,563
steps, 12.8% warmup, polynomial (power 0.5) decay; initialised from phase 1.

  bash scripts/launch_tpu_pod.sh TPU_NAME ZONE configs/pretrain/large_phase2.py /mnt/bucket/large512 \
      --config.data.train_dir=/mnt/bucket/shards512 --config.init_from=/mnt/bucket/large

Expected: MLM accuracy ~0.73; fine-tunes to ~90.5 SQuAD v1.1 F1.
"""

from configs.pretrain import large_phase1


def get_config():
    """Phase 1's model and optimiser recipe, with phase 2's length, batch and schedule."""
    c = large_phase1.get_config()
    c.data.max_seq_length = 512
    c.data.max_predictions_per_seq = 80
    c.global_batch_size = 32_768
    c.num_microbatches = 16
    c.optim.learning_rate = 4e-3
    c.optim.total_steps = 1_563
    c.optim.warmup_fraction = 0.128
    c.checkpoint.every_steps = 100
    c.checkpoint.keep_period = 500
    return c
