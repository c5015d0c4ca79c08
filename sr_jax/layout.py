"""The layout of a run's folder (a workdir), in one place for the modules that read or write it.

  WORKDIR/checkpoints/<step>/{state,data,config}   the last saves (sr_jax.train.checkpoint)
  WORKDIR/best/<step>/{state,config}               the best save by validation LSD
  WORKDIR/shaped_disc/<step>/...                   the discriminator shaped for collaborative sampling
                                                   (sr_jax.sampling.shaping)
An exported model (launch/export.py) is one step folder: state/, config/ and, with a discriminator, shaped_disc/.
"""

from __future__ import annotations

import os

CHECKPOINTS_DIR = "checkpoints"
BEST_DIR = "best"
SHAPED_DIR = "shaped_disc"


def shaped_disc_dir(path: str) -> str | None:
  """WORKDIR/shaped_disc for a workdir, its checkpoints/ or best/ folder, one of their step folders, or the
  shaped_disc folder itself; None when there is no such folder."""
  path = os.path.abspath(path)
  if os.path.basename(path) == SHAPED_DIR:
    return path if os.path.isdir(path) else None
  parent = os.path.dirname(path)
  candidates = [path]
  if os.path.basename(path) in (CHECKPOINTS_DIR, BEST_DIR):
    candidates.append(parent)
  elif os.path.basename(parent) in (CHECKPOINTS_DIR, BEST_DIR):
    candidates.append(os.path.dirname(parent))
  for c in candidates:
    if os.path.isdir(os.path.join(c, SHAPED_DIR)):
      return os.path.join(c, SHAPED_DIR)
  return None
