#!/usr/bin/env bash
# Trains sr_jax on every worker (host) of a Cloud TPU VM: a single host (v4-8, v5litepod-8, ...) or a pod slice
# (v4-32, v5litepod-64, ...), where the same command must run on all hosts at once.
#
#   TPU_NAME=my-tpu ZONE=us-central2-b PROJECT=my-project WORKDIR=gs://my-bucket/sr_jax/run1 \
#     bash launch/tpu_vm.sh all                                # copy code, install, train
#   ... bash launch/tpu_vm.sh train --config.train.num_steps=200000   # train only; extra flags go to train.py
#
# Steps (first argument; default `all`):
#   sync   copies this checkout (without .git and run folders) to ~/sr_jax on every worker
#   setup  pip-installs jax[tpu], sr_jax (pip install -e .) and, for gs:// workdirs, the GCS clients
#   train  runs `python3 launch/train.py --distributed=on --config=$CONFIG --workdir=$WORKDIR <extra flags>` on all
#          workers at once
#   all    sync, setup, train
#
# What to set (environment variables):
#   TPU_NAME  (required)  name of the TPU VM (`gcloud compute tpus tpu-vm list --zone=$ZONE`).
#   ZONE      (required)  its zone, e.g. us-central2-b (v4) or us-west4-a (v5e).
#   PROJECT               GCP project (default: gcloud's configured project).
#   CONFIG                config file + overrides, default configs/default.py.
#   WORKDIR   (required)  run folder: checkpoints, TensorBoard events, metrics.jsonl. On a pod slice it MUST be
#                         shared by all workers, i.e. a gs:// bucket in the TPU's region (orbax writes one
#                         checkpoint from all hosts; a restarted run resumes from it). A local path only works on
#                         a single-host TPU VM. View with `tensorboard --logdir=$WORKDIR`.
#   SR_JAX_DATA           optional data root on the workers (each worker reads its own data; the built-in corpus
#                         is built on first use on every worker, under ~/.cache/sr_jax by default).
#   REMOTE_DIR            where the code lives on the workers, default ~/sr_jax (i.e. sr_jax in the home folder).
#
# How the hosts find each other: the train command passes --distributed=on, so launch/train.py calls
# jax.distributed.initialize() with no addresses; on a Cloud TPU VM JAX's GceTpuCluster reads the slice from the
# TPU metadata server (worker number, worker endpoints, coordinator = worker 0), so nothing else is needed (the
# environment variables train.py's --distributed=auto looks for are not set on TPU VMs, only on GKE). Each process
# sees its host's TPU chips (jax.local_devices()) and all chips of the slice (jax.devices()); only process 0 writes
# TensorBoard events and metrics.jsonl.
#
# Notes:
#   * `--worker=all` runs the command on all hosts in parallel and prints their interleaved output here; Ctrl-C
#     stops the ssh sessions, and usually the training processes with them. If a host is left with a process
#     holding the TPU ("TPU in use" / "libtpu.so already in use" on the next start), find it with
#     gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" --worker=all --command='pgrep -af launch/train.py'
#     and `kill <pid>` it on that host.
#   * For long runs start the script inside tmux/screen on your machine, or wrap the train command in nohup.

set -euo pipefail

STEP="${1:-all}"
if [[ $# -gt 0 ]]; then shift; fi

TPU_NAME="${TPU_NAME:?set TPU_NAME to the TPU VM name}"
ZONE="${ZONE:?set ZONE to the TPU zone, e.g. us-central2-b}"
CONFIG="${CONFIG:-configs/default.py}"
REMOTE_DIR="${REMOTE_DIR:-sr_jax}"

GCLOUD_ARGS=(--zone="${ZONE}")
if [[ -n "${PROJECT:-}" ]]; then
  GCLOUD_ARGS+=(--project="${PROJECT}")
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Runs one shell command line on every worker of the TPU VM.
on_all_workers() {
  gcloud compute tpus tpu-vm ssh "${TPU_NAME}" "${GCLOUD_ARGS[@]}" --worker=all --command="$1"
}

sync_code() {
  local tmp archive
  tmp="$(mktemp -d)"
  archive="${tmp}/sr_jax.tgz"
  tar -C "${ROOT}" --exclude=.git --exclude='*.egg-info' --exclude=__pycache__ --exclude=runs --exclude=workdir \
    -czf "${archive}" .
  gcloud compute tpus tpu-vm scp "${archive}" "${TPU_NAME}:sr_jax.tgz" "${GCLOUD_ARGS[@]}" --worker=all
  rm -rf "${tmp}"
  on_all_workers "mkdir -p ${REMOTE_DIR} && tar -xzf sr_jax.tgz -C ${REMOTE_DIR} && rm sr_jax.tgz"
}

setup_workers() {
  local extra=""
  if [[ "${WORKDIR:-}" == gs://* ]]; then
    extra="google-cloud-storage gcsfs"  # tensorboardX and etils.epath write to gs:// through these
  fi
  on_all_workers "cd ${REMOTE_DIR} && python3 -m pip install -q -U 'jax[tpu]' && python3 -m pip install -q -e . ${extra}"
}

train() {
  local workdir="${WORKDIR:?set WORKDIR (a gs:// path on a pod slice)}"
  local env="" flags=""
  if [[ -n "${SR_JAX_DATA:-}" ]]; then
    env="SR_JAX_DATA=$(printf '%q' "${SR_JAX_DATA}") "
  fi
  if [[ $# -gt 0 ]]; then
    flags="$(printf ' %q' "$@")"
  fi
  # TF_CPP_MIN_LOG_LEVEL quiets C++ logging of tensorflow-datasets' helpers; PYTHONUNBUFFERED keeps the interleaved
  # output of the workers line by line.
  on_all_workers "cd ${REMOTE_DIR} && ${env}TF_CPP_MIN_LOG_LEVEL=2 PYTHONUNBUFFERED=1 python3 launch/train.py \
--distributed=on --config=$(printf '%q' "${CONFIG}") --workdir=$(printf '%q' "${workdir}")${flags}"
}

case "${STEP}" in
  sync) sync_code ;;
  setup) setup_workers ;;
  train) train "$@" ;;
  all) sync_code; setup_workers; train "$@" ;;
  *) echo "usage: $0 [sync|setup|train|all] [extra launch/train.py flags]" >&2; exit 2 ;;
esac
