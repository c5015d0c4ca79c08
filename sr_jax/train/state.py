"""The train state (generator, discriminator, autoencoder: params, BatchNorm stats, optax states), optimizers and init."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from sr_jax import losses
from sr_jax.errors import UserError
from sr_jax.models import (SPECTRAL_PARTS, build_autoencoder, build_discriminator, build_generator,
                           check_spectrogram_settings, check_window, mask_settings, up_activation)


class Models(NamedTuple):
  """The networks a config asks for; `disc`/`ae` are None when their loss term is off."""

  gen: Any
  disc: Any
  ae: Any


@struct.dataclass
class NetState:
  params: Any
  batch_stats: Any
  opt_state: Any


@struct.dataclass
class TrainState:
  step: jax.Array  # int32: global step (autoencoder phase steps first, then generator steps)
  rng: jax.Array  # uint32[2] raw key (checkpointable)
  gen: NetState
  disc: NetState | None
  ae: NetState | None
  adv_on: jax.Array  # bool: the adversarial term is on (latched once switched on)
  d_loss_ema: jax.Array  # float32: running discriminator loss (for the switch-on rule)


DISC_KINDS = ("global", "patch", "mrsd")


def uses_disc(config) -> bool:
  return config.loss.lambda_adv > 0


def uses_ae(config) -> bool:
  return config.loss.lambda_feature > 0


def build_models(config) -> Models:
  check_config(config)
  return Models(build_generator(config), build_discriminator(config) if uses_disc(config) else None,
                build_autoencoder(config) if uses_ae(config) else None)


def check_config(config) -> None:
  """Config mistakes caught before anything is compiled, each as one clear UserError."""
  check_window(config.data.window, config.model.depth)
  up_activation(config)
  if not 0 < config.data.stride <= config.data.window:
    raise UserError(f"data.stride={config.data.stride} must be in 1..data.window={config.data.window}")
  check_enhance_window(config)
  if uses_ae(config):
    ae_depth = config.ae.depth if config.ae.depth > 0 else config.model.depth
    check_window(config.data.window, ae_depth)
    if config.train.ae_steps <= 0 and not config.train.ae_checkpoint:
      raise UserError("loss.lambda_feature > 0 needs a trained autoencoder: set train.ae_steps > 0 (train it first "
                      "in this launch) or train.ae_checkpoint=<workdir of an earlier run>")
  if uses_disc(config) and config.disc.kind not in DISC_KINDS:
    raise UserError(f"disc.kind must be one of {list(DISC_KINDS)}, got {config.disc.kind!r}")
  if uses_disc(config) and config.disc.kind == "mrsd":
    check_spectrogram_settings(config.disc.stft_fft_sizes, config.disc.channels)
  lambda_fm = config.loss.lambda_fm
  if not lambda_fm >= 0 or (lambda_fm > 0 and not uses_disc(config)):
    raise UserError(f"loss.lambda_fm={lambda_fm} must be 0 (off) or > 0 with a discriminator (loss.lambda_adv > 0, "
                    f"got {config.loss.lambda_adv}): feature matching compares the discriminator's features")
  if uses_disc(config) and config.disc.kind == "global":
    d_depth = config.disc.depth if config.disc.depth > 0 else config.model.depth
    if config.data.window % 2 ** d_depth:
      raise UserError(f"data.window={config.data.window} must be a multiple of 2**disc.depth = {2 ** d_depth}")
  if config.loss.lambda_corridor > 0:
    lc = config.loss
    losses.check_corridor_settings(lc.corridor_floor_db, lc.corridor_ceiling_db, lc.corridor_pool, lc.stft_fft_sizes,
                                   ("loss.corridor_floor_db", "loss.corridor_ceiling_db", "loss.corridor_pool"))
  if config.optim.freeze not in ("", "gen"):
    raise UserError(f"optim.freeze must be '' or 'gen' (the generator stays as it starts), got {config.optim.freeze!r}")
  if config.loss.reconstruction not in losses.RECONSTRUCTION_KINDS:
    allowed = ", ".join(repr(k) for k in losses.RECONSTRUCTION_KINDS)
    raise UserError(f"loss.reconstruction must be one of {allowed}, got {config.loss.reconstruction!r}")
  if not config.loss.snr_max_db > 0:
    raise UserError(f"loss.snr_max_db must be > 0 (dB), got {config.loss.snr_max_db}")
  if config.train.batch_size <= 0 or config.train.num_steps < 0:
    raise UserError("train.batch_size must be > 0 and train.num_steps >= 0")
  o = config.optim
  if o.warmup_steps < 0:
    raise UserError(f"optim.warmup_steps must be >= 0, got {o.warmup_steps}")
  if not o.mask_lr_scale > 0:
    raise UserError(f"optim.mask_lr_scale must be > 0, got {o.mask_lr_scale}")
  mask_settings(config)
  eval_chains(config)


def eval_chains(config) -> dict[str, str]:
  """{name: chain} of config.train.eval_chains ({} when it is ""), each chain checked as `sr-jax evaluate --chains`
  checks them and against the model's rate; a mistake is one UserError naming the key."""
  spec = str(config.train.eval_chains or "")
  if not spec.strip():
    return {}
  from sr_jax.data.chains import eval_rate, parse_chains  # noqa: PLC0415 (degrade's scipy: only when set)

  try:
    chains = parse_chains(spec)
    for chain in chains.values():
      eval_rate(config, chain)
  except UserError as e:
    raise UserError(f"train.eval_chains: {e}") from None
  return chains


def check_enhance_window(config) -> None:
  """data.enhance_window (the window enhancement uses by default) is 0 or a window the generator fits: checked when
  training starts, not hours later when the model is first used."""
  value = config.data.enhance_window
  if isinstance(value, bool) or not isinstance(value, int) or value < 0:
    raise UserError(f"data.enhance_window must be 0 (the training window) or a number of samples, got {value!r}")
  if value:
    try:
      check_window(value, config.model.depth)
    except UserError as e:
      raise UserError(f"data.enhance_window={value}: {e}") from None


def config_warnings(config) -> list[str]:
  """What is allowed but probably not meant (train_and_evaluate logs each once per start)."""
  o, warnings = config.optim, []
  if o.schedule == "warmup_cosine" and 0 < config.train.num_steps <= o.warmup_steps:  # e.g. a recipe run shortened
    warnings.append(f"optim.warmup_steps={o.warmup_steps} >= train.num_steps={config.train.num_steps}: the learning "
                    "rate is still warming up when the run ends (it never reaches optim.lr_g)")
  return warnings


def learning_rate(config, lr: float):
  o = config.optim
  if o.schedule == "constant":
    return optax.constant_schedule(lr)
  if o.schedule == "warmup_cosine":
    # a run no longer than its warm-up only warms up (optax needs decay_steps > warmup_steps)
    decay_steps = max(config.train.num_steps, o.warmup_steps + 1, 2)
    return optax.warmup_cosine_decay_schedule(0.0, lr, max(o.warmup_steps, 1), decay_steps)
  raise UserError(f"optim.schedule must be 'constant' or 'warmup_cosine', got {o.schedule!r}")


def _spectral_parts(params) -> dict:
  """The optax.masked mask of the generator's spectral parts: True on the mask front-end's and the fill's subtrees
  ("mask", "fill"), False elsewhere."""
  return {name: name in SPECTRAL_PARTS for name in params}


def make_optimizer(config, lr: float, plateau: bool = False,
                   mask_lr_scale: float = 1.0) -> optax.GradientTransformationExtraArgs:
  """clip (optional) -> adam/adamw on the schedule -> the mask front-end's and the fill's updates times
  `mask_lr_scale` (the generator's, when not 1) -> reduce_on_plateau (optional, needs `value=` at update)."""
  o = config.optim
  parts = [optax.clip_by_global_norm(o.grad_clip)] if o.grad_clip > 0 else []
  if o.optimizer == "adam":
    parts.append(optax.adam(learning_rate(config, lr), b1=o.b1, b2=o.b2))
  elif o.optimizer == "adamw":
    parts.append(optax.adamw(learning_rate(config, lr), b1=o.b1, b2=o.b2, weight_decay=o.weight_decay))
  elif o.optimizer == "sgd":
    parts.append(optax.sgd(learning_rate(config, lr)))
  else:
    raise UserError(f"optim.optimizer must be 'adam', 'adamw' or 'sgd', got {o.optimizer!r}")
  if mask_lr_scale != 1.0:
    parts.append(optax.masked(optax.scale(mask_lr_scale), _spectral_parts))
  if plateau:
    parts.append(optax.contrib.reduce_on_plateau(factor=o.plateau_factor, patience=o.plateau_patience))
  return optax.chain(*parts)


class Optimizers(NamedTuple):
  gen: optax.GradientTransformationExtraArgs
  disc: optax.GradientTransformationExtraArgs
  ae: optax.GradientTransformationExtraArgs


def make_optimizers(config) -> Optimizers:
  o = config.optim
  return Optimizers(make_optimizer(config, o.lr_g, plateau=o.plateau, mask_lr_scale=o.mask_lr_scale),
                    make_optimizer(config, o.lr_d),
                    make_optimizer(config, o.lr_ae))


def _net_state(module, tx, key, *inputs) -> NetState:
  variables = module.init({"params": key, "dropout": key}, *inputs)
  params = variables["params"]
  return NetState(params, variables.get("batch_stats", {}), tx.init(params))


def init_state(config, models: Models, optimizers: Optimizers, batch_size: int = 1) -> TrainState:
  """A fresh state (call under jit with out_shardings to create large params directly sharded)."""
  key = jax.random.PRNGKey(config.seed)
  k_g, k_d, k_ae, k_run = jax.random.split(key, 4)
  x = jnp.zeros((batch_size, config.data.window, 1), jnp.float32)
  disc = ae = None
  if models.disc is not None:
    disc = _net_state(models.disc, optimizers.disc, k_d, *((x, x) if models.disc.conditional else (x,)))
  if models.ae is not None:
    ae = _net_state(models.ae, optimizers.ae, k_ae, x)
  return TrainState(step=jnp.zeros((), jnp.int32), rng=k_run, gen=_net_state(models.gen, optimizers.gen, k_g, x),
                    disc=disc, ae=ae, adv_on=jnp.zeros((), bool), d_loss_ema=jnp.full((), jnp.log(4.0)))
