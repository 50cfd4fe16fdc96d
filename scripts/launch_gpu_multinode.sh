#!/usr/bin/env bash
# Launch `bert-jax pretrain` on a multi-node GPU job: one process per node, all
# local GPUs per process.
#
# Under SLURM (one task per node):
#   srun --nodes=N --ntasks-per-node=1 --gpus-per-node=8 \
#        bash scripts/launch_gpu_multinode.sh CONFIG WORKDIR [--config.x=v ...]
# jax.distributed.initialize() reads the SLURM environment itself.
#
# Elsewhere, set on every node before running this script:
#   COORDINATOR=host0:12345 NUM_NODES=N NODE_RANK=<0..N-1>
# WORKDIR must be on storage shared by all nodes; re-running resumes.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 CONFIG WORKDIR [--config.x=v ...]" >&2
  exit 2
fi
CONFIG="$1"; WORKDIR="$2"; shift 2
DIST=()
if [ -z "${SLURM_JOB_ID:-}" ]; then
  : "${COORDINATOR:?set COORDINATOR=host:port (or run under SLURM)}"
  : "${NUM_NODES:?set NUM_NODES}"
  : "${NODE_RANK:?set NODE_RANK}"
  DIST=(--config.distributed.initialize=yes
        "--config.distributed.coordinator_address=$COORDINATOR"
        "--config.distributed.num_processes=$NUM_NODES"
        "--config.distributed.process_id=$NODE_RANK")
fi
# The README installs into the repository's .venv without activating it: use that one when
# bert-jax is not on PATH. `sbatch` runs a copy of this script from Slurm's spool folder, so the
# checkout is also looked for where the job was submitted from.
BERT_JAX=bert-jax
if ! command -v bert-jax >/dev/null 2>&1; then
  TRIED=()
  for ROOT in "$(cd "$(dirname "$0")/.." && pwd)" ${SLURM_SUBMIT_DIR:+"$SLURM_SUBMIT_DIR"}; do
    BERT_JAX="$ROOT/.venv/bin/bert-jax"
    TRIED+=("$BERT_JAX")
    [ -x "$BERT_JAX" ] && break
  done
  [ -x "$BERT_JAX" ] || { echo "bert-jax is not on PATH and ${TRIED[*]} does not exist: install it (README.md), activate its environment, or submit the job from the checkout" >&2; exit 127; }
fi
exec "$BERT_JAX" pretrain --config "$CONFIG" --workdir "$WORKDIR" "${DIST[@]}" "$@"
