r"""How fast is one train step, against the machine's matmul FLOP/s, the chip's peak and a PyTorch implementation?

  python bench/train_step.py [--configs=l2_d8,gan_ae_d8,quickstart --repeats=3 --warmup=1 --json=FILE]
                             [--notorch] [--phases] [--batch=4]
                             [--conv=lax,s2d] [--dtype=,bfloat16]     # variants, timed side by side
  # on a GPU (bench/gpu.sh runs exactly this, then the torch side in its own process, then --merge):
  python bench/train_step.py --configs=l2_d8 --dtype=bfloat16 --batch=64 --notorch \
      --roofline_n=8192 --roofline_dtype=bfloat16 --json=jax.json
  JAX_PLATFORMS=cpu python bench/train_step.py --configs=l2_d8 --dtype=bfloat16 --batch=64 --nosr_jax \
      --torch_device=cuda --json=torch.json
  python bench/train_step.py --merge=jax.json,torch.json --json=both.json    # one table of both

For each config, the train step is built exactly as training builds it (loop.create_state + loop.compile_steps on
sharding.make_mesh(config.mesh)), compiled once, and run on random batches. Columns:
  step_s / step_min_s   median / min seconds of a step after `--warmup` untimed steps (the step's outputs, state
                        included, are waited for)
  samples_per_s         audio samples per second (batch * window / step_s)
  gflop                 FLOPs of one step, from XLA's cost_analysis() of the compiled step, in 1e9 (where the
                        compiled count is under half of the count of the lowered, unoptimised step, as when a
                        backend leaves its library calls uncounted, the lowered count; the row's flops_source says
                        which). Convolutions are counted dense: about 3x the forward's FLOPs for a train step
  gflops_per_s          gflop / step_s
  roofline_fraction     gflops_per_s / the matmul FLOP/s measured in the same process (jnp.dot of two n x n
                        matrices, jitted: 2 * n^3 / time; n = --roofline_n = 2048, float32 by default, use 8192 and
                        bfloat16 on a GPU), in rounds of `--roofline_repeats` matmuls that alternate with the timed
                        steps (roofline_gflops_per_s: the median round)
  torch_step_s          the same step in PyTorch (bench/torch_reference.py, NCW layout; on CPU all CPU threads, on
                        CUDA cuDNN with autotuning and fused Adam; model.dtype=bfloat16 -> bf16 autocast), with the
                        same shapes, losses (MR-STFT included when the config has it), Adam and lr; its steps
                        alternate with sr_jax's so that both see the same machine load
  speedup_vs_torch      torch_step_s / step_s (targets: >= 1.5, and roofline_fraction >= 0.75)
Off CPU, or with a known peak, also (the same FLOP count for both, sr_jax's):
  tflops_per_s / torch_tflops_per_s     flops / step_s (and / torch_step_s), in 1e12
  peak_tflops                           the chip's dense peak: --peak_tflops, or looked up from
                                        jax.devices()[0].device_kind for bfloat16 rows (BF16_PEAK_TFLOPS:
                                        H100/H200 SXM 989, H100 PCIe 756, A100 312, ...); none for float32
  peak_fraction / torch_peak_fraction   tflops_per_s / peak_tflops
With --phases, extra rows time the generator's forward alone and forward + backward (jitted, train mode).
Variants (--conv x --dtype) and the torch step of a config (one per model dtype) alternate in every timed round,
with the matmul rounds, so that they all see the same load.

Configs: l2_d8 = configs/default.py (depth 8, window 8192, batch 16, L2 only); gan_ae_d8 = the same with the
global discriminator and the autoencoder feature loss (train.ae_checkpoint set, so the step is the generator phase
only, as after the autoencoder phase); quickstart = configs/quickstart.py (depth 4, width 1/4, window 2048, L2 +
MR-STFT; the torch reference computes the same MR-STFT loss with torch.stft, an FFT, where sr_jax's DFT-by-matmul
STFT adds 3.4 of the step's 79 counted GFLOP: so quickstart's gflops_per_s credits sr_jax with ~4% work torch does
not do, while step_s and speedup_vs_torch compare the same loss); piano_r4_16k = configs/piano_r4_16k.py:stage=1, the
shipped recipe's stage 1 (depth 8, width 1/8, window 2048, batch 16, plain L2, no discriminator),
with a constant lr and no clipping (the torch reference has plain Adam only); piano_r4_16k_xla = the same with XLA's
convolutions throughout; piano_r4_16k_critic = the same with the critic discriminator trained alongside
(loss.lambda_adv = 1e-4, its term never reaching the generator).
The rows in bench/RESULTS.md were measured on the first shipped recipe (depth 4, L2 + MR-STFT + a small adversarial
term), before the recipe became pure L2 and depth 8. The default
--configs are l2_d8, gan_ae_d8, piano_r4_16k. Depth-8 steps take many seconds on a 2-core CPU.
The 1-minute load average is reported with each row: other processes on the machine slow every number down.

On a GPU, jax and torch in one process share it (set XLA_PYTHON_CLIENT_MEM_FRACTION=0.45 or so, since jax takes 75%
of its memory by default) and must load compatible cuDNN libraries; `--nosr_jax` times the torch side alone (run it
with JAX_PLATFORMS=cpu so that jax never touches the GPU) and `--merge` joins the two JSON files by row name.
Imports: configs/ needs ml_collections, and sr_jax.train.loop imports sr_jax.data (grain, soundfile, soxr).
"""

import contextlib
import json
import os
import re
import sys
import time
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# torch's OpenMP threads spin after each parallel region by default; they would steal the cores from the sr_jax
# step timed right after a torch step (the steps alternate). Set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import flax.linen as nn  # noqa: E402
from absl import app, flags  # noqa: E402
from jax import lax  # noqa: E402

from bench import common  # noqa: E402
from configs import default, piano_r4_16k, quickstart  # noqa: E402
from sr_jax.models import layers  # noqa: E402
from sr_jax.train import loop, sharding, state as state_lib  # noqa: E402

def define_flags() -> None:
  """The flags, defined only when run as a script (the tests import several bench scripts at once)."""
  flags.DEFINE_list("configs", ["l2_d8", "gan_ae_d8", "piano_r4_16k"], "Configs to time (see the docstring).")
  flags.DEFINE_integer("repeats", 3, "Timed steps per config.")
  flags.DEFINE_integer("warmup", 1, "Untimed steps per config (after compilation).")
  flags.DEFINE_integer("roofline_repeats", 10, "Timed 2048x2048 matmuls for the roofline.")
  flags.DEFINE_bool("torch", True, "Also time the PyTorch reference (when torch is installed).")
  flags.DEFINE_list("dtype", [""], "Variants: model.dtype values to time side by side ('' = the config's).")
  flags.DEFINE_integer("batch", None, "Override train.batch_size (e.g. a quicker depth-8 comparison).")
  flags.DEFINE_list("conv", ["lax"], "Variants to time side by side: 'lax' = sr_jax's convs as they are; 's2d' = "
                    "(experiment) every stride-2 conv computed as a stride-1 conv on pairs of samples (SpaceToDepthConv).")
  flags.DEFINE_bool("phases", False, "Also time the generator forward and forward + backward alone.")
  flags.DEFINE_string("json", None, "Also write the table as JSON here.")
  flags.DEFINE_float("peak_tflops", None, "The chip's dense peak TFLOP/s for peak_fraction (all rows); default: "
                     "looked up from jax.devices()[0].device_kind for bfloat16 rows (BF16_PEAK_TFLOPS); 0 = none.")
  flags.DEFINE_integer("roofline_n", 2048, "Size n of the n x n matmuls of the roofline (8192 suits a GPU).")
  flags.DEFINE_enum("roofline_dtype", "float32", ["float32", "bfloat16"], "dtype of the roofline matmuls.")
  flags.DEFINE_string("torch_device", "auto", "Device of the PyTorch reference: cpu, cuda, cuda:N, or auto (cuda "
                      "when torch sees one and jax runs on a GPU or --nosr_jax is given, else cpu).")
  flags.DEFINE_bool("sr_jax", True, "Time sr_jax's steps (--nosr_jax: the torch reference alone, e.g. in its own "
                    "process on a GPU; run with JAX_PLATFORMS=cpu).")
  flags.DEFINE_list("merge", None, "JSON files written by this script (e.g. a --notorch run and a --nosr_jax run): "
                    "print (and with --json write) one table of their rows joined by name, then exit.")
FLAGS = flags.FLAGS

COLUMNS = ["step_s", "step_min_s", "samples_per_s", "gflop", "gflops_per_s", "roofline_gflops_per_s",
           "roofline_fraction", "torch_step_s", "speedup_vs_torch", "load_1m"]
# Off CPU or with a known peak, these are shown too (after the column named first).
PEAK_COLUMNS = [("roofline_fraction", ["tflops_per_s", "peak_tflops", "peak_fraction"]),
                ("speedup_vs_torch", ["torch_tflops_per_s", "torch_peak_fraction"])]

# Dense (no structured sparsity) bfloat16 tensor-core peaks in TFLOP/s from the vendors' data sheets, matched on
# the words of a device kind ("NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB", "TPU v5 lite"): the first entry
# whose words all occur wins.
BF16_PEAK_TFLOPS = (
    (("h200", "nvl"), 835.0),
    (("h100", "nvl"), 835.0),
    (("h100", "pcie"), 756.0),
    (("gh200",), 989.0),
    (("h200",), 989.0),
    (("h100",), 989.0),  # SXM
    (("b200",), 2250.0),
    (("a100",), 312.0),  # SXM and PCIe
    (("l40s",), 362.0),
    (("l4",), 121.0),
    (("tpu", "v6", "lite"), 918.0),
    (("tpu", "v5", "lite"), 197.0),
    (("tpu", "v5p"), 459.0),
    (("tpu", "v5"), 459.0),
    (("tpu", "v4"), 275.0),
)


def peak_tflops_for(device_kind: str, dtype: str) -> float | None:
  """The dense peak TFLOP/s of a device kind for `dtype` ('bfloat16' only; None when unknown)."""
  if dtype != "bfloat16" or not device_kind:
    return None
  words = set(re.split(r"[^a-z0-9]+", device_kind.lower()))
  for needed, peak in BF16_PEAK_TFLOPS:
    if all(w in words for w in needed):
      return peak
  return None


def derive(row: dict, roofline: float | None = None) -> dict:
  """Adds the derived columns of a row from its measured ones (step_s, torch_step_s, flops, samples,
  roofline_gflops_per_s or `roofline` in FLOP/s, peak_tflops, gflops_per_s for a matmul row); returns the row."""
  step, torch_step, flops = row.get("step_s"), row.get("torch_step_s"), row.get("flops")
  if step and row.get("samples"):
    row["samples_per_s"] = row["samples"] / step
  if flops is not None:
    row["gflop"] = flops / 1e9
    if step:
      row["gflops_per_s"] = flops / step / 1e9
  roofline = row["roofline_gflops_per_s"] * 1e9 if row.get("roofline_gflops_per_s") else roofline
  if flops is not None and step and roofline:
    row["roofline_fraction"] = flops / step / roofline
  if torch_step and step:
    row["speedup_vs_torch"] = torch_step / step
  peak = row.get("peak_tflops") or None
  if row.get("gflops_per_s") is not None:
    row["tflops_per_s"] = row["gflops_per_s"] / 1e3
    if peak:
      row["peak_fraction"] = row["tflops_per_s"] / peak
  if torch_step and flops is not None:
    row["torch_tflops_per_s"] = flops / torch_step / 1e12
    if peak:
      row["torch_peak_fraction"] = row["torch_tflops_per_s"] / peak
  return row


def columns_for(rows, show_peak: bool) -> list[str]:
  """COLUMNS, with PEAK_COLUMNS inserted when `show_peak` (off CPU) or a row has a peak."""
  cols = list(COLUMNS)
  if show_peak or any(r.get("peak_tflops") for r in rows):
    for after, extra in PEAK_COLUMNS:
      i = cols.index(after) + 1
      cols[i:i] = extra
  return cols


def merge_rows(docs) -> list[dict]:
  """Rows of several JSON documents of this script joined by name (a key already set wins), derived again."""
  merged: dict[str, dict] = {}
  for doc in docs:
    for row in doc["rows"]:
      into = merged.setdefault(row["name"], {})
      for k, v in row.items():
        if into.get(k) is None:
          into[k] = v
  return [derive(row) for row in merged.values()]


def _gan_ae(arg=None):
  c = default.get_config(arg)
  c.loss.lambda_adv, c.loss.lambda_feature = 1e-3, 1.0
  c.train.ae_checkpoint = "unused-by-the-bench"  # skips the autoencoder phase (create_state does not load it)
  return c


def _recipe(arg=None):
  """Stage 1 of the shipped recipe (configs/piano_r4_16k.py) with a constant lr and no gradient clipping: the torch
  reference implements plain Adam only, and neither changes the work of a step measurably."""
  c = piano_r4_16k.get_config(f"stage=1,{arg}" if arg else "stage=1")
  c.optim.schedule, c.optim.grad_clip = "constant", 0.0
  return c


def _recipe_xla(arg=None):
  c = _recipe(arg)
  c.model.conv_impl = "xla"  # the recipe computes its big stride-1 convs by FFT; this row: XLA's convs throughout
  return c


def _recipe_critic(arg=None):
  c = _recipe(arg)
  c.loss.lambda_adv, c.loss.adv_start_step = 1e-4, 10**9  # a critic trained alongside, never reaching the generator
  return c


CONFIGS = {"l2_d8": default.get_config, "gan_ae_d8": _gan_ae, "quickstart": quickstart.get_config,
           "piano_r4_16k": _recipe, "piano_r4_16k_xla": _recipe_xla, "piano_r4_16k_critic": _recipe_critic}


def get_config(name: str, dtype: str | None = None, batch: int | None = None):
  if name not in CONFIGS:
    raise app.UsageError(f"unknown config {name!r}; choose from {', '.join(CONFIGS)}")
  c = CONFIGS[name]()
  if dtype:
    c.model.dtype = dtype
  if batch:
    c.train.batch_size = batch
  return c


class SpaceToDepthConv(nn.Module):
  """A stride-2 conv with zero padding k // 2 (same params as nn.Conv: kernel (k, C, O), bias) computed as a
  stride-1 VALID conv of the padded input seen as pairs of samples (N, W/2 + k//2, 2C) with the kernel
  (k//2 + 1, 2C, O) (taps 2a + r, one zero tap appended). Same output; its gradients are plain stride-1 convs,
  where XLA's gradients of a stride-2 conv are an lhs-dilated conv (half of its products are with zeros) and
  an rhs-dilated one.
  """

  features: int
  kernel: int
  dtype: layers.Dtype = jnp.float32
  zero_init: bool = False

  @nn.compact
  def __call__(self, x):
    init = nn.initializers.zeros if self.zero_init else nn.linear.default_kernel_init
    w = self.param("kernel", init, (self.kernel, x.shape[-1], self.features))
    b = self.param("bias", nn.initializers.zeros, (self.features,))
    x, w, b = x.astype(self.dtype), w.astype(self.dtype), b.astype(self.dtype)
    n, width, c = x.shape
    p = self.kernel // 2
    pairs = jnp.pad(x, ((0, 0), (p, p), (0, 0))).reshape(n, (width + 2 * p) // 2, 2 * c)
    taps = jnp.pad(w, ((0, 1), (0, 0), (0, 0))).reshape(p + 1, 2 * c, self.features)
    return lax.conv_general_dilated(pairs, taps, (1,), "VALID", dimension_numbers=("NWC", "WIO", "NWC")) + b


@contextlib.contextmanager
def conv_impl(name: str):
  """'lax': nothing changes. 's2d' (experiment): while active, sr_jax.models.layers.conv (used by every ConvBlock:
  generator, discriminators, autoencoder) builds a SpaceToDepthConv for stride 2. Modules trace under it."""
  original = layers.conv

  def conv(features, kernel, stride, dtype, name=None, zero_init=False, impl="xla"):
    if stride != 2 or kernel % 2 == 0:
      return original(features, kernel, stride, dtype, name=name, zero_init=zero_init, impl=impl)
    return SpaceToDepthConv(features, kernel, dtype, zero_init, name=name)

  if name not in ("lax", "s2d"):
    raise app.UsageError(f"--conv takes lax and/or s2d, got {name!r}")
  layers.conv = conv if name == "s2d" else original
  try:
    yield
  finally:
    layers.conv = original


def flops_of(compiled) -> float:
  """The "flops" entry of a compiled computation's cost analysis (a dict, or a list of one dict per program)."""
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    return float(sum(c.get("flops", 0.0) for c in cost))
  return float(cost.get("flops", 0.0))


def step_flops(lowered, compiled) -> tuple[float, str]:
  """(FLOPs, "compiled" | "lowered"): the compiled step's count, or the lowered (unoptimised) one's where the
  compiled count is under half of it (a backend that leaves library calls, e.g. cuDNN convs, uncounted)."""
  counted = flops_of(compiled)
  try:
    unoptimised = flops_of(lowered)
  except Exception:  # noqa: BLE001  (an estimate only: a backend may not offer it)
    unoptimised = 0.0
  if counted < 0.5 * unoptimised:
    return unoptimised, "lowered"
  return counted, "compiled"


def matmul_round(repeats: int, n: int = 2048, dtype: str = "float32") -> tuple[Callable[[], None], float]:
  """(a callable running `repeats` jitted n x n matmuls of `dtype`, the FLOPs it does)."""
  a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32).astype(dtype)
  b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32).astype(dtype)
  dot = jax.jit(jnp.dot)
  dot(a, b).block_until_ready()

  def run():
    for _ in range(repeats):
      dot(a, b).block_until_ready()

  return run, 2.0 * n ** 3 * repeats


def random_batch(config, seed: int = 0) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(seed)
  shape = (config.train.batch_size, config.data.window, 1)
  y = (0.3 * rng.standard_normal(shape)).astype(np.float32)
  return {"input": (y + 0.05 * rng.standard_normal(shape)).astype(np.float32), "target": y}


def prepare_sr_jax(config) -> tuple[Callable[[], None], dict]:
  """Compiles the config's train step as training does; returns (run one step and wait, {flops, compile_s})."""
  models, opts = state_lib.build_models(config), state_lib.make_optimizers(config)
  mesh = sharding.make_mesh(config.mesh)
  abstract, _, init = loop.create_state(config, models, opts, mesh)
  train, _, _ = loop.compile_steps(config, models, opts, mesh, abstract)
  batch = sharding.global_batch(random_batch(config), mesh)
  holder = {"state": init()}
  start = time.perf_counter()
  lowered = train.lower(holder["state"], batch)
  compiled = lowered.compile()
  compile_s = time.perf_counter() - start
  flops, source = step_flops(lowered, compiled)

  def step():
    holder["state"], metrics = compiled(holder["state"], batch)
    jax.block_until_ready((holder["state"], metrics))  # the optimiser update too, not only the losses

  return step, {"flops": flops, "flops_source": source, "compile_s": compile_s}


def time_phases(config, warmup: int, repeats: int) -> list[dict]:
  """Rows for the generator forward alone and forward + backward (grad of the L2 loss w.r.t. the params)."""
  models = state_lib.build_models(config)
  g, data = models.gen, random_batch(config)
  x, y = jnp.asarray(data["input"]), jnp.asarray(data["target"])
  params = g.init({"params": jax.random.PRNGKey(0)}, x[:1])["params"]
  rngs = {"dropout": jax.random.PRNGKey(1)}

  def forward(p, x, y):
    del y
    return g.apply({"params": p}, x, train=True, rngs=rngs)

  def loss(p, x, y):
    return jnp.mean((forward(p, x, y) - y) ** 2)

  rows = []
  for what, fn in (("G forward", forward), ("G forward+backward", jax.grad(loss))):
    lowered = jax.jit(fn).lower(params, x, y)
    compiled = lowered.compile()
    flops, source = step_flops(lowered, compiled)
    median, best = common.time_fn(lambda: jax.block_until_ready(compiled(params, x, y)), warmup, repeats)
    rows.append({"name": what, "step_s": median, "step_min_s": best, "flops": flops, "flops_source": source})
  return rows


def torch_device(requested: str, sr_jax_on_gpu: bool) -> str:
  """The device for the PyTorch reference: `requested`, or for 'auto' cuda when torch sees one and sr_jax runs on
  a GPU (or is not run at all), else cpu."""
  if requested != "auto":
    return requested
  import torch  # noqa: PLC0415
  return "cuda" if torch.cuda.is_available() and sr_jax_on_gpu else "cpu"


def prepare_torch(config, device: str = "cpu"):
  """The PyTorch reference step on a random batch (a callable that waits for the device), or None when torch is
  not installed."""
  try:
    import torch  # noqa: PLC0415
  except ImportError:
    return None
  from bench import torch_reference  # noqa: PLC0415

  if torch.device(device).type == "cpu":
    torch.set_num_threads(os.cpu_count())
  torch.manual_seed(0)
  step, _ = torch_reference.make_step(config, device)
  data = random_batch(config)
  x, y = (torch.from_numpy(data[k].transpose(0, 2, 1).copy()).to(device) for k in ("input", "target"))
  if torch.device(device).type != "cuda":
    return lambda: step(x, y)

  def run():
    step(x, y)
    torch.cuda.synchronize(device)

  return run


def finish_row(row: dict, samples: int, roofline: float, peak: float | None = None) -> dict:
  """Adds the derived columns (samples/s, GFLOP, GFLOP/s, roofline fraction, speed-up, TFLOP/s and fractions of
  `peak` TFLOP/s when given) and the load to a row."""
  row["samples"] = samples
  if peak:
    row["peak_tflops"] = peak
  derive(row, roofline)
  row["load_1m"] = os.getloadavg()[0]
  return row


def variant_label(name: str, c, conv: str, dtype: str) -> str:
  return f"{name} (d{c.model.depth} w{c.model.width:g} win{c.data.window} b{c.train.batch_size}" + \
      (f" {c.model.dtype}" if dtype else "") + (f" {conv})" if conv != "lax" else ")")


def peak_of(dtype: str, kind: str) -> float | None:
  if FLAGS.peak_tflops is not None:
    return FLAGS.peak_tflops or None
  return peak_tflops_for(kind, dtype)


def run_merge() -> None:
  docs = []
  for path in FLAGS.merge:
    with open(path, encoding="utf-8") as f:
      docs.append(json.load(f))
  rows = merge_rows(docs)
  cols = columns_for(rows, any(d.get("platform", "cpu") != "cpu" for d in docs))
  common.print_table(rows, cols)
  if FLAGS.json:
    extra = {k: v for d in reversed(docs) for k, v in d.items() if k not in ("rows", "machine", "date", "merged")}
    common.write_json(FLAGS.json, rows, merged=list(FLAGS.merge), **extra)


def run_torch_only(variants) -> None:
  """--nosr_jax: the torch reference alone, one row per variant label (one timing per model dtype)."""
  device = torch_device(FLAGS.torch_device, True)
  import torch  # noqa: PLC0415  (this mode needs it)

  kind = torch.cuda.get_device_name(torch.device(device)) if torch.device(device).type == "cuda" else "cpu"
  print(f"PyTorch {torch.__version__} reference on {device} ({kind}), {common.machine()}", flush=True)
  rows = []
  for name in FLAGS.configs:
    configs = {}
    for conv, dtype in variants:
      c = get_config(name, dtype or None, FLAGS.batch)
      configs[variant_label(name, c, conv, dtype)] = c
    fns, keys = {}, {}
    for label, c in configs.items():
      keys[label] = f"torch {c.model.dtype}"
      if keys[label] not in fns:
        fns[keys[label]] = prepare_torch(c, device)
    times = common.time_interleaved(fns, FLAGS.warmup, FLAGS.repeats)
    for label, c in configs.items():
      row = {"name": label, "torch_step_s": times[keys[label]][0], "torch_step_min_s": times[keys[label]][1],
             "dtype": c.model.dtype, "torch_device": f"{device} ({kind})"}
      rows.append(finish_row(row, c.train.batch_size * c.data.window, None, peak_of(c.model.dtype, kind)))
    del fns
  print()
  common.print_table(rows, columns_for(rows, torch.device(device).type != "cpu"))
  if FLAGS.json:
    common.write_json(FLAGS.json, rows, platform="cpu" if kind == "cpu" else "gpu", device_kind=kind,
                      torch_version=torch.__version__)


def main(argv):
  del argv
  if FLAGS.merge:
    return run_merge()
  variants = [(conv, dtype) for conv in FLAGS.conv for dtype in FLAGS.dtype]
  if not FLAGS.sr_jax:
    return run_torch_only(variants)
  platform, kind = jax.default_backend(), jax.devices()[0].device_kind
  device = torch_device(FLAGS.torch_device, platform == "gpu") if FLAGS.torch else "cpu"
  matmuls, matmul_flops = matmul_round(FLAGS.roofline_repeats, FLAGS.roofline_n, FLAGS.roofline_dtype)
  roofline = matmul_flops / common.time_fn(matmuls, warmup=1, repeats=3)[0]
  short = {"float32": "f32", "bfloat16": "bf16"}[FLAGS.roofline_dtype]
  rows = [{"name": f"matmul {FLAGS.roofline_n}^2 {short} (roofline)", "gflops_per_s": roofline / 1e9,
           "roofline_fraction": 1.0, "load_1m": os.getloadavg()[0]}]
  if peak_of(FLAGS.roofline_dtype, kind):
    rows[0]["peak_tflops"] = peak_of(FLAGS.roofline_dtype, kind)
  derive(rows[0])
  print(f"{FLAGS.roofline_dtype} matmul roofline: {roofline / 1e9:.1f} GFLOP/s on {common.machine()}"
        + ("" if platform == "cpu" else f", {kind}"), flush=True)
  for name in FLAGS.configs:
    fns = {"roofline": matmuls}  # re-measured in every round: the load of a shared machine changes
    found, configs, torch_keys = {}, {}, {}
    for conv, dtype in variants:
      c = get_config(name, dtype or None, FLAGS.batch)
      label = variant_label(name, c, conv, dtype)
      with conv_impl(conv):
        fns[label], found[label] = prepare_sr_jax(c)
      configs[label] = c
      print(f"{label}: compiled in {found[label]['compile_s']:.0f} s", flush=True)
    if FLAGS.torch:
      for label, c in configs.items():  # one torch step per model dtype (bf16 autocast for bfloat16)
        key = f"torch {c.model.dtype}"
        if key not in fns:
          step = prepare_torch(c, device)
          if step is None:
            break
          fns[key] = step
        torch_keys[label] = key
    times = common.time_interleaved(fns, FLAGS.warmup, FLAGS.repeats)  # all see the same machine load
    roofline = matmul_flops / times["roofline"][0]
    for (conv, dtype), (label, info) in zip(variants, found.items()):
      c = configs[label]
      row = {"name": label, "step_s": times[label][0], "step_min_s": times[label][1], **info,
             "roofline_gflops_per_s": roofline / 1e9, "dtype": c.model.dtype}
      if label in torch_keys:
        row["torch_step_s"], row["torch_step_min_s"] = times[torch_keys[label]]
        row["torch_device"] = device
      peak = peak_of(c.model.dtype, kind)
      rows.append(finish_row(row, c.train.batch_size * c.data.window, roofline, peak))
      if FLAGS.phases:
        with conv_impl(conv):
          for phase in time_phases(get_config(name, dtype or None, FLAGS.batch), FLAGS.warmup, FLAGS.repeats):
            phase = {**phase, "name": f"  {label}: {phase['name']}", "dtype": c.model.dtype}
            rows.append(finish_row(phase, c.train.batch_size * c.data.window, roofline, peak))
    del fns
  print()
  common.print_table(rows, columns_for(rows, platform != "cpu"))
  print(f"peak RSS {common.peak_rss_mb():,.0f} MiB; targets: speedup_vs_torch >= 1.5, roofline_fraction >= 0.75")
  if FLAGS.json:
    common.write_json(FLAGS.json, rows, platform=platform, device_kind=kind, jax_version=jax.__version__)


if __name__ == "__main__":
  define_flags()
  app.run(main)
