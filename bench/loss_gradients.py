r"""Which loss term steers a trained generator? Gradient norms of its terms with respect to the generator's weights.

  python bench/loss_gradients.py --checkpoint=runs/music_16k/plain --data=CORPUS/valid --chain="lowpass soxr 2000"
                                 [--windows=16 --every=7]

One window (the model's training window, from second 1 of the file) of every `--every`-th clean file (sorted), up to
`--windows`, degraded by `--chain` (seed: the window's index) and enhanced in one batch. For each term of the
model's config.loss that weighs something (the reconstruction loss with its snr_max_db; the multi-resolution STFT
loss; the spectral corridor) and for the corridor at the settings `--corridor` names even where the config leaves it
out: its value, the norm of its gradient with respect to all generator weights (unweighted: multiply by the term's
lambda for its pull in training) and the cosine between that gradient and the reconstruction term's. A term whose
gradient is large yet changes nothing over training pulls in directions that cancel from batch to batch.
"""

from __future__ import annotations

import glob
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from bench import common  # noqa: E402
from sr_jax import losses  # noqa: E402
from sr_jax.data import audio as audio_lib  # noqa: E402
from sr_jax.data import degrade  # noqa: E402
from sr_jax.errors import UserError, exit_on_user_error  # noqa: E402

flags.DEFINE_string("checkpoint", None, "The model: a run's workdir or a checkpoint step (with its config).")
flags.DEFINE_string("data", None, "Folder of clean audio (its .wav files, not recursive).")
flags.DEFINE_string("chain", None, "Degradation chain (default: the model's config.data.chain).")
flags.DEFINE_integer("windows", 16, "At most this many windows.")
flags.DEFINE_integer("every", 7, "Take every this-many-th file.")
flags.DEFINE_string("corridor", "-24,16,6", "Corridor always measured: floor_db,pool,ceiling_db.")
FLAGS = flags.FLAGS


def batch(folder: str, chain: str, window: int, rate: int, count: int, every: int) -> tuple[np.ndarray, np.ndarray]:
  """(inputs, targets), each (N, window, 1) float32."""
  xs, ys = [], []
  for path in sorted(glob.glob(os.path.join(folder, "*.wav")))[::every]:
    clean, _ = audio_lib.read(path, rate=rate, mono=True)
    clean = clean[rate:rate + window]
    if len(clean) < window:
      continue
    x, y, _ = degrade.degrade(clean, rate, chain, seed=len(xs))
    xs.append(np.asarray(x, np.float32)[:window])
    ys.append(np.asarray(y, np.float32)[:window])
    if len(xs) == count:
      break
  if not xs:
    raise UserError(f"--data={folder}: no .wav file of at least 1 s + one window ({window} samples)")
  return np.stack(xs)[..., None], np.stack(ys)[..., None]


def corridor_settings(text: str) -> tuple[float, int, float]:
  """(floor_db, pool, ceiling_db) of --corridor 'FLOOR,POOL,CEILING', else a UserError."""
  parts = text.split(",")
  try:
    if len(parts) != 3:
      raise ValueError
    return float(parts[0]), int(parts[1]), float(parts[2])
  except ValueError:
    raise UserError(f"--corridor must be FLOOR_DB,POOL,CEILING_DB (e.g. -24,16,6), got {text!r}") from None


def term_rows(apply, params, terms: dict) -> list[dict]:
  """One row per term (name -> loss of the output): its value at `params`, the norm of its gradient with respect to
  all of `params` and the cosine between that gradient and the first term's."""
  rows, first = [], None
  for name, term in terms.items():
    value, grad = jax.value_and_grad(lambda p: term(apply(p)))(params)
    g = jnp.concatenate([jnp.ravel(v) for v in jax.tree.leaves(grad)])
    first = g if first is None else first
    norm = float(jnp.linalg.norm(g))
    cos = float(jnp.dot(g, first) / (norm * jnp.linalg.norm(first) + 1e-30))
    rows.append({"name": name, "value": float(value), "grad_norm": norm, "cos_with_reconstruction": cos})
  return rows


def main(argv):
  del argv
  from sr_jax.models import build_generator  # noqa: PLC0415
  from sr_jax.train.checkpoint import find_step_dir, restore_for_inference  # noqa: PLC0415

  config, nets = restore_for_inference(find_step_dir(FLAGS.checkpoint, None), parts=("gen",))
  gen, params, lc = build_generator(config), nets["gen"]["params"], config.loss
  chain = FLAGS.chain or config.data.chain
  x, y = (jnp.asarray(a) for a in batch(FLAGS.data, chain, config.data.window, config.data.rate, FLAGS.windows,
                                          FLAGS.every))
  sizes, hops = tuple(lc.stft_fft_sizes), tuple(lc.stft_hop_sizes)
  floor, pool, ceiling = corridor_settings(FLAGS.corridor)
  losses.check_corridor_settings(floor, ceiling, pool, sizes, names=tuple(f"--corridor {n}" for n in (
      "floor_db", "ceiling_db", "pool")))
  terms = {f"reconstruction ({lc.reconstruction})":
           lambda out: losses.reconstruction_loss(y, out, lc.reconstruction, lc.snr_max_db)}
  if lc.lambda_stft > 0:
    terms[f"stft (lambda {lc.lambda_stft:g})"] = lambda out: losses.multi_resolution_stft_loss(
        y, out, sizes, hops, lc.stft_sc_weight, lc.stft_mag_weight)
  if lc.lambda_corridor > 0:
    terms[f"corridor (lambda {lc.lambda_corridor:g})"] = lambda out: losses.spectral_corridor_loss(
        y, out, lc.corridor_floor_db, sizes, hops, lc.corridor_pool, lc.corridor_ceiling_db)
  terms[f"corridor {floor:g} dB, pool {pool}, ceiling {ceiling:g}"] = lambda out: losses.spectral_corridor_loss(
      y, out, floor, sizes, hops, pool, ceiling)
  rows = term_rows(lambda p: gen.apply({"params": p}, x), params, terms)
  print(f"{FLAGS.checkpoint}: {len(x)} windows of {FLAGS.data}, chain {chain!r} ({common.machine()})")
  common.print_table(rows, ["value", "grad_norm", "cos_with_reconstruction"])


if __name__ == "__main__":
  flags.mark_flags_as_required(["checkpoint", "data"])
  app.run(exit_on_user_error(main))
