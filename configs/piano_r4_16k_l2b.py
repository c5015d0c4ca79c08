"""Stage 1b of the shipped r = 4 recipe: 8,000 more plain-L2 steps from stage 1's model (configs/piano_r4_16k_l2.py),
a warm restart at a third of its learning rate (1e-4, 100 warm-up steps, cosine to 0) with another shuffle of the
training windows. Stage 1c (configs/piano_r4_16k_l2c.py) repeats it from this model, then stage 2
(configs/piano_r4_16k.py) fine-tunes the result.

Why: 15,000 steps had not finished learning what L2 can predict in phase. These 8,000 steps took the stage-1 model
from +1.56 to +1.73 dB above cubic spline on the mixed test works (whole files), and the validation SNR from 20.73
to 21.15 dB. Their time was freed by dropping stage 1's critic discriminator (36% of a step; it never reached the
generator), so stage 1 + 1b take about as long as stage 1 did with its critic.
  python launch/train.py --config=configs/piano_r4_16k_l2b.py --workdir=runs/piano_r4_16k_l2b
(reads runs/piano_r4_16k_l2; `--config.train.init_from=DIR` points it elsewhere). 8,000 steps: ~33 minutes of steps
at 0.245 s/step on the slower of this project's two 2-core machines (38.9 min measured, the cores shared).
Measured results: pretrained/piano_r4_16k/README.md.
"""

from configs import default, piano_r4_16k_l2

SOUNDFONTS = piano_r4_16k_l2.SOUNDFONTS


def get_config(arg: str | None = None):
  c = piano_r4_16k_l2.get_config()
  c.train.init_from = "runs/piano_r4_16k_l2"
  c.data.shuffle_seed = 1  # another order of the training windows than stage 1's
  c.optim.lr_g = 1e-4
  c.optim.warmup_steps = 100
  c.train.num_steps = 8000
  default.apply_overrides(c, arg)
  return c
