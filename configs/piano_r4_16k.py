"""piano_r4_16k, the shipped r = 4 model: piano super-resolution 4 kHz -> 16 kHz (input band-limited to 2 kHz), a 1-D
U-Net at the original's depth 8 and 1/8 of its width (1,621,410 generator weights), trained on 2 CPU cores.

Data: the built-in corpus rendered by fluidsynth with three piano soundfonts (sr_jax/recipes.py: piano_corpus), split
by work; built on first use, or beforehand with launch/make_corpus.py (the model card has the command).

Stages, `get_config("stage=NAME[,key=value,...]")` (default: the last), each from the previous stage's generator:
  1       plain L2 from scratch, 15,000 steps: predicts the part of the 2-8 kHz band it can in phase and leaves the
          rest nearly empty (where the phase is unpredictable, L2's optimum is 0).
  1b      8,000 more L2 steps, a warm restart at a third of the learning rate with another order of the windows:
          stage 1 has not finished learning what L2 can predict.
  1c-1e   the same warm restart three more times, each with its own order of the windows: each round still gains.
  2       2,000 steps of L2 + a spectral corridor: a faint fill of the band L2 leaves empty, never far above the
          target's level (LSD counts an empty band most, SNR a faint fill little); it enhances on 8192-sample windows.
  critic  (optional, not one of the recipe's stages) a discriminator trained against stage 2's generator, which stays
          as it is (optim.freeze = "gen"), for collaborative sampling (--collab).

  sr-jax recipe --config=piano_r4_16k --workdir=runs/piano_r4_16k      (or python3 launch/recipe.py ...)
trains each stage in runs/piano_r4_16k/STAGE (rerun to resume), then exports the generator to runs/piano_r4_16k/export.
One stage alone: `sr-jax train --config=piano_r4_16k:stage=1b --workdir=runs/piano_r4_16k/1b`; the critic:
`sr-jax recipe --config=piano_r4_16k --stages=critic`. Results and evaluation: pretrained/piano_r4_16k/README.md.
"""

from sr_jax import config, recipes

STAGES = ("1", "1b", "1c", "1d", "1e", "2")
VARIANTS = STAGES + ("critic",)
WORKDIR = "runs/piano_r4_16k"
FINISH = (("export", {"parts": ("gen",), "dtype": "float32"}),)  # the shipped model: the generator alone
# The warm restarts of stage 1, each from the stage before it: stage -> its order of the training windows.
RESTARTS = {"1b": 1, "1c": 2, "1d": 3, "1e": 4}


def get_config(arg: str | None = None):
  stage, rest = recipes.split_stage(arg, VARIANTS, default=STAGES[-1])
  c = config.get_config()

  # Depth 8: each level halves the time resolution, so levels 5-8 cost little and let every output sample see the
  # whole window, which predicts more of the band in phase.
  c.model.depth = 8
  c.model.width = 0.125  # channels 16, 32, 64, 64, 64, 64, 64, 64
  c.model.dropout = 0.0
  c.model.zero_init_final = True  # starts as the soxr-upsampled input; learns the residual
  c.model.conv_impl = "fft"  # the up blocks' kernel-65/33/17 convs by FFT: the same weights, faster on CPU

  recipes.piano_corpus(c.data)
  c.data.rate = 16000
  c.data.chain = "sample 4000 16000"
  c.data.window = 2048
  c.data.stride = 1024
  c.data.eval_stride = 2048
  c.data.workers = 0  # on 2 cores, worker processes cost more than reading cached windows
  c.data.cache_dir = f"{WORKDIR}/data_cache"  # one cache of degraded pairs for every stage (keyed by chain, seed, ...)

  # Plain L2: an STFT or adversarial term fills the band with energy of the right level but random phase, which
  # lowers LSD and costs SNR below the input's; stage 2's corridor asks for a faint fill only.
  c.loss.reconstruction = "l2"
  c.optim.lr_g = 3e-4
  c.optim.schedule = "warmup_cosine"
  c.optim.warmup_steps = 200
  c.optim.grad_clip = 1.0
  c.train.batch_size = 16
  c.train.num_steps = 15000
  c.train.eval_every = 1000
  c.train.eval_batches = 16
  c.train.log_every = 50
  c.log.audio_every = 2000
  c.checkpoint.every = 500
  c.checkpoint.keep = 2

  if stage in RESTARTS:
    c.train.init_from = f"{WORKDIR}/{STAGES[STAGES.index(stage) - 1]}"
    c.data.shuffle_seed = RESTARTS[stage]
    c.optim.lr_g = 1e-4  # a third of stage 1's, cosine to 0 again
    c.optim.warmup_steps = 100
    c.train.num_steps = 8000

  if stage in ("2", "critic"):
    c.train.init_from = f"{WORKDIR}/1e"
    # The spectral corridor (losses.spectral_corridor_loss): no cost while the output's level is at most 24 dB below
    # the target's (power per band of 16 bins, 500 Hz at n_fft 512: the floor does not chase each dip of a fill)
    # and at most 6 dB above it per bin (keeps the fill out of quiet frames, near the darker pianos' level, and stops
    # the rumble a fill brings below the lowest notes); a log-distance cost outside. Inside it L2 decides alone, so
    # what stage 1e predicts in phase stays. A light weight keeps most of that coherence.
    c.loss.lambda_corridor = 3e-4
    c.loss.corridor_floor_db = -24.0
    c.loss.corridor_pool = 16
    c.loss.corridor_ceiling_db = 6.0
    c.optim.lr_g = 1e-4
    c.optim.warmup_steps = 50
    c.train.num_steps = 2000
    c.train.eval_every = 500
    # Enhancement (and validation) overlap the windows by a quarter, each keeping its centre, which saw audio on
    # both sides; enhance/evaluate run the fully convolutional generator on 8192-sample windows (stride 6144), where
    # each sample sees more context. Validation and --collab stay at the training window; `--window=2048` on either
    # command enhances as the model was trained.
    c.data.eval_stride = 1536
    c.data.enhance_window = 8192

  if stage == "critic":
    c.train.init_from = f"{WORKDIR}/2"
    c.loss.lambda_adv = 1e-4  # > 0: a discriminator (the global one) is trained ...
    c.optim.freeze = "gen"  # ... against stage 2's generator, which stays as it is (no generator loss computed)
    c.train.num_steps = 500
    c.train.eval_every = 500

  return config.apply_overrides(c, rest)
