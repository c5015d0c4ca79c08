"""The defaults of sr_jax: every config key the code reads is declared here, once, with a comment.

Recipes (configs/*.py) start from `get_config()` and change a few fields; a checkpoint's saved config is read back
with `complete(saved)`, merged over these defaults, so the code reads plain attributes (`config.data.rate`), never
`.get(key, fallback)`.

Overrides, both forms work:
  --config=configs/default.py --config.model.depth=4 --config.data.window=1024
  --config=configs/default.py:depth=8,window=8192           (short names, see SHORT_NAMES, or dotted paths)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
  c.seed = 0  # parameter initialisation, dropout and degradation seeds derive from it

  # ----- networks ---------------------------------------------------------------------------------------------
  c.model = m = ml_collections.ConfigDict()
  m.depth = 8  # B: down blocks; the window must be divisible by 2**(depth + 1)
  m.width = 1.0  # channel multiplier (1.0 = the original's 128, 256, 512, 512, ...)
  m.dropout = 0.5  # dropout rate in the generator's blocks (train mode only)
  m.dtype = "float32"  # compute dtype: float32 | bfloat16 (params stay float32)
  m.zero_init_final = False  # True: the final conv starts at zero, so the generator starts as the identity
  # the up blocks' activation: relu (the original's) | leaky_relu (slope 0.2: a unit never dies; with relu every unit
  # of an up block can end negative on every input, and then nothing below it reaches the output)
  m.up_activation = "relu"
  # How convolutions are computed: xla (lax.conv_general_dilated everywhere) | fft (stride-1 convs with kernel >= 17,
  # i.e. the up blocks' 65/33/17, by FFT: same params, outputs equal to float32 rounding; on CPU at batch 16 those
  # convs are 2-4.6x faster and the depth-4 generators' forward+backward ~2x, slower at batch 2; bench/conv_impl.py).
  # Checkpoints work with either.
  m.conv_impl = "xla"
  # The spectral mask front-end (sr_jax/models/mask.py): a gain in [0, 1] per STFT bin of the input, predicted by a
  # small residual conv net over frames, before the U-Net; it removes noise and late reverberation far faster than
  # the U-Net learns to. 0: none (the original's generator).
  m.mask_channels = 0
  m.mask_fft = 512  # its STFT size (32 ms at 16 kHz): a multiple of mask_hop
  m.mask_hop = 128  # its hop; data.window must be a multiple of it
  m.mask_layers = 6  # its residual blocks (dilations 1, 2, 4, 8, 1, 2, ...: 37 frames, 0.3 s at 16 kHz, seen)
  # True: the mask's gain is complex, a magnitude in [0, 2] times a phase turn per bin, so it can undo the phase an
  # IIR low-pass or the telephone band turns in the passband (a real gain learns to cut that passband instead).
  m.mask_phase = False
  # The spectral fill (sr_jax/models/fill.py): noise of a learned level per STFT bin (the mask's mask_fft / mask_hop)
  # added to the output where it lacks a band, predicted from the output's log spectrum by a net like the mask's;
  # LSD punishes an empty band most and no network predicts that band in phase. 0: none.
  m.fill_channels = 0
  m.fill_layers = 4  # its residual blocks over frames
  # The fill's level outside training (enhance, evaluate, validation) re the level training gives it, in dB: the
  # losses (SNR + STFT) set a level whose noise costs PESQ-wb on voices more than the band it fills gains (the model
  # cards measure both). Training always runs it at 0.
  m.fill_gain_db = 0.0

  c.disc = d = ml_collections.ConfigDict()
  # global: one logit per window | patch: PatchGAN, one logit per patch | mrsd: multi-resolution spectrogram D
  # (a 2-D conv stack on the log-magnitude STFT per size in stft_fft_sizes, one logit per time-frequency patch)
  d.kind = "global"
  d.conditional = False  # condition D on the degraded input (concatenated on channels)
  d.depth = -1  # global D's down blocks (-1: same as model.depth)
  d.patch_depth = 4  # patch D's down blocks (sets the patch's receptive field)
  d.width = -1.0  # -1: same as model.width
  d.dropout = 0.5  # dropout rate in the discriminator
  d.stft_fft_sizes = (512, 1024, 2048)  # mrsd: its STFT sizes (hop n / 4, Hann), one 2-D conv stack each
  d.channels = 32  # mrsd: channels of every 2-D conv layer

  c.ae = a = ml_collections.ConfigDict()
  a.depth = -1  # -1: same as model.depth
  a.width = -1.0  # -1: same as model.width
  a.dropout = 0.5  # dropout rate in the autoencoder

  # ----- data ---------------------------------------------------------------------------------------------------
  c.data = dt = ml_collections.ConfigDict()
  dt.source = "corpus"  # corpus (built-in piano corpus) | tiny | folder | maestro | tfds | packaged (see sources.py)
  dt.dir = ""  # folder/maestro root; for corpus/packaged: '' = the default corpus folder (built on first use)
  dt.corpus_minutes = 30.0  # size of the built-in corpus when it is built
  dt.corpus_seed = 0  # the built-in and packaged corpora's choice of pieces, segments and renderings
  dt.corpus_renderer = "synth"  # synth (numpy, PyPI only) | fluidsynth (needs Debian fluidsynth + a soundfont)
  dt.soundfont = ""  # fluidsynth renderer: soundfont file(s), comma-separated (pieces alternate between them)
  dt.packaged_kind = "music"  # packaged source: music | speech (real recordings Debian packages ship, packaged.py)
  dt.packaged_minutes = 60.0  # packaged source: minutes built on first use (80/10/10); -1: all installed, no renders
  dt.tfds_name = "sr_jax_audio"  # source tfds: the builder's name
  dt.tfds_data_dir = ""  # source tfds: its data_dir ('' = tfds's default)
  dt.rate = 16000  # target (output) sample rate
  dt.chain = "sample 4000 16000"  # degradation chain (see sr_jax/data/degrade.py)
  # True: the training and validation pairs' targets take the phase of every IIR low-pass and telephone band-pass
  # the input went through (degrade.degrade's target_phase): no network can tell that phase from the input's
  # magnitudes, and against the clean target a waveform loss teaches it to cut turned passbands. Evaluation
  # (`sr-jax evaluate`) always scores against the clean audio.
  dt.target_phase = False
  dt.upsample = "soxr"  # how `sample` brings the input back up: soxr | cubic | linear
  dt.window = 8192  # training window in samples at data.rate (a multiple of 2**(model.depth + 1))
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
  dt.cache_dtype = "float32"  # float32 | float16 (halves the cache; ~66 dB SNR)
  dt.shuffle_seed = 0  # order of the training windows
  dt.eval_seed = 0  # degradation seed of the validation pairs
  dt.copies = 1  # degraded pairs per training file, each with its own seed (K degradations of a random chain)
  dt.gain_db = (0.0, 0.0)  # training pairs: a gain drawn from this dB range scales target and input alike

  # ----- losses ---------------------------------------------------------------------------------------------------
  c.loss = l = ml_collections.ConfigDict()
  l.reconstruction = "l2"  # l2 | l1 | snr (each example's negative SNR in dB: levels weigh alike)
  # snr only: each example's SNR is soft-capped here (dB, > 0; losses.snr_loss), so that examples with nothing left
  # to restore stop pulling; 200 is no cap (the loss's -80 dB power floor caps first)
  l.snr_max_db = 30.0
  l.lambda_adv = 0.0  # 0 = no GAN term (the discriminator is not trained either)
  l.lambda_feature = 0.0  # 0 = no autoencoder feature loss
  # discriminator feature matching: mean L1 between D's inner features of target and output (needs lambda_adv > 0;
  # on with the adversarial term, see adv_start_step); 0 = off
  l.lambda_fm = 0.0
  l.feature_kind = "l2"  # distance between autoencoder features: l2 | l1
  l.lambda_stft = 0.0  # multi-resolution STFT log-magnitude loss
  l.stft_fft_sizes = (512, 1024, 2048)  # STFT sizes of the STFT and corridor terms
  l.stft_hop_sizes = (128, 256, 512)  # their hops
  l.stft_sc_weight = 1.0  # spectral-convergence part of the STFT term
  l.stft_mag_weight = 1.0  # log-magnitude part of the STFT term
  # Spectral corridor (losses.spectral_corridor_loss, at the STFT sizes above): zero while the output's level is no
  # more than corridor_floor_db below the target's (per band) and no more than corridor_ceiling_db above it (per
  # bin); keeps an L2 model from leaving the band it cannot predict in phase empty, without filling it above the
  # target.
  l.lambda_corridor = 0.0  # 0 = no corridor term
  l.corridor_floor_db = -12.0  # the floor, dB below the target's band level (< 0)
  l.corridor_pool = 1  # bins pooled into one band before the floor is applied (must divide every n_fft / 2)
  # the ceiling, dB above the target's bin level (None: no ceiling)
  l.corridor_ceiling_db = ml_collections.config_dict.placeholder(float)
  l.adv_start_step = 10  # adversarial term switches on at this step ...
  l.adv_start_d_loss = -1.0  # ... or (if > 0) once the discriminator's running loss falls below this

  # ----- optimisers and schedule ----------------------------------------------------------------------------------
  c.optim = o = ml_collections.ConfigDict()
  o.optimizer = "adam"  # adam | adamw | sgd
  o.lr_g = 1e-4  # generator's learning rate
  o.lr_d = 1e-4  # discriminator's
  o.mask_lr_scale = 1.0  # the mask front-end's and the fill's learning rate is lr_g times this (fresh on a trained U-Net)
  o.lr_ae = 1e-4  # autoencoder's
  o.freeze = ""  # "gen": the generator stays as it starts (no generator loss computed; e.g. to train a critic)
  o.b1 = 0.9  # Adam's beta1
  o.b2 = 0.999  # Adam's beta2
  o.weight_decay = 0.0  # adamw only
  o.grad_clip = 0.0  # global-norm clipping, 0 = off
  o.schedule = "constant"  # constant | warmup_cosine
  o.warmup_steps = 0  # linear warm-up of every learning rate
  o.plateau = False  # optax.contrib.reduce_on_plateau on the generator loss
  o.plateau_factor = 0.5  # plateau: factor applied to the learning rate
  o.plateau_patience = 10  # plateau: steps without improvement before it applies

  c.train = t = ml_collections.ConfigDict()
  t.batch_size = 16  # global batch
  t.num_steps = 10000  # training steps (the autoencoder's included)
  t.ae_steps = 0  # autoencoder identity-task steps, trained first in the same launch (then frozen)
  t.ae_checkpoint = ""  # or load a trained autoencoder from an earlier run's workdir
  # Fine-tuning: a run's workdir or an exported model (e.g. pretrained/piano_r4_16k) whose generator (and
  # discriminator, where both have one) start this run; optimizers, step and data order start fresh. Ignored when
  # the workdir already holds a checkpoint (then the run resumes).
  t.init_from = ""
  t.eval_every = 500  # validation every this many steps
  t.eval_batches = 8  # validation batches (windows of the valid split)
  # Also validate on named chains, "NAME=CHAIN;NAME=CHAIN" as `sr-jax evaluate --chains` takes them (e.g.
  # "noise10=noise random 10;reverb05=room random 0.5"): each on the same windows, against the targets training uses
  # (data.target_phase), logged as valid/NAME/...; a mixed data.chain's one number can rise while the degradation
  # that matters gets worse. "" = data.chain only
  t.eval_chains = ""
  t.log_every = 50  # training metrics every this many steps

  # ----- devices ------------------------------------------------------------------------------------------------
  c.mesh = ms = ml_collections.ConfigDict()
  ms.data = -1  # -1: all remaining devices
  ms.fsdp = 1  # devices that shard the parameters (FSDP)

  # ----- logging and checkpoints ----------------------------------------------------------------------------------
  c.log = lg = ml_collections.ConfigDict()
  lg.tensorboard = True  # write TensorBoard events into the workdir
  lg.audio_every = 2000  # validation audio examples in TensorBoard every this many steps
  lg.progress = True  # a progress bar on a terminal

  c.checkpoint = ck = ml_collections.ConfigDict()
  ck.every = 1000  # save every this many steps (and at the end)
  ck.keep = 3  # keep the last this many saves
  ck.keep_best = True  # also keep the best checkpoint by validation LSD

  # ----- collaborative sampling -------------------------------------------------------------------------------------
  c.collab = cb = ml_collections.ConfigDict()
  cb.eta = 0.5  # stop once D(y) >= eta
  cb.max_steps = 10  # K
  cb.layer = 2  # up block l whose output is refined
  cb.step_size = 0.1  # gradient step on the activation
  cb.shape_steps = 0  # default steps of launch/shape.py (0: 100)

  apply_overrides(c, arg)
  return c


# Keys renamed since checkpoints were saved with them: old dotted path -> (new path, value conversion).
RENAMED = {
    "loss.lambda_floor": ("loss.lambda_corridor", None),
    "loss.floor_db": ("loss.corridor_floor_db", None),
    "loss.floor_pool": ("loss.corridor_pool", None),
    "loss.ceiling_db": ("loss.corridor_ceiling_db", lambda v: None if v is None or v >= 200 else float(v)),
}


# Keys whose value in a config saved before they existed is not their default: what such a run was trained with,
# where the saved config has the (key, value) given.
SAVED_BEFORE = {
    "loss.snr_max_db": (("loss.reconstruction", "snr"), 200.0),  # the SNR loss had no cap (200: none)
}


def complete(saved: Mapping[str, Any]) -> ml_collections.ConfigDict:
  """A saved config (a checkpoint's JSON dict) merged over the defaults: keys it lacks take their default (or their
  SAVED_BEFORE value), renamed keys their new name. A key that is not declared here is a UserError (the checkpoint
  comes from other code)."""
  from sr_jax.errors import UserError

  flat = dict(_flatten(saved))
  for old, (new, convert) in RENAMED.items():
    if old in flat:
      value = flat.pop(old)
      flat[new] = convert(value) if convert else value
  for key, ((when, was), value) in SAVED_BEFORE.items():
    if flat.get(when) == was:
      flat.setdefault(key, value)
  config = get_config()
  unknown = []
  for path, value in flat.items():
    *parents, leaf = path.split(".")
    node = config
    for p in parents:
      node = node[p] if p in node else None
      if not isinstance(node, ml_collections.ConfigDict):
        break
    if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
      unknown.append(path)
      continue
    default = node[leaf]
    if isinstance(default, tuple) and isinstance(value, list):
      value = tuple(value)
    elif isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
      value = float(value)
    node[leaf] = value
  if unknown:
    raise UserError(f"the saved config has keys this version of sr_jax does not know: {', '.join(sorted(unknown))}")
  return config


def _flatten(tree: Mapping[str, Any], prefix: str = ""):
  for k, v in tree.items():
    if isinstance(v, Mapping):
      yield from _flatten(v, f"{prefix}{k}.")
    else:
      yield f"{prefix}{k}", v


def apply_overrides(config: ml_collections.ConfigDict, arg: str | None) -> ml_collections.ConfigDict:
  """Applies 'name=value,...' (short names or dotted paths); values are parsed as Python literals when they can be."""
  import ast

  from sr_jax.errors import UserError

  if not arg:
    return config
  for item in split_items(arg):
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
    kind = node.get_ref(leaf).get_type() if old is None else type(old)  # a None field (placeholder) has a type too
    if kind is float and isinstance(parsed, int) and not isinstance(parsed, bool):
      parsed = float(parsed)
    fits = isinstance(parsed, kind) or (kind is tuple and isinstance(parsed, list))
    if not (fits or (parsed is None and old is None)):
      raise UserError(f"config field {path!r} expects {kind.__name__}, got {value!r}")
    node[leaf] = tuple(parsed) if kind is tuple and parsed is not None else parsed
  return config


def split_items(arg: str) -> list[str]:
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
