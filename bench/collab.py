r"""What do K steps of collaborative sampling cost, in time and memory, against one forward + backward?

  python bench/collab.py [--k=0,1,10,100 --batch=16 --repeats=3 --json=FILE]
                         [--depth=4 --width=0.25 --window=2048 --layer=2 --disc=global|patch]

Networks: the generator of configs/quickstart.py (or --depth, --width, --window) and its discriminator
(loss.lambda_adv > 0; config.disc), untrained (initialised as training initialises them); --batch windows of noise.
The sampler is sr_jax.sampling.CollaborativeSampler with eta = 1.0, so that no window stops early and exactly K
iterations run (checked: column `iterations`). Reference rows:
  G forward          one jitted generator forward G(x), eval mode
  forward+backward   one jitted G forward to the activation a_l after up block l (--layer), the rest of G and D,
                     and the gradient of the discriminator loss sum(-log D(y)) w.r.t. a_l (plain jax.value_and_grad,
                     no loop): the work of K = 0; each iteration does less (it starts at a_l)
Rows K = k: the sampler's program with K compiled in as a constant (one program per K), timed:
  time_s      median seconds of one call on the batch (`--repeats` calls after one untimed call)
  fwd_bwd_s   the forward+backward row's time_s
  ratio       time_s / fwd_bwd_s;  bound = K + 1 (the first gradient, then K iterations)
  temp_mb     temp_size_in_bytes of the compiled program's memory_analysis(), MiB (deterministic)
  rss_mb      the process's peak RSS after running it (all programs are compiled first, then run in order of K, so
              growth here is execution memory)
Targets: K iterations cost <= (K + 1) x (one forward + backward) (checked with 5% for timing noise: K = 0 is the
same work as the forward+backward row); memory flat in K (temp_mb the same for every K, no peak RSS growth from
the smallest to the largest K).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from bench import common  # noqa: E402
from sr_jax.errors import UserError, exit_on_user_error  # noqa: E402
from sr_jax.sampling.collaborative import CollaborativeSampler, window_scores  # noqa: E402
from sr_jax.train import state as state_lib  # noqa: E402

FLAGS = flags.FLAGS
COLUMNS = ["k", "iterations", "time_s", "fwd_bwd_s", "ratio", "bound", "temp_mb", "rss_mb"]
ETA = 1.0  # D(y) < 1 for every window: no early stop
TOLERANCE = 0.05  # timing noise allowed above the bound (K = 0 is the forward+backward program plus an empty loop)


def define_flags() -> None:
  """The flags, defined only when run as a script (tests import this module beside other bench scripts)."""
  flags.DEFINE_list("k", ["0", "1", "10", "100"], "Numbers of iterations K.")
  flags.DEFINE_integer("batch", 16, "Windows per call.")
  flags.DEFINE_integer("repeats", 3, "Timed calls per row.")
  flags.DEFINE_integer("depth", None, "Generator depth (default: quickstart's).")
  flags.DEFINE_float("width", None, "Generator width (default: quickstart's).")
  flags.DEFINE_integer("window", None, "Window (default: quickstart's).")
  flags.DEFINE_integer("layer", None, "Up block refined (default: config.collab.layer).")
  flags.DEFINE_enum("disc", None, ["global", "patch"], "Discriminator kind (default: config.disc.kind).")
  flags.DEFINE_string("json", None, "Also write the table as JSON here.")


def make_config(depth=None, width=None, window=None, layer=None, disc=None):
  """configs/quickstart.py with a discriminator and the given overrides (None: the config's)."""
  from configs import quickstart  # noqa: PLC0415

  overrides = {"depth": depth, "width": width, "window": window, "collab.layer": layer, "disc.kind": disc}
  arg = ",".join(f"{k}={v}" for k, v in overrides.items() if v is not None)
  config = quickstart.get_config(",".join(filter(None, ["loss.lambda_adv=0.01", arg])))
  config.data.stride = min(config.data.stride, config.data.window)
  return config


def networks(config, batch: int, seed: int = 0):
  """(G, D, generator params, discriminator variables, x (batch, window, 1)): initialised as training does."""
  models = state_lib.build_models(config)
  state = jax.jit(lambda: state_lib.init_state(config, models, state_lib.make_optimizers(config)))()
  disc_vars = {"params": state.disc.params, "batch_stats": state.disc.batch_stats}
  x = 0.1 * np.random.default_rng(seed).standard_normal((batch, config.data.window, 1))
  return models.gen, models.disc, state.gen.params, disc_vars, jnp.asarray(x, jnp.float32)


def forward_backward(gen, disc, layer: int):
  """fn(gen_params, disc_vars, x) -> (sum of -log D(y), its gradient w.r.t. a_l): one iteration's unit of work."""

  def fn(gen_params, disc_vars, x):
    v = {"params": gen_params}
    h, skips = gen.apply(v, x, method=gen.encode)

    def loss(a):
      return jnp.sum(window_scores(disc, disc_vars, gen.apply(v, a, skips, start=layer, method=gen.decode), x)[0])

    return jax.value_and_grad(loss)(gen.apply(v, h, skips, stop=layer, method=gen.decode))

  return fn


def ratio_and_bound(k: int, time_s: float, fwd_bwd_s: float) -> dict:
  """{ratio: time / (forward + backward), bound: K + 1, within: ratio <= bound, up to TOLERANCE of timing noise}."""
  ratio = time_s / fwd_bwd_s
  return {"ratio": ratio, "bound": k + 1, "within": ratio <= (k + 1) * (1 + TOLERANCE)}


def mib(nbytes: float) -> float:
  return nbytes / 2 ** 20


def measure(config, ks, batch: int, repeats: int = 3) -> list[dict]:
  """The reference rows and one row per K (see the module docstring)."""
  gen, disc, gen_params, disc_vars, x = networks(config, batch)
  args = (gen_params, disc_vars, x)
  layer = config.collab.layer
  sampler = CollaborativeSampler(gen, disc, eta=ETA, max_steps=max(ks), layer=layer,
                                 step_size=config.collab.step_size)
  eta, _, step = sampler.knobs()
  compiled = {"G forward": jax.jit(lambda p, _, x: gen.apply({"params": p}, x)),
              "forward+backward": jax.jit(forward_backward(gen, disc, layer))}
  compiled.update({k: jax.jit(lambda p, d, x, k=k: sampler.pure(p, d, x, eta, np.int32(k), step)) for k in ks})
  compiled = {key: fn.lower(*args).compile() for key, fn in compiled.items()}  # all compiled before any runs
  rows, fwd_bwd_s = [], None
  for key, fn in compiled.items():
    out = jax.block_until_ready(fn(*args))
    time_s, _ = common.time_fn(lambda fn=fn: jax.block_until_ready(fn(*args)), warmup=0, repeats=repeats)
    row = {"name": key if isinstance(key, str) else f"K={key}", "time_s": time_s,
           "temp_mb": mib(fn.memory_analysis().temp_size_in_bytes), "rss_mb": common.peak_rss_mb()}
    if key == "forward+backward":
      fwd_bwd_s = time_s
    if not isinstance(key, str):
      ratio = ratio_and_bound(key, time_s, fwd_bwd_s)
      row.update(k=key, iterations=int(out[1]["iterations"]), fwd_bwd_s=fwd_bwd_s, ratio=ratio["ratio"],
                 bound=ratio["bound"], within=ratio["within"])
    rows.append(row)
  return rows


def target_lines(rows: list[dict]) -> list[str]:
  ks = [r for r in rows if "k" in r]
  slow = [f"K={r['k']} ({r['ratio']:.2f} > {r['bound']})" for r in ks if not r["within"]]
  temps = sorted({r["temp_mb"] for r in ks})
  growth = ks[-1]["rss_mb"] - ks[0]["rss_mb"]
  return [f"time: {'OK, every K within its bound' if not slow else 'ABOVE the bound for ' + ', '.join(slow)}",
          f"memory: temp_mb {'the same for every K' if len(temps) == 1 else 'NOT flat: ' + str(temps)} "
          f"({temps[0]:.2f} MiB); peak RSS {growth:+.1f} MiB from K={ks[0]['k']} to K={ks[-1]['k']}"]


def parse_ks(values: list[str]) -> list[int]:
  try:
    ks = sorted({int(v) for v in values})
  except ValueError:
    ks = []
  if not ks or ks[0] < 0:
    raise UserError(f"--k takes whole numbers >= 0, got {','.join(values)!r}")
  return ks


@exit_on_user_error
def main(argv):
  del argv
  ks = parse_ks(FLAGS.k)
  config = make_config(FLAGS.depth, FLAGS.width, FLAGS.window, FLAGS.layer, FLAGS.disc)
  m = config.model
  print(f"collaborative sampling: generator depth {m.depth}, width {m.width}, window {config.data.window}, "
        f"disc {config.disc.kind}, layer {config.collab.layer}, batch {FLAGS.batch}, eta {ETA} (no early stop); "
        f"{common.machine()}", flush=True)
  rows = measure(config, ks, FLAGS.batch, FLAGS.repeats)
  common.print_table(rows, COLUMNS)
  print("targets: K iterations cost <= (K + 1) x (one forward + backward); memory flat in K")
  print("\n".join(f"  {line}" for line in target_lines(rows)))
  if FLAGS.json:
    common.write_json(FLAGS.json, rows, depth=m.depth, width=m.width, window=config.data.window,
                      batch=FLAGS.batch, layer=config.collab.layer, disc=config.disc.kind)


if __name__ == "__main__":
  define_flags()
  app.run(main)
