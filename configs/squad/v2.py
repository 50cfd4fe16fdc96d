"""SQuAD v2.0 (with unanswerable questions): fine-tune a pretrained BERT, score dev, pick the
no-answer threshold on dev, and predict with it.

  bert-jax finetune --config configs/squad/v2.py --workdir runs/squad/v2 \
      --config.init_from=path/to/bert-base-uncased \
      --config.data.train_file=squad/train-v2.0.json --config.data.dev_file=squad/dev-v2.0.json
  bert-jax predict --config configs/squad/v2.py --workdir runs/squad/v2 \
      --config.init_from=path/to/bert-base-uncased --config.data.test_file=questions.json \
      --config.data.null_threshold_file=runs/squad/v2/eval/dev/best_null_threshold.json

The dev evaluation (at the end of fine-tuning, or ``bert-jax evaluate``) reports EM / F1 at
``data.null_score_diff_threshold`` (0.0) and at the best threshold (``best_f1``,
``best_f1_thresh``), and writes eval/dev/{predictions,nbest_predictions,null_odds,
best_null_threshold}.json; ``data.null_threshold_file`` makes a later run use that best
threshold. ``--config.data.hub_name=squad_v2`` reads the datasets hub instead (needs network).

Recipe: as v1.1 (lr 3e-5, batch 32, 2 epochs, seq 384, stride 128, 10% warmup).
Expected: the BERT paper (Devlin et al. 2019, Table 3) reports SQuAD 2.0 only for BERT-large
(dev EM 78.7 / F1 81.9; test EM 80.0 / F1 83.1); it gives no BERT-base v2.0 figure, so there
is no published number for this base-size recipe to compare with.
"""

from bert_jax.run_config import finetune_defaults


def get_config():
    c = finetune_defaults("squad_v2")
    c.log_every_steps = 50
    c.checkpoint.every_steps = 1000
    return c
