#!/usr/bin/env bash
# Creates the side-by-side reference environment for benchmarks/hf_flax_train_step.py:
# Hugging Face's Flax BERT only exists in transformers 4.x, which needs flax<0.11
# and a jax of the same era, so it cannot share the project's virtualenv.
#
#   bash benchmarks/setup_hf_flax_env.sh [VENV_DIR]    # default /tmp/bert_jax_hf_flax_venv
set -euo pipefail
VENV="${1:-/tmp/bert_jax_hf_flax_venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet "transformers>=4.40,<5" "flax>=0.8,<0.11" "jax[cpu]>=0.4.30,<0.5" "optax<0.3" numpy
"$VENV/bin/python" -c "import jax, flax, transformers; print('jax', jax.__version__, 'flax', flax.__version__, 'transformers', transformers.__version__)"
