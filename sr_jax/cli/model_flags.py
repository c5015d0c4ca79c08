"""The flags that name the model to load, shared by `sr-jax enhance` and `sr-jax evaluate`: exactly one of --workdir
(a training run), --checkpoint (a checkpoint folder) and --model (a shipped model's name), and --step; and
--fill_gain_db, the level of its spectral fill."""

from __future__ import annotations

import math
import os

from absl import flags

from sr_jax import resources
from sr_jax.errors import UserError

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A training run's folder: its latest checkpoint (or --step).")
flags.DEFINE_string("model", None, "Or a shipped model by name (e.g. piano_r4_16k; pretrained/NAME).")
flags.DEFINE_string("checkpoint", None, "Or a checkpoint folder: a checkpoints/ folder or one step folder "
                    "(state/ + config/, e.g. an exported model).")
flags.DEFINE_integer("step", None, "Checkpoint step of --workdir (or of a checkpoints/ folder; default: the latest).")
flags.DEFINE_float("fill_gain_db", None, "A model with a spectral fill (music_16k): its level in dB re the level "
                   "training gave it (default: the model's model.fill_gain_db, music_16k -9). Higher: a brighter top "
                   "band and lower LSD; lower: less hiss (PESQ-wb on voices rises); -100: no fill.")


def given() -> list[str]:
  """The model flags given: --workdir, --checkpoint, --model."""
  return [k for k in ("workdir", "checkpoint", "model") if FLAGS[k].value is not None]


def check(step_needs_workdir: bool = False) -> None:
  """The model flags' mistakes, found before any file is read (an unknown --model name included)."""
  if len(given()) != 1:
    raise UserError("give exactly one of --workdir (a training run), --checkpoint (a checkpoint folder) and --model "
                    "(a shipped model's name)")
  if FLAGS.model is not None:
    resources.model_path(FLAGS.model)
  if FLAGS.step is not None and (FLAGS.model is not None or (step_needs_workdir and FLAGS.workdir is None)):
    raise UserError("--step picks a checkpoint of --workdir; --checkpoint and --model already name one step folder")
  if FLAGS.step is not None and FLAGS.step < 0:
    raise UserError(f"--step must not be negative, got {FLAGS.step}")
  if FLAGS.fill_gain_db is not None and not math.isfinite(FLAGS.fill_gain_db):
    raise UserError(f"--fill_gain_db must be a finite number of dB, got {FLAGS.fill_gain_db}")


def folder() -> str:
  """The folder of the model to load."""
  return resources.model_path(FLAGS.model) if FLAGS.model else os.path.expanduser(FLAGS.workdir or FLAGS.checkpoint)
