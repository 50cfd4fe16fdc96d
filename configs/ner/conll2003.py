"""CoNLL-2003 NER: fine-tune a pretrained BERT, then score dev and write test predictions.

  bert-jax finetune --config configs/ner/conll2003.py --workdir runs/ner/conll2003 \
      --config.init_from=path/to/bert-base-cased --config.data.data_dir=conll2003
  bert-jax evaluate --config configs/ner/conll2003.py --workdir runs/ner/conll2003 \
      --config.init_from=path/to/bert-base-cased --config.data.data_dir=conll2003 --split test

``data.data_dir`` holds train.txt, dev.txt (or valid.txt) and test.txt in the CoNLL-2003 layout
(``token POS chunk NER``, IOB2 tags); ``--config.data.hub_name=conll2003`` loads it from the
datasets hub instead (needs network). Files tagged IOB1 (the original distribution) score the same
in the default (conlleval) mode; for ``data.mode=strict`` set ``data.scheme`` to match.
Predictions land in <workdir>/eval/<split>/predictions.txt (``token POS chunk gold predicted``).

Recipe (BERT paper, Hugging Face run_ner): lr 5e-5, batch 32, 3 epochs, seq 128, first word
piece labelled, 10% warmup. Expected with bert-base-cased: dev entity F1 96.4 (BERT paper,
Table 3, BERT-base fine-tuning approach).
"""

from bert_jax.run_config import finetune_defaults


def get_config():
    c = finetune_defaults("conll2003")
    # The model shape comes from init_from (model.* = -1); dropout 0.1 as in BERT.
    c.log_every_steps = 50
    c.checkpoint.every_steps = 1000
    return c
