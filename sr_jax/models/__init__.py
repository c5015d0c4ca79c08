"""Flax (linen) networks: generator, discriminators, autoencoder, and builders from a config."""

from __future__ import annotations

import math

from sr_jax.errors import UserError
from sr_jax.models.autoencoder import AutoEncoder
from sr_jax.models.discriminators import (ConditionalDiscriminator, Discriminator, PatchDiscriminator,
                                          SpectrogramDiscriminator, check_spectrogram_settings)
from sr_jax.models.fill import SpectralFill
from sr_jax.models.generator import SPECTRAL_PARTS, Generator
from sr_jax.models.mask import SpectralMask, check_mask_settings
from sr_jax.models.layers import as_dtype, check_conv_impl, check_window, level_channels, level_kernel, subpixel

__all__ = [
    "AutoEncoder", "ConditionalDiscriminator", "Discriminator", "Generator", "PatchDiscriminator", "SPECTRAL_PARTS",
    "SpectralFill", "SpectralMask", "SpectrogramDiscriminator", "build_autoencoder", "build_discriminator",
    "build_generator", "check_mask_settings", "check_window", "level_channels", "level_kernel", "subpixel",
]


def _or(value, default):
  return default if value is None or value < 0 else value


def conv_impl(config) -> str:
  """config.model.conv_impl ("xla" for configs saved before the knob existed), checked."""
  return check_conv_impl(config.model.conv_impl)


UP_ACTIVATIONS = ("relu", "leaky_relu")


def up_activation(config) -> str:
  """config.model.up_activation, checked: one of UP_ACTIVATIONS, else a UserError."""
  name = config.model.up_activation
  if name not in UP_ACTIVATIONS:
    raise UserError(f"model.up_activation must be one of {', '.join(UP_ACTIVATIONS)}, got {name!r}")
  return name


def mask_settings(config) -> None:
  """config.model's mask front-end settings, checked: none (mask_channels 0) or ones that run on data.window, else a
  UserError."""
  m = config.model
  if m.mask_channels < 0:
    raise UserError(f"model.mask_channels must be >= 0 (0: no mask front-end), got {m.mask_channels}")
  if m.mask_channels > 0:
    check_mask_settings(m.mask_fft, m.mask_hop, m.mask_channels, m.mask_layers, config.data.window)
  if m.fill_channels < 0:
    raise UserError(f"model.fill_channels must be >= 0 (0: no spectral fill), got {m.fill_channels}")
  if m.fill_channels > 0:
    try:
      check_mask_settings(m.mask_fft, m.mask_hop, m.fill_channels, m.fill_layers, config.data.window, part="fill")
    except UserError as e:
      raise UserError(f"the spectral fill (model.fill_channels > 0): {e}") from None
  if not math.isfinite(m.fill_gain_db):
    raise UserError(f"model.fill_gain_db must be a finite number of dB, got {m.fill_gain_db}")


def build_generator(config) -> Generator:
  m = config.model
  mask_settings(config)
  return Generator(depth=m.depth, width=m.width, dropout=m.dropout, dtype=as_dtype(m.dtype),
                   zero_init_final=m.zero_init_final, conv_impl=conv_impl(config), up_activation=up_activation(config),
                   mask_channels=m.mask_channels, mask_fft=m.mask_fft, mask_hop=m.mask_hop, mask_layers=m.mask_layers,
                   mask_phase=bool(m.mask_phase), fill_channels=m.fill_channels, fill_layers=m.fill_layers,
                   fill_gain_db=float(m.fill_gain_db))


def build_discriminator(config):
  """The discriminator named by config.disc.kind (global | patch | mrsd), conditional when config.disc.conditional."""
  d, m = config.disc, config.model
  width, dtype = _or(d.width, m.width), as_dtype(m.dtype)
  if d.kind == "global":
    cls = ConditionalDiscriminator if d.conditional else Discriminator
    return cls(depth=_or(d.depth, m.depth), width=width, dropout=d.dropout, dtype=dtype, conv_impl=conv_impl(config))
  if d.kind == "patch":
    return PatchDiscriminator(depth=d.patch_depth, width=width, conditional=d.conditional, dtype=dtype,
                              conv_impl=conv_impl(config))
  if d.kind == "mrsd":
    check_spectrogram_settings(d.stft_fft_sizes, d.channels)
    return SpectrogramDiscriminator(fft_sizes=tuple(d.stft_fft_sizes), channels=d.channels, conditional=d.conditional,
                                    dtype=dtype)
  raise UserError(f"disc.kind must be 'global', 'patch' or 'mrsd', got {d.kind!r}")


def build_autoencoder(config) -> AutoEncoder:
  a, m = config.ae, config.model
  return AutoEncoder(depth=_or(a.depth, m.depth), width=_or(a.width, m.width), dropout=a.dropout,
                     dtype=as_dtype(m.dtype), conv_impl=conv_impl(config))
