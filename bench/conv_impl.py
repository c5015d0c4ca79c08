r"""model.conv_impl: is "fft" (big stride-1 kernels by FFT) faster than "xla" (lax.conv_general_dilated)?

  python bench/conv_impl.py [--configs=piano_r4_16k,quickstart --batch=16 --repeats=5 --json=FILE] [--nolayers]

For each config (piano_r4_16k = configs/piano_r4_16k.py: depth 8, width 1/8, window 2048; quickstart =
configs/quickstart.py; or any configs/NAME.py), the generator is built twice, with
model.conv_impl "xla" and "fft", from the SAME params (initialised once; zero_init_final off, so that every layer
matters for the errors), on --batch windows of noise, eval mode:
  forward           jit(G(x))
  forward+backward  jit(grad of mean((G(x) - target)^2) w.r.t. the params)
Both implementations are compiled first, then called alternately in every round (the same machine load), after one
untimed call each. Columns:
  time_ms / median_ms   min / median milliseconds of --repeats calls
  gflop                 XLA's cost_analysis() FLOPs of the xla program, for both rows (the same work; the fft
                        program's own count is that of the cheaper FFT algorithm)
  gflops_per_s          gflop / time_ms: the direct-convolution FLOP/s each implementation delivers
  speedup               the xla row's time_ms / this row's
  max_err               max |fft - xla| / max |xla| over the output's residual G(x) - x (forward) or over every
                        gradient leaf (forward+backward, the worst leaf)
With --layers (default), a second table times every distinct stride-1 conv of the first config's generator alone
(lax.conv_general_dilated vs sr_jax.models.fftconv.fft_conv1d, same shapes, forward and forward+backward w.r.t. input
and kernel): what FFT_MIN_KERNEL in sr_jax/models/layers.py is chosen from.

Measured with piano_r4_16k at depth 4 (its levels 5-8 have kernel 9, which stays on XLA's convs; 2 CPU cores shared
with a training run, batch 16, min of 5; max_err <= 8.4e-7 everywhere):
  piano_r4_16k forward 200 -> 107 ms (1.86x), forward+backward 616 -> 297 ms (2.07x)
  quickstart   forward 800 -> 393 ms (2.04x), forward+backward 2397 -> 1071 ms (2.24x)
  per layer: k 65 4.2x / 4.6x, k 33 2.9x / 3.3x, k 17 1.9x / 1.9x (forward / forward+backward), k 9 1.0x / 1.2x
The kernel's spectrum costs the same at any batch, so the gain shrinks with the batch: piano_r4_16k forward+backward
1.68x at batch 8, 1.30x at 4, 0.82x at 2 (forward 1.46x, 1.02x, 0.64x).
"""

from __future__ import annotations

import importlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from jax import lax  # noqa: E402

from bench import common  # noqa: E402
from sr_jax.errors import UserError, exit_on_user_error  # noqa: E402
from sr_jax.models import build_generator  # noqa: E402
from sr_jax.models.fftconv import FFTConv, fft_conv1d  # noqa: E402

FLAGS = flags.FLAGS
IMPLS = ("xla", "fft")
COLUMNS = ["time_ms", "median_ms", "gflop", "gflops_per_s", "speedup", "max_err"]


def define_flags() -> None:
  """The flags, defined only when run as a script (tests import several bench scripts at once)."""
  flags.DEFINE_list("configs", ["piano_r4_16k", "quickstart"], "configs/NAME.py to time.")
  flags.DEFINE_integer("batch", 16, "Windows per call.")
  flags.DEFINE_integer("repeats", 5, "Timed calls per implementation (alternating).")
  flags.DEFINE_bool("layers", True, "Also time each stride-1 conv of the first config's generator alone.")
  flags.DEFINE_string("json", None, "Also write the tables as JSON here.")


def get_config(name: str, impl: str, arg: str | None = None):
  """configs/NAME.py with model.conv_impl = impl and zero_init_final off."""
  try:
    module = importlib.import_module(f"configs.{name}")
  except ModuleNotFoundError as e:
    raise UserError(f"no config configs/{name}.py") from e
  config = module.get_config(arg)
  config.model.conv_impl = impl
  config.model.zero_init_final = False
  return config


def flops_of(compiled) -> float:
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    return float(sum(c.get("flops", 0.0) for c in cost))
  return float(cost.get("flops", 0.0))


def rel_err(a, b) -> float:
  """max |a - b| / max |b| over the leaves of two trees (the worst leaf)."""
  errs = jax.tree.leaves(jax.tree.map(
      lambda u, v: float(np.max(np.abs(np.asarray(u, np.float64) - np.asarray(v, np.float64)))
                         / max(float(np.max(np.abs(np.asarray(v, np.float64)))), 1e-30)), a, b))
  return max(errs)


def programs(config_name: str, batch: int, arg: str | None = None):
  """{impl: (forward, forward+backward)} compiled, the shared (params, x, target), and the config."""
  configs = {impl: get_config(config_name, impl, arg) for impl in IMPLS}
  window = configs["xla"].data.window
  rng = np.random.default_rng(0)
  x = jnp.asarray(0.1 * rng.standard_normal((batch, window, 1)), jnp.float32)
  target = jnp.asarray(0.1 * rng.standard_normal((batch, window, 1)), jnp.float32)
  params = jax.jit(build_generator(configs["xla"]).init)(jax.random.key(0), x)["params"]
  out = {}
  for impl, config in configs.items():
    gen = build_generator(config)

    def forward(p, x, gen=gen):
      return gen.apply({"params": p}, x)

    def loss(p, x, t, gen=gen):
      return jnp.mean((gen.apply({"params": p}, x) - t) ** 2)

    out[impl] = (jax.jit(forward).lower(params, x).compile(),
                 jax.jit(jax.grad(loss)).lower(params, x, target).compile())
  return out, (params, x, target), configs["xla"]


def measure_config(config_name: str, batch: int, repeats: int, arg: str | None = None) -> list[dict]:
  compiled, (params, x, target), config = programs(config_name, batch, arg)
  m = config.model
  label = f"{config_name} (d{m.depth} w{m.width:g} W{config.data.window} b{batch})"
  rows = []
  for i, what in enumerate(["forward", "forward+backward"]):
    args = (params, x) if i == 0 else (params, x, target)
    fns = {impl: (lambda fn=compiled[impl][i]: jax.block_until_ready(fn(*args))) for impl in IMPLS}
    results = {impl: fn() for impl, fn in fns.items()}
    if i == 0:  # the residual G(x) - x: the skip would hide the network's error
      err = rel_err(results["fft"] - x, results["xla"] - x)
    else:
      err = rel_err(results["fft"], results["xla"])
    times = common.time_interleaved(fns, warmup=1, repeats=repeats)
    gflop = flops_of(compiled["xla"][i]) / 1e9
    for impl in IMPLS:
      median_s, min_s = times[impl]
      rows.append({"name": f"{label} {what} {impl}", "config": config_name, "pass": what, "impl": impl,
                   "time_ms": 1e3 * min_s, "median_ms": 1e3 * median_s, "gflop": gflop,
                   "gflops_per_s": gflop / min_s, "speedup": times["xla"][1] / min_s,
                   "max_err": err if impl == "fft" else None})
  return rows


def stride1_convs(config_name: str, batch: int, arg: str | None = None) -> list[dict]:
  """Every distinct stride-1 conv of the generator: {name, input shape, kernel, features}, from an eval_shape trace."""
  config = get_config(config_name, "xla", arg)
  gen = build_generator(config)
  x = jax.ShapeDtypeStruct((batch, config.data.window, 1), jnp.float32)
  found = {}

  def record(next_fun, args, kwargs, context):
    mdl = context.module
    if context.method_name == "__call__" and isinstance(mdl, (nn.Conv, FFTConv)):
      stride = getattr(mdl, "strides", None) or (1,)
      stride = stride[0] if isinstance(stride, (tuple, list)) else stride
      k = mdl.kernel_size[0] if isinstance(mdl, nn.Conv) else mdl.kernel_size
      if stride == 1:
        key = (tuple(args[0].shape), k, mdl.features)
        found.setdefault(key, "/".join(p for p in mdl.scope.path if p not in ("block", "conv")))
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(record):
    jax.eval_shape(lambda x: gen.init_with_output(jax.random.key(0), x), x)
  return [{"name": name, "shape": shape, "kernel": k, "features": f} for (shape, k, f), name in found.items()]


def xla_conv(x, kernel):
  p = kernel.shape[0] // 2
  return lax.conv_general_dilated(x, kernel, (1,), [(p, p)], dimension_numbers=("NWC", "WIO", "NWC"))


def measure_layers(config_name: str, batch: int, repeats: int, arg: str | None = None) -> list[dict]:
  rows = []
  rng = np.random.default_rng(0)
  impls = {"xla": xla_conv, "fft": fft_conv1d}
  for layer in stride1_convs(config_name, batch, arg):
    (n, w, cin), k, cout = layer["shape"], layer["kernel"], layer["features"]
    x = jnp.asarray(rng.standard_normal((n, w, cin)), jnp.float32)
    kernel = jnp.asarray(rng.standard_normal((k, cin, cout)) / np.sqrt(k * cin), jnp.float32)
    label = f"{layer['name']} k{k} W{w} {cin}->{cout}"
    for what in ["forward", "forward+backward"]:
      if what == "forward":
        jitted = {impl: jax.jit(f).lower(x, kernel).compile() for impl, f in impls.items()}
      else:
        jitted = {impl: jax.jit(jax.grad(lambda x, kernel, f=f: jnp.sum(f(x, kernel) ** 2), argnums=(0, 1)))
                  .lower(x, kernel).compile() for impl, f in impls.items()}
      fns = {impl: (lambda fn=fn: jax.block_until_ready(fn(x, kernel))) for impl, fn in jitted.items()}
      results = {impl: fn() for impl, fn in fns.items()}
      err = rel_err(results["fft"], results["xla"])
      times = common.time_interleaved(fns, warmup=1, repeats=repeats)
      gflop = flops_of(jitted["xla"]) / 1e9
      for impl in IMPLS:
        median_s, min_s = times[impl]
        rows.append({"name": f"{label} {what} {impl}", "layer": layer["name"], "kernel": k, "pass": what,
                     "impl": impl, "time_ms": 1e3 * min_s, "median_ms": 1e3 * median_s, "gflop": gflop,
                     "gflops_per_s": gflop / min_s, "speedup": times["xla"][1] / min_s,
                     "max_err": err if impl == "fft" else None})
  return rows


def summary_lines(rows: list[dict]) -> list[str]:
  """One line per (config, pass): fft's speedup over xla and its error."""
  return [f"{r['config']} {r['pass']}: fft {r['speedup']:.2f}x xla ({r['time_ms']:.0f} ms vs "
          f"{r['time_ms'] * r['speedup']:.0f} ms), max rel err {r['max_err']:.1e}"
          for r in rows if r["impl"] == "fft"]


@exit_on_user_error
def main(argv):
  del argv
  if not FLAGS.configs:
    raise UserError("--configs is empty")
  print(f"model.conv_impl xla vs fft: generator forward / forward+backward, batch {FLAGS.batch}, min of "
        f"{FLAGS.repeats} alternating calls; {jax.default_backend()}, {common.machine()}", flush=True)
  rows = []
  for name in FLAGS.configs:
    rows += measure_config(name, FLAGS.batch, FLAGS.repeats)
  common.print_table(rows, COLUMNS)
  print("\n".join(summary_lines(rows)), flush=True)
  layer_rows = []
  if FLAGS.layers:
    print(f"\nstride-1 convs of {FLAGS.configs[0]}'s generator alone (batch {FLAGS.batch}):", flush=True)
    layer_rows = measure_layers(FLAGS.configs[0], FLAGS.batch, FLAGS.repeats)
    common.print_table(layer_rows, COLUMNS)
  if FLAGS.json:
    common.write_json(FLAGS.json, rows, layers=layer_rows, batch=FLAGS.batch, repeats=FLAGS.repeats,
                      backend=jax.default_backend())


if __name__ == "__main__":
  define_flags()
  app.run(main)
