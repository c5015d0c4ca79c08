r"""Runs a recipe: every stage of a recipe config (configs/piano_r4_16k.py, configs/piano_r2_16k.py) in order, each
in WORKDIR/STAGE, then its finishing steps (e.g. the export to WORKDIR/export). Rerun the same command to resume:
finished stages are skipped, a stage that stopped part-way resumes from its latest checkpoint.

  python launch/recipe.py --config=configs/piano_r4_16k.py --workdir=runs/piano_r4_16k
  sr-jax recipe --config=piano_r2_16k --workdir=runs/piano_r2_16k --dry_run     # the plan: each stage's state
  sr-jax recipe --config=piano_r4_16k:train.num_steps=20 --workdir=/tmp/smoke   # overrides apply to every stage
  sr-jax recipe --config=piano_r4_16k --workdir=runs/piano_r4_16k --stages=critic   # an optional variant

Each stage's train.init_from is the folder of the stage it starts from, under --workdir; a stage starts only once
that stage is finished. One stage by hand: `sr-jax train --config=piano_r4_16k:stage=1b --workdir=WORKDIR/1b`.
"""

from absl import app, flags
from ml_collections import config_flags

from sr_jax.errors import UserError, exit_on_user_error

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "A recipe config file, or the name of a bundled one (configs/NAME.py), with overrides for every "
    "stage: NAME:key=value,... or --config.key=value")
_WORKDIR = flags.DEFINE_string("workdir", None, "The recipe's folder: one folder per stage (WORKDIR/STAGE), the "
                               "shared data cache and the export (default: the recipe's WORKDIR).")
_STAGES = flags.DEFINE_list("stages", None, "Run only these stages (or optional variants), in the recipe's order "
                            "(default: all of its stages, then its finishing steps).")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print the plan (each stage's folder, init_from, steps and whether it "
                             "is done, partial or to do) and train nothing.")


@exit_on_user_error
def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if _CONFIG.value is None:
    raise UserError("--config is required: a recipe config (e.g. --config=piano_r4_16k)")
  import sys  # noqa: PLC0415

  from sr_jax import recipes  # noqa: PLC0415

  path, _, arg = config_flags.get_config_filename(flags.FLAGS["config"]).partition(":")
  module = recipes.load(path)
  overrides = config_flags.get_override_values(flags.FLAGS["config"])
  if not recipes.run(module, _WORKDIR.value or module.WORKDIR, arg, stages=_STAGES.value, overrides=overrides,
                     dry_run=_DRY_RUN.value):
    sys.exit(1)
