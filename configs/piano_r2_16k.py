"""The second, cheaper recipe: piano super-resolution r = 2 (8 kHz sample rate, 4 kHz bandwidth -> 16 kHz).

The r = 4 recipe (configs/piano_r4_16k.py: the same three-soundfont corpus, model and losses) with the chain
`sample 8000 16000` and a shorter schedule: the band to restore, 4-8 kHz, carries much less of a piano's energy.
  python launch/train.py --config=configs/piano_r2_16k.py --workdir=runs/piano_r2_16k
The measured results, wall time and the exact commands are in pretrained/piano_r2_16k/README.md.
"""

from configs import default, piano_r4_16k


def get_config(arg: str | None = None):
  c = piano_r4_16k.get_config()
  c.data.chain = "sample 8000 16000"
  c.train.num_steps = 2000
  c.optim.warmup_steps = 100
  c.loss.adv_start_step = 500
  c.train.eval_every = 250
  default.apply_overrides(c, arg)
  return c
