"""Stage 1b of the shipped r = 4 recipe: 8,000 more plain-L2 steps from stage 1's model (configs/piano_r4_16k_l2.py),
a warm restart at a third of its learning rate (1e-4, 100 warm-up steps, cosine to 0) with another shuffle of the
training windows. Stages 1c, 1d and 1e (configs/piano_r4_16k_l2c.py, _l2d.py, _l2e.py) repeat it, each from the
previous stage's model (`continue_from`), then stage 2 (configs/piano_r4_16k.py) fine-tunes the result.

Why: 15,000 steps had not finished learning what L2 can predict in phase. These 8,000 steps took the stage-1 model
from +1.56 to +1.73 dB above cubic spline on the mixed test works (whole files), and the validation SNR from 20.73
to 21.15 dB. Their time was freed by dropping stage 1's critic discriminator (36% of a step; it never reached the
generator), so stage 1 + 1b take about as long as stage 1 did with its critic.
  python launch/train.py --config=configs/piano_r4_16k_l2b.py --workdir=runs/piano_r4_16k_l2b
(reads runs/piano_r4_16k_l2; `--config.train.init_from=DIR` points it elsewhere). 8,000 steps: ~33 minutes of steps
at 0.245 s/step on the slower of this project's two 2-core machines (38.9 min measured, the cores shared).
Measured results: pretrained/piano_r4_16k/README.md.
"""

import importlib

from configs import default, piano_r4_16k_l2

SOUNDFONTS = piano_r4_16k_l2.SOUNDFONTS


def continue_from(previous: str, shuffle_seed: int):
  """configs/PREVIOUS.py's config, started from the model of its run (runs/PREVIOUS, `train.init_from`) with its
  own order of the training windows (`data.shuffle_seed`)."""
  c = importlib.import_module(f"configs.{previous}").get_config()
  c.train.init_from = f"runs/{previous}"
  c.data.shuffle_seed = shuffle_seed
  return c


def get_config(arg: str | None = None):
  c = continue_from("piano_r4_16k_l2", 1)  # another order of the training windows than stage 1's
  c.optim.lr_g = 1e-4
  c.optim.warmup_steps = 100
  c.train.num_steps = 8000
  default.apply_overrides(c, arg)
  return c
