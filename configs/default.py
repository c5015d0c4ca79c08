"""Default configuration of sr_jax: every knob of the system, the single source of defaults.

Other recipes (configs/tiny.py, configs/quickstart.py, ...) start from `get_config()` here and change a few fields.

Overrides, both forms work:
  --config=configs/default.py --config.model.depth=4 --config.data.window=1024
  --config=configs/default.py:depth=8,window=8192           (short names, see SHORT_NAMES, or dotted paths)
"""

from __future__ import annotations

import ml_collections

# Short names accepted in the `--config=configs/x.py:NAME=VALUE,...` argument.
SHORT_NAMES = {
    "depth": "model.depth",
    "width": "model.width",
    "dropout": "model.dropout",
    "dtype": "model.dtype",
    "window": "data.window",
    "stride": "data.stride",
    "rate": "data.rate",
    "chain": "data.chain",
    "batch": "train.batch_size",
    "batch_size": "train.batch_size",
    "steps": "train.num_steps",
    "seed": "seed",
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the default config; `arg` is 'name=value,...' overrides (see SHORT_NAMES)."""
  c = ml_collections.ConfigDict()
  c.seed = 0

  # ----- networks ---------------------------------------------------------------------------------------------
  c.model = m = ml_collections.ConfigDict()
  m.depth = 8  # B: down blocks; the window must be divisible by 2**(depth + 1)
  m.width = 1.0  # channel multiplier (1.0 = the original's 128, 256, 512, 512, ...)
  m.dropout = 0.5
  m.dtype = "float32"  # compute dtype: float32 | bfloat16 (params stay float32)
  m.zero_init_final = False  # True: the final conv starts at zero, so the generator starts as the identity
  # How convolutions are computed: xla (lax.conv_general_dilated everywhere) | fft (stride-1 convs with kernel >= 17,
  # i.e. the up blocks' 65/33/17, by FFT: same params, outputs equal to float32 rounding; on CPU at batch 16 those
  # convs are 2-4.6x faster and the depth-4 generators' forward+backward ~2x, slower at batch 2; bench/conv_impl.py).
  # Checkpoints work with either.
  m.conv_impl = "xla"

  c.disc = d = ml_collections.ConfigDict()
  d.kind = "global"  # global: one logit per window | patch: PatchGAN, one logit per patch
  d.conditional = False  # condition D on the degraded input (concatenated on channels)
  d.depth = -1  # -1: same as model.depth (global D); for patch, the number of down blocks (receptive field)
  d.patch_depth = 4
  d.width = -1.0  # -1: same as model.width
  d.dropout = 0.5

  c.ae = a = ml_collections.ConfigDict()
  a.depth = -1  # -1: same as model.depth
  a.width = -1.0  # -1: same as model.width
  a.dropout = 0.5

  # ----- data ---------------------------------------------------------------------------------------------------
  c.data = dt = ml_collections.ConfigDict()
  dt.source = "corpus"  # corpus (built-in piano corpus) | folder | maestro | tfds
  dt.dir = ""  # folder/maestro root; for corpus: '' = the default corpus folder (built on first use)
  dt.corpus_minutes = 30.0  # size of the built-in corpus when it is built
  dt.corpus_renderer = "synth"  # synth (numpy, PyPI only) | fluidsynth (needs Debian fluidsynth + a soundfont)
  dt.soundfont = ""
  dt.tfds_name = "sr_jax_audio"
  dt.tfds_data_dir = ""
  dt.rate = 16000  # target (output) sample rate
  dt.chain = "sample 4000 16000"  # degradation chain (see sr_jax/data/degrade.py)
  dt.upsample = "soxr"  # how `sample` brings the input back up: soxr | cubic | linear
  dt.window = 8192
  dt.stride = 4096  # training windows overlap by window - stride
  dt.eval_stride = 4096  # stride for validation/enhancement (overlap-crop merge)
  # the window enhance/evaluate use by default (0: the training window; else a multiple of 2**(depth+1): the
  # generator is fully convolutional); its stride is eval_stride * enhance_window / window. Validation in training
  # and collaborative sampling stay at the training window.
  dt.enhance_window = 0
  dt.split = "80/10/10"  # train/valid/test percentages for folders without train/valid/test subfolders
  dt.max_files = -1  # -1: all files
  dt.silence_db = -60.0  # files whose RMS is below this are skipped as silent
  dt.workers = 2  # grain worker processes (0: in the main process)
  dt.cache_dir = ""  # '' = <workdir>/data_cache; degraded pairs are cached there
  dt.shuffle_seed = 0

  # ----- losses ---------------------------------------------------------------------------------------------------
  c.loss = l = ml_collections.ConfigDict()
  l.reconstruction = "l2"  # l2 | l1
  l.lambda_adv = 0.0  # 0 = no GAN term (the discriminator is not trained either)
  l.lambda_feature = 0.0  # 0 = no autoencoder feature loss
  l.feature_kind = "l2"
  l.lambda_stft = 0.0  # multi-resolution STFT log-magnitude loss
  l.stft_fft_sizes = (512, 1024, 2048)
  l.stft_hop_sizes = (128, 256, 512)
  l.stft_sc_weight = 1.0
  l.stft_mag_weight = 1.0
  # Spectral corridor (losses.spectral_floor_loss, at the STFT sizes above): zero while the output's level is no more
  # than floor_db below the target's (per band) and no more than ceiling_db above it (per bin); keeps an L2 model
  # from leaving the band it cannot predict in phase empty, without filling it above the target.
  l.lambda_floor = 0.0
  l.floor_db = -12.0
  l.floor_pool = 1  # bins pooled into one band before the floor is applied (must divide every n_fft / 2)
  l.ceiling_db = 200.0  # ... and a ceiling (e.g. 0.0: the target's level); 200 = none
  l.adv_start_step = 10  # adversarial term switches on at this step ...
  l.adv_start_d_loss = -1.0  # ... or (if > 0) once the discriminator's running loss falls below this

  # ----- optimisers and schedule ----------------------------------------------------------------------------------
  c.optim = o = ml_collections.ConfigDict()
  o.optimizer = "adam"  # adam | adamw | sgd
  o.lr_g = 1e-4
  o.lr_d = 1e-4
  o.lr_ae = 1e-4
  o.b1 = 0.9
  o.b2 = 0.999
  o.weight_decay = 0.0
  o.grad_clip = 0.0  # global-norm clipping, 0 = off
  o.schedule = "constant"  # constant | warmup_cosine
  o.warmup_steps = 0
  o.plateau = False  # optax.contrib.reduce_on_plateau on the generator loss
  o.plateau_factor = 0.5
  o.plateau_patience = 10

  c.train = t = ml_collections.ConfigDict()
  t.batch_size = 16  # global batch
  t.num_steps = 10000
  t.ae_steps = 0  # autoencoder identity-task steps, trained first in the same launch (then frozen)
  t.ae_checkpoint = ""  # or load a trained autoencoder from an earlier run's workdir
  # Fine-tuning: a run's workdir or an exported model (e.g. pretrained/piano_r4_16k) whose generator (and
  # discriminator, where both have one) start this run; optimizers, step and data order start fresh. Ignored when
  # the workdir already holds a checkpoint (then the run resumes).
  t.init_from = ""
  t.eval_every = 500
  t.eval_batches = 8
  t.log_every = 50

  # ----- devices ------------------------------------------------------------------------------------------------
  c.mesh = ms = ml_collections.ConfigDict()
  ms.data = -1  # -1: all remaining devices
  ms.fsdp = 1

  # ----- logging and checkpoints ----------------------------------------------------------------------------------
  c.log = lg = ml_collections.ConfigDict()
  lg.tensorboard = True
  lg.audio_every = 2000
  lg.progress = True

  c.checkpoint = ck = ml_collections.ConfigDict()
  ck.every = 1000
  ck.keep = 3
  ck.keep_best = True  # also keep the best checkpoint by validation LSD

  # ----- collaborative sampling -------------------------------------------------------------------------------------
  c.collab = cb = ml_collections.ConfigDict()
  cb.eta = 0.5  # stop once D(y) >= eta
  cb.max_steps = 10  # K
  cb.layer = 2  # up block l whose output is refined
  cb.step_size = 0.1
  cb.shape_steps = 0

  apply_overrides(c, arg)
  return c


def apply_overrides(config: ml_collections.ConfigDict, arg: str | None) -> ml_collections.ConfigDict:
  """Applies 'name=value,...' (short names or dotted paths); values are parsed as Python literals when they can be."""
  import ast

  from sr_jax.errors import UserError

  if not arg:
    return config
  for item in _split_items(arg):
    if "=" not in item:
      raise UserError(f"config override {item!r} must look like name=value (e.g. depth=4,window=1024)")
    name, value = (s.strip() for s in item.split("=", 1))
    path = SHORT_NAMES.get(name, name)
    *parents, leaf = path.split(".")
    node = config
    for p in parents:
      if p not in node:
        raise UserError(f"unknown config field {path!r} in override {item!r}")
      node = node[p]
    if leaf not in node:
      known = ", ".join(sorted(SHORT_NAMES))
      raise UserError(f"unknown config field {path!r} in override {item!r} (short names: {known})")
    try:
      parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      parsed = value
    old = node[leaf]
    if isinstance(old, float) and isinstance(parsed, int):
      parsed = float(parsed)
    if type(old) is not type(parsed) and not (isinstance(old, tuple) and isinstance(parsed, (tuple, list))):
      raise UserError(f"config field {path!r} expects {type(old).__name__}, got {value!r}")
    node[leaf] = tuple(parsed) if isinstance(old, tuple) else parsed
  return config


def _split_items(arg: str) -> list[str]:
  """Splits 'a=1,b=(1, 2),chain=sample 4000 16000' on commas outside brackets and quotes."""
  items, depth, cur, quote = [], 0, "", None
  for ch in arg:
    if quote:
      quote = None if ch == quote else quote
    elif ch in "\"'":
      quote = ch
    elif ch in "([{":
      depth += 1
    elif ch in ")]}":
      depth -= 1
    elif ch == "," and depth == 0:
      items.append(cur)
      cur = ""
      continue
    cur += ch
  items.append(cur)
  return [i for i in (s.strip() for s in items) if i]
