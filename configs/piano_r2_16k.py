"""The second, cheaper recipe: piano super-resolution r = 2 (8 kHz sample rate, 4 kHz bandwidth -> 16 kHz).

The r = 4 recipe (configs/piano_r4_16k.py: the same three-soundfont corpus, critic-only discriminator) at width 1/8,
with the chain `sample 8000 16000`, a shorter schedule and an STFT term: the band to restore, 4-8 kHz, carries
~40 dB less energy than the rest of a piano, so plain L2 leaves it almost empty (a pure-L2 run reached only
spline's LSD on validation after 1,000 steps); the multi-resolution STFT loss gives it weight, and the input's
SNR, 2 dB above spline's at r = 2, leaves room for the incoherent part that this adds.
  python launch/train.py --config=configs/piano_r2_16k.py --workdir=runs/piano_r2_16k
The measured results, wall time and the exact commands are in pretrained/piano_r2_16k/README.md.
"""

from configs import default, piano_r4_16k


def get_config(arg: str | None = None):
  c = piano_r4_16k.get_config()
  c.data.chain = "sample 8000 16000"
  c.model.width = 0.125  # channels 16, 32, 64, 64 (0.88M generator params)
  c.loss.lambda_stft = 0.002
  c.train.num_steps = 1200
  c.optim.warmup_steps = 100
  c.train.eval_every = 250
  default.apply_overrides(c, arg)
  return c
