"""The second, cheaper recipe: piano super-resolution r = 2 (8 kHz sample rate, 4 kHz bandwidth -> 16 kHz), in two
stages, as the r = 4 recipe (configs/piano_r4_16k.py).

Stage 1, configs/piano_r2_16k_stft.py: width 1/8, L2 + a multi-resolution STFT term, 1,200 steps (~10 minutes).
Stage 2, this file: stage 1's model fine-tuned without the STFT term, with L2 + the spectral corridor
(losses.spectral_corridor_loss, weight 0.001; the r = 4 recipe's floor, -24 dB per 500 Hz band, with the ceiling at the
target's level per bin, where the r = 4 recipe now has weight 0.0003 and allows +6 dB), 1,000 steps (~4 minutes).
The STFT term pulled the 4-8 kHz band towards the training soundfonts' level whatever the piano; the corridor only
asks for a faint fill and never more than the target, which keeps a darker, unseen piano dark.
  python launch/train.py --config=configs/piano_r2_16k_stft.py --workdir=runs/piano_r2_16k_stft
  python launch/train.py --config=configs/piano_r2_16k.py --workdir=runs/piano_r2_16k
The measured results, wall time and the exact commands are in pretrained/piano_r2_16k/README.md.
"""

from configs import default, piano_r2_16k_stft, piano_r4_16k


def get_config(arg: str | None = None):
  c = piano_r2_16k_stft.get_config()
  c.loss.lambda_stft = 0.0
  r4 = piano_r4_16k.get_config()  # the same corridor and fine-tuning schedule as the r = 4 recipe's stage 2
  for field in ("corridor_floor_db", "corridor_pool"):
    c.loss[field] = r4.loss[field]
  # as shipped: r = 4 went to lambda 3e-4 and ceiling +6 dB later, with its depth-8 model (untried at r = 2)
  c.loss.lambda_corridor, c.loss.corridor_ceiling_db = 1e-3, 0.0
  c.optim.lr_g, c.optim.warmup_steps = r4.optim.lr_g, r4.optim.warmup_steps
  c.train.num_steps, c.train.eval_every = 1000, 250  # as shipped: r = 4's stage 2 then (2,000 steps since)
  c.train.init_from = "runs/piano_r2_16k_stft"
  default.apply_overrides(c, arg)
  return c
