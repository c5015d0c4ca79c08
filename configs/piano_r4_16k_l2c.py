"""Stage 1c of the shipped r = 4 recipe: stage 1b (configs/piano_r4_16k_l2b.py) once more from stage 1b's model: 8,000
more plain-L2 steps, the same warm restart (Adam 1e-4, 100 warm-up steps, cosine to 0) with a third shuffle of the
training windows. Stages 1d and 1e (configs/piano_r4_16k_l2d.py, _l2e.py) continue from this model, then stage 2
(configs/piano_r4_16k.py) fine-tunes the result.

Why: each such round of L2 steps has gone on raising the SNR above cubic spline (stage 1b: +0.08 to +0.19 dB on the
three test sets; this round: +0.09 to +0.16 dB before stage 2, on both machines) while LSD stays (L2 leaves the
unpredictable band empty whatever its steps; stage 2 fills it).
  python launch/train.py --config=configs/piano_r4_16k_l2c.py --workdir=runs/piano_r4_16k_l2c
(reads runs/piano_r4_16k_l2b; `--config.train.init_from=DIR` points it elsewhere). 8,000 steps: 23.0 minutes on the
faster of this project's machines (the cores shared with an evaluation at low priority), ~33 on the slower.
Measured results: pretrained/piano_r4_16k/README.md.
"""

from configs import default, piano_r4_16k_l2b


def get_config(arg: str | None = None):
  c = piano_r4_16k_l2b.continue_from("piano_r4_16k_l2b", 2)  # a third order of the training windows
  default.apply_overrides(c, arg)
  return c
