"""piano_r2_16k, the shipped r = 2 model: piano super-resolution 8 kHz -> 16 kHz (input band-limited to 4 kHz), a 1-D
U-Net at depth 4 and 1/8 of the original's width (883,362 generator weights), trained on 2 CPU cores, with a critic
discriminator for collaborative sampling shipped beside it.

Data: the r = 4 recipe's corpus (sr_jax/recipes.py: piano_corpus) with the chain `sample 8000 16000`.

Stages, `get_config("stage=NAME[,key=value,...]")` (default: the last):
  stft  L2 + a multi-resolution STFT term from scratch, 1,200 steps: the 4-8 kHz band carries far less energy than
        the rest of a piano, so plain L2 hardly sees it; the STFT term fills it, at the training pianos' level.
  2     from stage stft's networks, 1,000 steps with the STFT term replaced by a spectral corridor (a faint fill,
        never above the target's level): a darker, unseen piano stays dark.
Both train a discriminator alongside whose term never reaches the generator: the critic of collaborative sampling
(--collab), shaped after stage 2 and shipped with it.

  sr-jax recipe --config=piano_r2_16k --workdir=runs/piano_r2_16k      (or python3 launch/recipe.py ...)
trains each stage in runs/piano_r2_16k/STAGE (rerun to resume), shapes stage 2's discriminator (100 steps) and exports
both networks to runs/piano_r2_16k/export. Results and evaluation: pretrained/piano_r2_16k/README.md.
"""

from sr_jax import config, recipes

STAGES = ("stft", "2")
WORKDIR = "runs/piano_r2_16k"
FINISH = (("shape", {"steps": 100}), ("export", {"parts": ("gen", "disc"), "dtype": "float32"}))


def get_config(arg: str | None = None):
  stage, rest = recipes.split_stage(arg, STAGES, default=STAGES[-1])
  c = config.get_config()

  c.model.depth = 4
  c.model.width = 0.125  # channels 16, 32, 64, 64
  c.model.dropout = 0.0
  c.model.zero_init_final = True  # starts as the soxr-upsampled input; learns the residual
  c.model.conv_impl = "fft"  # the up blocks' kernel-65/33/17 convs by FFT: the same weights, faster on CPU

  recipes.piano_corpus(c.data)
  c.data.rate = 16000
  c.data.chain = "sample 8000 16000"
  c.data.window = 2048
  c.data.stride = 1024
  c.data.eval_stride = 2048
  c.data.workers = 0  # on 2 cores, worker processes cost more than reading cached windows
  c.data.cache_dir = f"{WORKDIR}/data_cache"  # one cache of degraded pairs for both stages

  c.loss.reconstruction = "l2"
  c.loss.lambda_stft = 0.002
  # The critic: a discriminator (the global one) trained alongside, whose adversarial term never reaches the
  # generator (it would switch on at adv_start_step); stage 2 starts from stage stft's, and launch/shape.py shapes it.
  c.loss.lambda_adv = 1e-4
  c.loss.adv_start_step = 10**9
  c.optim.lr_g = 3e-4
  c.optim.schedule = "warmup_cosine"
  c.optim.warmup_steps = 100
  c.optim.grad_clip = 1.0
  c.train.batch_size = 16
  c.train.num_steps = 1200
  c.train.eval_every = 250
  c.train.eval_batches = 16
  c.train.log_every = 50
  c.log.audio_every = 2000
  c.checkpoint.every = 250
  c.checkpoint.keep = 2

  if stage == "2":
    c.train.init_from = f"{WORKDIR}/stft"
    # The spectral corridor (losses.spectral_corridor_loss) instead of the STFT term: no cost while the output's
    # level is at most 24 dB below the target's (power per band of 16 bins, 500 Hz at n_fft 512) and not above the
    # target's own level per bin; a log-distance cost outside. The fill may stay faint and never exceeds the target,
    # so the network fills as the darkest plausible piano.
    c.loss.lambda_stft = 0.0
    c.loss.lambda_corridor = 1e-3
    c.loss.corridor_floor_db = -24.0
    c.loss.corridor_pool = 16
    c.loss.corridor_ceiling_db = 0.0
    c.optim.lr_g = 1e-4
    c.optim.warmup_steps = 50
    c.train.num_steps = 1000

  return config.apply_overrides(c, rest)
