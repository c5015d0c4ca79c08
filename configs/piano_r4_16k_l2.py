"""Stage 1 of the shipped r = 4 recipe (configs/piano_r4_16k_l2b.py to _l2e.py are stages 1b to 1e,
configs/piano_r4_16k.py stage 2):
piano super-resolution r = 4 (4 kHz bandwidth -> 16 kHz), trained with plain L2 on 2 CPU cores. This is also the
model that shipped before the spectral corridor stage (git history: pretrained/piano_r4_16k up to the commit that
added configs/piano_r4_16k_l2.py).

Data: the built-in corpus rendered with Debian's fluidsynth and three General MIDI soundfonts of different timbre
(sampled pianos: FluidR3, bright; MuseScore General and csound's sf_GMbank, darker), each piece by one of them in
turn, 4 hours (80/10/10 by work), built on first use (~9 minutes on 2 cores) or beforehand with
  apt-get install -y fluidsynth fluid-soundfont-gm musescore-general-soundfont csound-soundfont
  python launch/make_corpus.py --renderer=fluidsynth --minutes=240 --soundfont=SOUNDFONTS (the list below)
A fourth soundfont, TimGM6mb (apt-get install timgm6mb-soundfont), is never used in training: the model card
evaluates on it to measure how the model generalises to a piano it never heard.
Model: depth 8 (the original's depth) at 1/8 width (channels 16, 32, 64, 64, 64, 64, 64, 64; kernels 65, 33, 17, 9,
9, ...; 1,621,410 generator params), 2048-sample windows (128 ms), no dropout, final conv zero-initialised (training
starts from the soxr-upsampled input). Depth and the longer schedule bought SNR: each level halves the time
resolution, so the four extra levels cost little (a step takes about as long as at depth 4) but let the network see
the whole window (the receptive field of depth 4 is ~26 ms) and predict more of the 2-3 kHz band in phase; depth 8
with 15,000 steps beat the previous depth 4 with 6,000 by +0.4 to +0.6 dB of SNR on the test works (the card's
"What was tried"; depth 4 was not run for 15,000 steps).
Loss: plain L2. An STFT (or adversarial) term makes the network fill the empty 2-8 kHz band with energy of the
right level but random phase: LSD falls, but SNR drops below the input's (the first shipped model: LSD 57% below
spline, SNR 1.4 dB below it). L2 alone learns the part of the band it can predict in phase (the upper partials
of notes it hears) and beat spline in both metrics, also on an unseen soundfont. No stage trains a discriminator
now: the critic of collaborative sampling is an optional run after the recipe (configs/piano_r4_16k_critic.py).
(Until 2026-12-02 this stage trained one alongside, with its term never reaching the generator: the same generator
updates (tests/train/test_steps.py) for 1.56x the step time (bench/RESULTS.md); an earlier shipped model's stage 1
was run that way; stage 2 trained it until 2026-12-03.)
15,000 steps: 40-110 minutes on 2 CPU cores by the machine with the critic (40.5 min on one, 107.4 min on a second
of the same kind), ~1/3 less without it (0.245 s/step on the second).
  python launch/train.py --config=configs/piano_r4_16k_l2.py --workdir=runs/piano_r4_16k_l2
then stages 1b to 1e (configs/piano_r4_16k_l2b.py, _l2c.py, _l2d.py, _l2e.py: 8,000 more L2 steps each) and stage 2
(configs/piano_r4_16k.py) continue from its weights. The measured results of each, the wall time and the
exact commands are in pretrained/piano_r4_16k/README.md.
"""

from configs import default

FLUIDR3 = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
MUSESCORE = "/usr/share/sounds/sf3/MuseScore_General.sf3"
CSOUND = "/usr/share/sounds/sf2/sf_GMbank.sf2"
SOUNDFONTS = ",".join((FLUIDR3, MUSESCORE, CSOUND))


def get_config(arg: str | None = None):
  c = default.get_config()
  c.model.depth = 8
  c.model.width = 0.125
  c.model.dropout = 0.0
  c.model.zero_init_final = True
  c.model.conv_impl = "fft"  # the up blocks' kernel-65/33/17 convs by FFT: same weights, ~2x faster on CPU
  c.data.source = "corpus"
  c.data.corpus_renderer = "fluidsynth"
  c.data.soundfont = SOUNDFONTS
  c.data.corpus_minutes = 240.0
  c.data.rate = 16000
  c.data.chain = "sample 4000 16000"
  c.data.window = 2048
  c.data.stride = 1024
  c.data.eval_stride = 2048
  c.data.workers = 0  # on 2 cores, worker processes cost more than reading cached windows
  # one cache of degraded pairs for all six stages (each file's pair is keyed by a hash of chain, rate, seed, ...):
  # 1.8 GB once instead of once per stage's workdir, and ~16 s of degradation saved per later stage
  c.data.cache_dir = "runs/piano_r4_16k_data_cache"
  c.loss.reconstruction = "l2"
  c.loss.lambda_stft = 0.0  # pure L2: see the docstring (an STFT or adversarial term adds incoherent high band)
  c.loss.lambda_adv = 0.0  # no discriminator (the critic of collaborative sampling: configs/piano_r4_16k_critic.py)
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
  default.apply_overrides(c, arg)
  return c
