"""Discriminators: global (one logit per window), conditional, and PatchGAN (one logit per patch).

Discriminator: the generator's down path with BatchNorm (conv stride 2 -> BatchNorm -> LeakyReLU 0.2 per level),
dropout, flatten, dense -> 1 logit. ConditionalDiscriminator: the same network whose input is the degraded input
and the candidate concatenated on channels (pix2pix). PatchDiscriminator: fully convolutional: `depth` down blocks
then a kernel-`head_kernel` conv to one channel, so each logit sees a receptive field set by the depth
(`receptive_field()`); conditional or not. The original removed its PatchGAN because it was broken; this one has no
flatten, so it takes any window that is a multiple of 2**depth.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from sr_jax.errors import UserError
from sr_jax.models.layers import ConvBlock, Dtype, as_windows, conv, level_channels, level_kernel


def _inputs(y, x, conditional: bool, dtype):
  y = as_windows(y)
  if conditional:
    if x is None:
      raise ValueError("a conditional discriminator needs the degraded input: call D(candidate, degraded_input)")
    y = jnp.concatenate([as_windows(x).astype(y.dtype), y], axis=-1)
  return y.astype(dtype)


def _down_path(h, depth: int, width: float, dtype, train: bool, conv_impl: str = "xla"):
  """conv stride 2 -> BatchNorm -> LeakyReLU for levels 1..depth (called inside a compact method)."""
  for b in range(1, depth + 1):
    h = ConvBlock(level_channels(b, width), level_kernel(b), stride=2, norm=True, dtype=dtype,
                  conv_impl=conv_impl, name=f"down_{b}")(h, train)
  return h


class Discriminator(nn.Module):
  """Global discriminator: (N, W, 1) [+ condition (N, W, 1)] -> logits (N, 1). W % 2**depth == 0."""

  depth: int = 4
  width: float = 1.0
  dropout: float = 0.5
  conditional: bool = False
  dtype: Dtype = jnp.float32
  conv_impl: str = "xla"  # xla | fft (see layers.conv; every conv here has stride 2, so both are the same)

  @nn.compact
  def __call__(self, y, x=None, train: bool = False):
    h = _inputs(y, x, self.conditional, self.dtype)
    if h.shape[1] % 2 ** self.depth:
      raise UserError(f"discriminator window {h.shape[1]} must be a multiple of 2**depth = {2 ** self.depth}")
    h = _down_path(h, self.depth, self.width, self.dtype, train, self.conv_impl)
    h = h.reshape(h.shape[0], -1)
    h = nn.Dropout(self.dropout, deterministic=not train, name="dropout")(h)
    return nn.Dense(1, dtype=self.dtype, name="logit")(h).astype(jnp.float32)


class ConditionalDiscriminator(Discriminator):
  """Discriminator conditioned on the degraded input: D(candidate, degraded_input)."""

  conditional: bool = True


class PatchDiscriminator(nn.Module):
  """PatchGAN: (N, W, 1) [+ condition] -> logits (N, W / 2**depth, 1), one per patch."""

  depth: int = 4
  width: float = 1.0
  conditional: bool = False
  head_kernel: int = 9
  dtype: Dtype = jnp.float32
  conv_impl: str = "xla"  # xla | fft (see layers.conv: only a stride-1 head of kernel >= FFT_MIN_KERNEL differs)

  @nn.compact
  def __call__(self, y, x=None, train: bool = False):
    h = _inputs(y, x, self.conditional, self.dtype)
    if h.shape[1] % 2 ** self.depth:
      raise UserError(f"patch discriminator window {h.shape[1]} must be a multiple of 2**depth = {2 ** self.depth}")
    h = _down_path(h, self.depth, self.width, self.dtype, train, self.conv_impl)
    return conv(1, self.head_kernel, 1, self.dtype, name="logit", impl=self.conv_impl)(h).astype(jnp.float32)

  def receptive_field(self) -> int:
    """Input samples seen by one logit: r = k_head; then for each level from the top r = 2 r + k_b - 2."""
    r = self.head_kernel
    for b in range(self.depth, 0, -1):
      r = 2 * (r - 1) + level_kernel(b)
    return r
