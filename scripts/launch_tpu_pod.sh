#!/usr/bin/env bash
# Launch `bert-jax pretrain` on every worker of a Cloud TPU pod slice.
#
#   bash scripts/launch_tpu_pod.sh TPU_NAME ZONE CONFIG WORKDIR [--config.x=v ...]
#
# Every worker runs the same command; jax.distributed.initialize() discovers the
# pod from TPU metadata (config distributed.initialize="auto"). Each host reads
# only its own rows of every batch; only process 0 writes logs. WORKDIR must be
# a path every worker sees (a shared filesystem, or a gcsfuse mount of a bucket:
# gs:// URLs are not read directly; docs/tpu_pod.md), so a restart of this same
# command resumes from the latest checkpoint. The arguments reach the workers as
# given (quoted for their shell: $HOME or ~ in them is not expanded there, so give
# absolute paths), and each worker's command ends with the run's status (not tee's).
set -euo pipefail
if [ $# -lt 4 ]; then
  echo "usage: $0 TPU_NAME ZONE CONFIG WORKDIR [--config.x=v ...]" >&2
  exit 2
fi
TPU_NAME="$1"; ZONE="$2"; CONFIG="$3"; WORKDIR="$4"; shift 4
# Quoted once more for the workers' shell: "--config.mesh_shape=(1,-1,1)" must arrive whole.
ARGS=$(printf ' %q' pretrain --config "$CONFIG" --workdir "$WORKDIR" "$@")
REPO_DIR="${REPO_DIR:-\$HOME/bert-jax}"   # where the repository is checked out on the workers
# pipefail: the exit status is bert-jax's (2 refused, 3 non-finite loss, 130/143 interrupted), not tee's
gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone "$ZONE" --worker=all --command "
  set -o pipefail
  cd $REPO_DIR && source .venv/bin/activate &&
  bert-jax$ARGS 2>&1 | tee -a /tmp/bert_jax_pretrain.log
"
