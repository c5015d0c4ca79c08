"""Stage 1 of the second, cheaper recipe (configs/piano_r2_16k.py is stage 2): piano super-resolution r = 2 (8 kHz
sample rate, 4 kHz bandwidth -> 16 kHz). This is also the r = 2 model that shipped before the spectral corridor stage.

The r = 4 recipe's L2 stage (configs/piano_r4_16k_l2.py: the same three-soundfont corpus; here with a critic-only
discriminator) at depth 4 and width 1/8, with the chain `sample 8000 16000`, a shorter schedule and an STFT term: the
band to restore, 4-8 kHz, carries ~40 dB less energy than the rest of a piano, so plain L2 leaves it almost empty (a
pure-L2 run reached only spline's LSD on validation after 1,000 steps); the multi-resolution STFT loss gives it
weight, and the input's SNR, 2 dB above spline's at r = 2, leaves room for the incoherent part that this adds. The
STFT term pulls the band to the training soundfonts' level, too bright for a darker piano (an unseen soundfont: LSD
only 7% below spline); stage 2 replaces it with the spectral corridor.
  python launch/train.py --config=configs/piano_r2_16k_stft.py --workdir=runs/piano_r2_16k_stft
The measured results, wall time and the exact commands are in pretrained/piano_r2_16k/README.md.
"""

from configs import default, piano_r4_16k_l2


def get_config(arg: str | None = None):
  c = piano_r4_16k_l2.get_config()
  c.data.chain = "sample 8000 16000"
  c.data.cache_dir = ""  # as trained and shipped: each stage caches its pairs in its own workdir
  c.model.depth = 4  # the r = 4 recipe went to depth 8 later; this model stays as trained and shipped
  c.model.width = 0.125  # channels 16, 32, 64, 64 (0.88M generator params)
  c.loss.lambda_stft = 0.002
  c.loss.lambda_adv = 1e-4  # as trained and shipped: a critic for collaborative sampling trained alongside ...
  c.loss.adv_start_step = 10**9  # ... whose term never reaches the generator (the r = 4 stage 1 dropped it later)
  c.train.num_steps = 1200
  c.optim.warmup_steps = 100
  c.train.eval_every = 250
  c.checkpoint.every = 250
  default.apply_overrides(c, arg)
  return c
