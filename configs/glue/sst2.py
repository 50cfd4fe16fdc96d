"""GLUE SST-2: fine-tune a pretrained BERT, then score dev and write the test submission.

  bert-jax finetune --config configs/glue/sst2.py --workdir runs/glue/sst2 \
      --config.init_from=path/to/bert-base-cased --config.data.data_dir=glue_data/SST-2
  bert-jax evaluate --config configs/glue/sst2.py --workdir runs/glue/sst2 \
      --config.init_from=path/to/bert-base-cased --config.data.data_dir=glue_data/SST-2 --split test

``data.data_dir`` is the task's folder in the GLUE distribution layout (train.tsv, dev.tsv,
test.tsv); ``--config.data.hub_name=glue`` loads it from the datasets hub instead (needs network).
A cased checkpoint's casing comes with it (``data.lowercase`` None: what init_from declares);
``--config.data.lowercase=True/False`` overrides it. Several seeds in one command:
``--config.seeds=0,1,2,3,4`` (runs under <workdir>/seed_<s>, mean and std in eval/summary.json).

Recipe: lr 2e-5, batch 32, 3 epochs, seq 128, 10% warmup (``bert_jax.tasks.glue`` defaults).
Expected with bert-base-cased (Hugging Face run_glue's published dev figure): accuracy 92.3.
"""

from bert_jax.run_config import finetune_defaults


def get_config():
    c = finetune_defaults("sst2")
    # The model shape comes from init_from (model.* = -1); dropout 0.1 as in BERT.
    c.log_every_steps = 50
    c.checkpoint.every_steps = 1000
    return c
