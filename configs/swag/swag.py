"""SWAG: fine-tune a pretrained BERT on multiple choice, then score dev and write test predictions.

  bert-jax finetune --config configs/swag/swag.py --workdir runs/swag \
      --config.init_from=path/to/bert-base-uncased --config.data.data_dir=swagaf/data
  bert-jax predict --config configs/swag/swag.py --workdir runs/swag \
      --config.init_from=path/to/bert-base-uncased --config.data.data_dir=swagaf/data --split test

``data.data_dir`` holds train.csv, val.csv (the dev split) and test.csv as released with SWAG
(``sent1, sent2, ending0..ending3, label``); ``--config.data.hub_name=swag`` loads it from the
datasets hub instead (needs network). Predictions land in <workdir>/eval/<split>/predictions.csv
(``index,prediction,prob_0..prob_3[,label]``).

Recipe (Hugging Face run_swag; the BERT paper used lr 2e-5, batch 16, 3 epochs): lr 2e-5,
batch 16, 3 epochs, seq 128, 10% warmup. Expected with bert-base: dev accuracy 81.6 (BERT paper,
Table 4).
"""

from bert_jax.run_config import finetune_defaults


def get_config():
    c = finetune_defaults("swag")
    # The model shape comes from init_from (model.* = -1); dropout 0.1 as in BERT.
    c.log_every_steps = 50
    c.checkpoint.every_steps = 1000
    return c
