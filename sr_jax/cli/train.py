r"""Trains sr_jax: a thin absl main around `sr_jax.train.train_and_evaluate(config, workdir)`.

  python launch/train.py --config=configs/quickstart.py --workdir=runs/quickstart
  python launch/train.py --config=configs/default.py:depth=4,window=2048 --config.loss.lambda_adv=1e-3 --workdir=...

Rerun the same command to resume. Multi-host: `jax.distributed.initialize()` runs when more than one process is
launched (SLURM / Cloud TPU are detected; or pass --coordinator_address, --num_processes, --process_id).
"""

from absl import app, flags
from ml_collections import config_flags

from sr_jax import resources
from sr_jax.errors import UserError, exit_on_user_error

_CONFIG = config_flags.DEFINE_config_file(
    "config", resources.config_path("quickstart"),
    "Config file, or the name of a bundled one (configs/NAME.py), with overrides: NAME:key=value,...")
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder for checkpoints, logs and TensorBoard events.")
_COORD = flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (multi-process runs).")
_NPROC = flags.DEFINE_integer("num_processes", None, "Number of processes (multi-process runs).")
_PID = flags.DEFINE_integer("process_id", None, "This process's index (multi-process runs).")
_DIST = flags.DEFINE_enum("distributed", "auto", ["auto", "on", "off"],
                          "jax.distributed.initialize(): auto = when the flags above or a cluster say so.")


def init_distributed() -> None:
  import os

  import jax

  explicit = _NPROC.value is not None and _NPROC.value > 1
  cluster = any(v in os.environ for v in ("SLURM_NTASKS", "TPU_WORKER_HOSTNAMES")) and \
      int(os.environ.get("SLURM_NTASKS", "2")) > 1
  if _DIST.value == "on" or (_DIST.value == "auto" and (explicit or cluster)):
    if jax.config.jax_platforms in (None, "", "cpu") and not os.environ.get("CUDA_VISIBLE_DEVICES"):
      jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=_COORD.value, num_processes=_NPROC.value,
                               process_id=_PID.value)


@exit_on_user_error
def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not _WORKDIR.value:
    raise UserError("--workdir is required: the folder for checkpoints and logs (rerun with it to resume)")
  init_distributed()
  from sr_jax.train import train_and_evaluate

  train_and_evaluate(_CONFIG.value, _WORKDIR.value)

