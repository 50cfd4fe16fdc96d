"""SQuAD v1.1: fine-tune a pretrained BERT, score dev with the official metric.

  bert-jax finetune --config configs/squad/v1.py --workdir runs/squad/v1 \
      --config.init_from=path/to/bert-base-uncased \
      --config.data.train_file=squad/train-v1.1.json --config.data.dev_file=squad/dev-v1.1.json
  bert-jax evaluate --config configs/squad/v1.py --workdir runs/squad/v1 \
      --config.init_from=path/to/bert-base-uncased --config.data.dev_file=squad/dev-v1.1.json

``data.*_file`` are the official JSON files; ``--config.data.hub_name=squad`` reads train and
validation from the datasets hub instead (needs network). Dev results land in
runs/squad/v1/eval/dev_results.json, predictions in runs/squad/v1/eval/dev/{predictions,
nbest_predictions}.json (the official evaluation script reads predictions.json as it is).
A cased checkpoint's casing comes with it (``data.lowercase`` None: what init_from declares);
``--config.data.lowercase=True/False`` overrides it.

Recipe (``bert_jax.tasks.squad`` defaults, as the BERT paper): lr 3e-5, batch 32, 2 epochs,
seq 384, doc stride 128, question <= 64 tokens, answer <= 30 tokens, 10% warmup.
Expected with BERT-base (Devlin et al. 2019, Table 2): dev EM 80.8 / F1 88.5.

Offline check on the bundled cloze set (data/tasks/squad_cloze, see docs/squad.md):
``--config.data.train_file=data/tasks/squad_cloze/train-v1.1.json
--config.data.dev_file=data/tasks/squad_cloze/dev-v1.1.json``.
"""

from bert_jax.run_config import finetune_defaults


def get_config():
    c = finetune_defaults("squad")
    c.log_every_steps = 50
    c.checkpoint.every_steps = 1000
    return c
