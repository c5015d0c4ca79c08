r"""How fast is one CPU train step, against the machine's matmul FLOP/s and against a PyTorch implementation?

  python bench/train_step.py [--configs=l2_d8,gan_ae_d8,quickstart --repeats=3 --warmup=1 --json=FILE]
                             [--notorch] [--phases] [--batch=4]
                             [--conv=lax,s2d] [--dtype=,bfloat16]     # variants, timed side by side

For each config, the train step is built exactly as training builds it (loop.create_state + loop.compile_steps on
sharding.make_mesh(config.mesh)), compiled once, and run on random batches. Columns:
  step_s / step_min_s   median / min seconds of a step after `--warmup` untimed steps
  samples_per_s         audio samples per second (batch * window / step_s)
  gflop                 FLOPs of one step, from XLA's cost_analysis() of the compiled step, in 1e9
  gflops_per_s          gflop / step_s
  roofline_fraction     gflops_per_s / the float32 matmul FLOP/s measured in the same process (jnp.dot of two
                        2048x2048 float32 matrices, jitted: 2 * 2048^3 / time), in rounds of `--roofline_repeats`
                        matmuls that alternate with the timed steps (roofline_gflops_per_s: the median round)
  torch_step_s          the same step in PyTorch (bench/torch_reference.py, NCW layout, all CPU threads); its
                        steps alternate with sr_jax's so that both see the same machine load
  speedup_vs_torch      torch_step_s / step_s (targets: >= 1.5, and roofline_fraction >= 0.75)
With --phases, extra rows time the generator's forward alone and forward + backward (jitted, train mode).
Variants (--conv x --dtype) and the torch step of a config alternate in every timed round, with the matmul rounds,
so that they all see the same load.

Configs: l2_d8 = configs/default.py (depth 8, window 8192, batch 16, L2 only); gan_ae_d8 = the same with the
global discriminator and the autoencoder feature loss (train.ae_checkpoint set, so the step is the generator phase
only, as after the autoencoder phase); quickstart = configs/quickstart.py (depth 4, width 1/4, window 2048, L2 +
MR-STFT). Depth-8 steps take many seconds on a 2-core CPU. The 1-minute load average is reported with each row:
other processes on the machine slow every number down.
"""

import contextlib
import os
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
from configs import default, quickstart  # noqa: E402
from sr_jax.models import layers  # noqa: E402
from sr_jax.train import loop, sharding, state as state_lib  # noqa: E402

flags.DEFINE_list("configs", ["l2_d8", "gan_ae_d8", "quickstart"], "Configs to time (see the docstring).")
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
FLAGS = flags.FLAGS

COLUMNS = ["step_s", "step_min_s", "samples_per_s", "gflop", "gflops_per_s", "roofline_gflops_per_s",
           "roofline_fraction", "torch_step_s", "speedup_vs_torch", "load_1m"]


def _gan_ae(arg=None):
  c = default.get_config(arg)
  c.loss.lambda_adv, c.loss.lambda_feature = 1e-3, 1.0
  c.train.ae_checkpoint = "unused-by-the-bench"  # skips the autoencoder phase (create_state does not load it)
  return c


CONFIGS = {"l2_d8": default.get_config, "gan_ae_d8": _gan_ae, "quickstart": quickstart.get_config}


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

  def conv(features, kernel, stride, dtype, name=None, zero_init=False):
    if stride != 2 or kernel % 2 == 0:
      return original(features, kernel, stride, dtype, name=name, zero_init=zero_init)
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


def matmul_round(repeats: int, n: int = 2048) -> tuple[Callable[[], None], float]:
  """(a callable running `repeats` jitted n x n float32 matmuls, the FLOPs it does)."""
  a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
  b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32)
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
  compiled = train.lower(holder["state"], batch).compile()
  compile_s = time.perf_counter() - start

  def step():
    holder["state"], metrics = compiled(holder["state"], batch)
    jax.block_until_ready(metrics)

  return step, {"flops": flops_of(compiled), "compile_s": compile_s}


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
    compiled = jax.jit(fn).lower(params, x, y).compile()
    median, best = common.time_fn(lambda: jax.block_until_ready(compiled(params, x, y)), warmup, repeats)
    rows.append({"name": what, "step_s": median, "step_min_s": best, "flops": flops_of(compiled)})
  return rows


def prepare_torch(config):
  """The PyTorch reference step on a random batch (a callable), or None when torch is not installed."""
  try:
    import torch  # noqa: PLC0415
  except ImportError:
    return None
  from bench import torch_reference  # noqa: PLC0415

  torch.set_num_threads(os.cpu_count())
  torch.manual_seed(0)
  step, _ = torch_reference.make_step(config)
  data = random_batch(config)
  x, y = (torch.from_numpy(data[k].transpose(0, 2, 1).copy()) for k in ("input", "target"))
  return lambda: step(x, y)


def finish_row(row: dict, samples: int, roofline: float) -> dict:
  """Adds the derived columns (samples/s, GFLOP, GFLOP/s, roofline fraction, speed-up) to a row."""
  row["samples_per_s"] = samples / row["step_s"]
  row["gflop"] = row["flops"] / 1e9
  row["gflops_per_s"] = row["flops"] / row["step_s"] / 1e9
  row["roofline_fraction"] = row["flops"] / row["step_s"] / roofline
  if row.get("torch_step_s"):
    row["speedup_vs_torch"] = row["torch_step_s"] / row["step_s"]
  row["load_1m"] = os.getloadavg()[0]
  return row


def main(argv):
  del argv
  variants = [(conv, dtype) for conv in FLAGS.conv for dtype in FLAGS.dtype]
  matmuls, matmul_flops = matmul_round(FLAGS.roofline_repeats)
  roofline = matmul_flops / common.time_fn(matmuls, warmup=1, repeats=3)[0]
  rows = [{"name": "matmul 2048^2 f32 (roofline)", "gflops_per_s": roofline / 1e9, "roofline_fraction": 1.0,
           "load_1m": os.getloadavg()[0]}]
  print(f"float32 matmul roofline: {roofline / 1e9:.1f} GFLOP/s on {common.machine()}", flush=True)
  for name in FLAGS.configs:
    fns = {"roofline": matmuls}  # re-measured in every round: the load of a shared machine changes
    found = {}
    for conv, dtype in variants:
      c = get_config(name, dtype or None, FLAGS.batch)
      label = f"{name} (d{c.model.depth} w{c.model.width:g} win{c.data.window} b{c.train.batch_size}" + \
          (f" {c.model.dtype}" if dtype else "") + (f" {conv})" if conv != "lax" else ")")
      with conv_impl(conv):
        fns[label], found[label] = prepare_sr_jax(c)
      print(f"{label}: compiled in {found[label]['compile_s']:.0f} s", flush=True)
    torch_step = prepare_torch(c) if FLAGS.torch else None
    if torch_step is not None:
      fns["torch"] = torch_step
    times = common.time_interleaved(fns, FLAGS.warmup, FLAGS.repeats)  # all see the same machine load
    roofline = matmul_flops / times["roofline"][0]
    for (conv, dtype), (label, info) in zip(variants, found.items()):
      row = {"name": label, "step_s": times[label][0], "step_min_s": times[label][1], **info,
             "roofline_gflops_per_s": roofline / 1e9}
      if torch_step is not None:
        row["torch_step_s"], row["torch_step_min_s"] = times["torch"]
      rows.append(finish_row(row, c.train.batch_size * c.data.window, roofline))
      if FLAGS.phases:
        with conv_impl(conv):
          for phase in time_phases(get_config(name, dtype or None, FLAGS.batch), FLAGS.warmup, FLAGS.repeats):
            phase = {**phase, "name": f"  {label}: {phase['name']}"}
            rows.append(finish_row(phase, c.train.batch_size * c.data.window, roofline))
    del fns, torch_step
  print()
  common.print_table(rows, COLUMNS)
  print(f"peak RSS {common.peak_rss_mb():,.0f} MiB; targets: speedup_vs_torch >= 1.5, roofline_fraction >= 0.75")
  if FLAGS.json:
    common.write_json(FLAGS.json, rows)


if __name__ == "__main__":
  app.run(main)
