#!/usr/bin/env bash
# bench/gpu.sh: the original-size train step (configs/default.py: depth 8, window 8192, L2 only; bench config
# l2_d8) in bfloat16 (model.dtype=bfloat16) at batch 64 and 128 on one NVIDIA GPU: step time, TFLOP/s (XLA's FLOP
# count of the step) and the fraction of the GPU's dense bf16 peak, for sr_jax and for the PyTorch reference
# (bench/torch_reference.py under bf16 autocast on CUDA, cuDNN autotuned, fused Adam). One table, one JSON file.
#
#   bash bench/gpu.sh                          # the packages below must be installed
#   WHEELS=.whl bash bench/gpu.sh              # first installs the missing ones from a wheel folder, offline
#   BATCHES="64 128" REPEATS=10 WARMUP=3 OUT=reports/bench_gpu TORCH_PROCESS=separate bash bench/gpu.sh
#
# What the machine needs: jax with CUDA, flax, optax, orbax-checkpoint, torch with CUDA (for the torch rows), and,
# because bench/train_step.py imports them, ml-collections (configs/ builds ml_collections.ConfigDicts), grain,
# soundfile and soxr (sr_jax.train.loop imports sr_jax.data) and absl-py (flags; optax and orbax bring it). Not
# imported, so not needed: tensorflow-datasets, music21, clu, tensorboardX, matplotlib. sr_jax itself is not
# installed: the bench runs from this checkout.
#
# The wheel folder, made on any machine that reaches PyPI (use the GPU machine's Python version; list both
# platforms, as pip 23 does not widen manylinux_2_28 to the older manylinux2014 tags of e.g. array-record):
#   pip download --only-binary=:all: --python-version 3.12 \
#       --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl ml-collections absl-py grain soundfile soxr
# (about 24 MB with their dependencies: numpy, protobuf, cffi, PyYAML, array-record, etils, ...; copy .whl beside the
# checkout). This script then runs `pip install --no-index --find-links "$WHEELS" <the missing ones>`.
#
# TORCH_PROCESS: separate (default) times torch in its own process with JAX_PLATFORMS=cpu, so that jax never loads
# its CUDA/cuDNN libraries beside torch's (two cuDNN versions in one process can fail) and each side has the whole
# GPU memory; the JSON files are then joined by row name (train_step.py --merge). same: one process, steps
# alternating (XLA_PYTHON_CLIENT_MEM_FRACTION=0.45 leaves torch room). none: sr_jax only.
# Other knobs: CONFIGS (l2_d8), DTYPE (bfloat16), ROOFLINE_N (8192: bf16 matmuls, the measured roofline), PHASES=1
# (also G forward and forward+backward rows), PEAK_TFLOPS (else looked up from the device kind: H100/H200 SXM 989,
# A100 312, ...), PYTHON (python3), REQUIRE_GPU=0 (a smoke test on CPU: e.g. CONFIGS=quickstart BATCHES=2
# REPEATS=1 WARMUP=1 ROOFLINE_N=512 REQUIRE_GPU=0 bash bench/gpu.sh).
# Writes $OUT/jax_b<B>.json, $OUT/torch_b<B>.json, $OUT/gpu.txt (nvidia-smi) and $OUT/train_step_gpu.json (all).
set -uo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
CONFIGS=${CONFIGS:-l2_d8}
DTYPE=${DTYPE:-bfloat16}
BATCHES=${BATCHES:-64 128}
REPEATS=${REPEATS:-10}
WARMUP=${WARMUP:-3}
ROOFLINE_N=${ROOFLINE_N:-8192}
OUT=${OUT:-reports/bench_gpu}
TORCH_PROCESS=${TORCH_PROCESS:-separate}
REQUIRE_GPU=${REQUIRE_GPU:-1}
PHASES=${PHASES:-0}

die() { echo "gpu.sh: error: $*" >&2; exit 1; }
case "$TORCH_PROCESS" in separate|same|none) ;; *) die "TORCH_PROCESS must be separate, same or none";; esac

# 1. What bench/train_step.py imports (module:package), installed from $WHEELS when missing.
missing=()
for pair in ml_collections:ml-collections absl:absl-py grain:grain soundfile:soundfile soxr:soxr \
            flax:flax optax:optax orbax.checkpoint:orbax-checkpoint; do
  "$PY" -c "import ${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
"$PY" -c "import jax" >/dev/null 2>&1 || die "jax is not installed (install jax with CUDA first, e.g. jax[cuda12])"
if ((${#missing[@]})); then
  [[ -n "${WHEELS:-}" ]] || die "missing ${missing[*]}: install them, or give a wheel folder: WHEELS=dir bash $0" \
    "(how to make it: the header of $0)"
  echo "gpu.sh: installing ${missing[*]} from $WHEELS" >&2
  "$PY" -m pip install --no-index --find-links "$WHEELS" "${missing[@]}" || die "pip install from $WHEELS failed"
fi

# 2. The devices.
backend=$("$PY" -c "import jax; print(jax.default_backend(), '|', jax.devices()[0].device_kind)" 2>/dev/null) \
  || die "jax does not start"
echo "jax: $backend" >&2
if [[ "$REQUIRE_GPU" == 1 && "$backend" != gpu* ]]; then
  die "jax runs on '$backend', not a GPU (install jax with CUDA; REQUIRE_GPU=0 runs anyway)"
fi
torch_device=cuda
if [[ "$TORCH_PROCESS" != none ]]; then
  if ! "$PY" -c "import torch" >/dev/null 2>&1; then
    echo "gpu.sh: torch is not installed: sr_jax rows only" >&2
    TORCH_PROCESS=none
  elif ! "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())" >/dev/null 2>&1; then
    if [[ "$REQUIRE_GPU" == 1 ]]; then
      echo "gpu.sh: torch sees no CUDA device (a CPU build?): sr_jax rows only" >&2
      TORCH_PROCESS=none
    else
      torch_device=cpu
    fi
  fi
fi

mkdir -p "$OUT"
{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv 2>/dev/null \
    || echo "no nvidia-smi"; echo "jax: $backend"; } > "$OUT/gpu.txt"

# 3. sr_jax (and torch) per batch size, each in fresh processes.
common=(--configs="$CONFIGS" --dtype="$DTYPE" --repeats="$REPEATS" --warmup="$WARMUP")
[[ -n "${PEAK_TFLOPS:-}" ]] && common+=(--peak_tflops="$PEAK_TFLOPS")
jax_only=(--roofline_n="$ROOFLINE_N" --roofline_dtype=bfloat16)
[[ "$PHASES" == 1 ]] && jax_only+=(--phases)
files=()
status=0
for b in $BATCHES; do
  echo "== batch $b" >&2
  if [[ "$TORCH_PROCESS" == same ]]; then
    XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.45} "$PY" bench/train_step.py \
      "${common[@]}" "${jax_only[@]}" --batch="$b" --torch_device="$torch_device" --json="$OUT/jax_b$b.json" \
      && files+=("$OUT/jax_b$b.json") || { echo "gpu.sh: batch $b failed" >&2; status=1; }
    continue
  fi
  "$PY" bench/train_step.py "${common[@]}" "${jax_only[@]}" --batch="$b" --notorch --json="$OUT/jax_b$b.json" \
    && files+=("$OUT/jax_b$b.json") || { echo "gpu.sh: sr_jax at batch $b failed" >&2; status=1; }
  if [[ "$TORCH_PROCESS" == separate ]]; then
    JAX_PLATFORMS=cpu "$PY" bench/train_step.py "${common[@]}" --batch="$b" --nosr_jax \
      --torch_device="$torch_device" --json="$OUT/torch_b$b.json" \
      && files+=("$OUT/torch_b$b.json") || { echo "gpu.sh: torch at batch $b failed" >&2; status=1; }
  fi
done

# 4. One table of everything.
((${#files[@]})) || die "nothing was measured"
echo >&2
echo "== all (sr_jax and torch rows joined by name)" >&2
IFS=,
"$PY" bench/train_step.py --merge="${files[*]}" --json="$OUT/train_step_gpu.json" || status=1
unset IFS
echo "gpu.sh: wrote $OUT/train_step_gpu.json" >&2
exit $status
