"""Stage 1e of the shipped r = 4 recipe: stage 1d (configs/piano_r4_16k_l2d.py) once more from stage 1d's model: 8,000
more plain-L2 steps, the same warm restart (Adam 1e-4, 100 warm-up steps, cosine to 0) with a fifth shuffle of the
training windows. Then stage 2 (configs/piano_r4_16k.py) fine-tunes this model.

Why: each such round of L2 steps has gone on raising the SNR above cubic spline (this round: +0.05 to +0.13 dB on the
three test sets before stage 2, +0.06 to +0.12 dB after it) while LSD stays (L2 leaves the unpredictable band empty
whatever its steps; stage 2 fills it).
  python launch/train.py --config=configs/piano_r4_16k_l2e.py --workdir=runs/piano_r4_16k_l2e
(reads runs/piano_r4_16k_l2d; `--config.train.init_from=DIR` points it elsewhere). 8,000 steps: ~22 minutes on the
faster of this project's machines, ~33 on the slower.
Measured results: pretrained/piano_r4_16k/README.md.
"""

from configs import default, piano_r4_16k_l2b


def get_config(arg: str | None = None):
  c = piano_r4_16k_l2b.continue_from("piano_r4_16k_l2d", 4)  # a fifth order of the training windows
  default.apply_overrides(c, arg)
  return c
