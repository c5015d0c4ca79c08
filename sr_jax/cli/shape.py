r"""Discriminator shaping: trains a run's discriminator on collaborative samples (see sr_jax/sampling/shaping.py).

  python launch/shape.py --workdir=runs/gan --steps=200 [--eta=0.8 --max_steps=20 --layer=2 --step_size=0.05]

The run must have a discriminator (trained with --config.loss.lambda_adv > 0). The shaped discriminator is saved in
WORKDIR/shaped_disc (the training checkpoints are only read); enhancement prefers it when present. Rerunning
continues from it (--restart: start again from the trained discriminator).
"""

from absl import app, flags

from sr_jax.errors import UserError, exit_on_user_error

_WORKDIR = flags.DEFINE_string("workdir", None, "A training run's folder (with a discriminator).")
_STEPS = flags.DEFINE_integer("steps", None, "Shaping steps (default: the run's collab.shape_steps, or 100 if 0).")
_ETA = flags.DEFINE_float("eta", None, "Stop refining a window once D(y) >= eta (default: the run's collab.eta).")
_MAX_STEPS = flags.DEFINE_integer("max_steps", None, "Most refinement steps K per window (collab.max_steps).")
_LAYER = flags.DEFINE_integer("layer", None, "Up block l of the generator whose output is refined (collab.layer).")
_STEP_SIZE = flags.DEFINE_float("step_size", None, "Gradient step on the activation (collab.step_size).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Override the run's config.data.dir (if the data moved).")
_RESTART = flags.DEFINE_bool("restart", False, "Start again from the trained discriminator (drops shaped_disc/).")


def default_steps(config) -> int:
  steps = config.collab.shape_steps
  return steps if steps > 0 else 100


@exit_on_user_error
def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not _WORKDIR.value:
    raise UserError("--workdir is required: the folder of a training run with a discriminator")
  from sr_jax.sampling import shaping  # noqa: PLC0415
  from sr_jax.train.checkpoint import restore_config  # noqa: PLC0415

  config = restore_config(_WORKDIR.value)
  shaping.check_shapeable(config, _WORKDIR.value)
  steps = default_steps(config) if _STEPS.value is None else _STEPS.value
  result = shaping.shape_discriminator(
      _WORKDIR.value, steps, data_dir=_DATA_DIR.value, restart=_RESTART.value, log=print, eta=_ETA.value,
      max_steps=_MAX_STEPS.value, layer=_LAYER.value, step_size=_STEP_SIZE.value)
  b, a = result.before, result.after
  print(f"D loss before {b['d_loss']:.4f} -> after {a['d_loss']:.4f} (with G(x) as the fake: {b['d_loss_plain']:.4f} "
        f"-> {a['d_loss_plain']:.4f}); saved shaping step {result.steps} in {result.folder}")

