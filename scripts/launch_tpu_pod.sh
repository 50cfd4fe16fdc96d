#!/usr/bin/env bash
# Launch `bert-jax pretrain` on every worker of a Cloud TPU pod slice.
#
#   bash scripts/launch_tpu_pod.sh TPU_NAME ZONE CONFIG WORKDIR [--config.x=v ...]
#
# Every worker runs the same command; jax.distributed.initialize() discovers the
# pod from TPU metadata (config distributed.initialize="auto"). Each host reads
# only its own rows of every batch; only process 0 writes logs. WORKDIR should
# be a gs:// path (or shared filesystem) visible to all workers, so a restart of
# this same command resumes from the latest checkpoint.
set -euo pipefail
if [ $# -lt 4 ]; then
  echo "usage: $0 TPU_NAME ZONE CONFIG WORKDIR [--config.x=v ...]" >&2
  exit 2
fi
TPU_NAME="$1"; ZONE="$2"; CONFIG="$3"; WORKDIR="$4"; shift 4
EXTRA="$*"
REPO_DIR="${REPO_DIR:-\$HOME/bert-jax}"   # where the repository is checked out on the workers
gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone "$ZONE" --worker=all --command "
  cd $REPO_DIR && source .venv/bin/activate &&
  bert-jax pretrain --config $CONFIG --workdir $WORKDIR $EXTRA 2>&1 | tee -a /tmp/bert_jax_pretrain.log
"
