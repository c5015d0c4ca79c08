"""Stage 1d of the shipped r = 4 recipe: stage 1c (configs/piano_r4_16k_l2c.py) once more from stage 1c's model: 8,000
more plain-L2 steps, the same warm restart (Adam 1e-4, 100 warm-up steps, cosine to 0) with a fourth shuffle of the
training windows. Stage 1e (configs/piano_r4_16k_l2e.py) continues from this model, then stage 2
(configs/piano_r4_16k.py) fine-tunes the result.

Why: each such round of L2 steps has gone on raising the SNR above cubic spline (stage 1c: +0.09 to +0.16 dB on the
three test sets before stage 2; this round: +0.07 to +0.13 dB after stage 2) while LSD stays (L2 leaves the
unpredictable band empty whatever its steps; stage 2 fills it).
  python launch/train.py --config=configs/piano_r4_16k_l2d.py --workdir=runs/piano_r4_16k_l2d
(reads runs/piano_r4_16k_l2c; `--config.train.init_from=DIR` points it elsewhere). 8,000 steps: ~22 minutes on the
faster of this project's machines, ~33 on the slower.
Measured results: pretrained/piano_r4_16k/README.md.
"""

from configs import default, piano_r4_16k_l2b


def get_config(arg: str | None = None):
  c = piano_r4_16k_l2b.continue_from("piano_r4_16k_l2c", 3)  # a fourth order of the training windows
  default.apply_overrides(c, arg)
  return c
