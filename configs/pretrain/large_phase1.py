"""BERT-large phase 1 (seq 128) with LAMB at large batch (You et al. 2019):
global batch 65,536, lr 6e-3, 7,038 steps, 28.43% warmup, polynomial (power 0.5)
decay, weight decay 0.01; 8 gradient-accumulation microbatches; bf16 compute,
FSDP over the pod.

  bash scripts/launch_tpu_pod.sh TPU_NAME ZONE configs/pretrain/large_phase1.py /mnt/bucket/large \
      --config.data.train_dir=/mnt/bucket/shards128

Expected: MLM accuracy ~0.70 at the end of phase 1 (loss ~1.5); ~1.2 days on a v3-1024-class pod.
"""

from bert_jax.run_config import pretrain_defaults


def get_config():
    c = pretrain_defaults()
    c.model.hidden_size = 1024
    c.model.num_hidden_layers = 24
    c.model.num_attention_heads = 16
    c.model.intermediate_size = 4096
    c.data.max_seq_length = 128
    c.data.max_predictions_per_seq = 20
    c.global_batch_size = 65_536
    c.num_microbatches = 8
    c.optim.name = "lamb"
    c.optim.learning_rate = 6e-3
    c.optim.total_steps = 7_038
    c.optim.warmup_steps = -1
    c.optim.warmup_fraction = 0.2843
    c.optim.schedule = "polynomial"
    c.optim.decay_power = 0.5
    c.optim.weight_decay = 0.01
    c.mesh_shape = (1, -1, 1)
    c.remat_policy = "dots_with_no_batch_dims_saveable"
    c.scan_layers = True
    c.checkpoint.every_steps = 200
    c.checkpoint.keep_period = 1000
    c.log_every_steps = 10
    return c
