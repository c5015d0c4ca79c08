"""Building blocks shared by every network: level sizes, the window check, subpixel, conv blocks.

All networks are channels-last: audio batches are (N, W, C) with C = 1 for a mono window.

Level b = 1..B of a depth-B network has (as in Kuleshov et al. 2017 and the original EPFL code)
  channels(b) = min(2**(6 + b), 512) * width    -> 128, 256, 512, 512, ... at width 1
  kernel(b)   = max(2**(7 - b) + 1, 9)           -> 65, 33, 17, 9, 9, ...
Convolutions use "same" zero padding of kernel // 2 samples on both sides (PyTorch's padding=k//2), so a
stride-2 conv halves an even width exactly.

model.conv_impl picks how convolutions are computed: "xla" (lax.conv_general_dilated via nn.Conv everywhere) or
"fft" (stride-1 convolutions with an odd kernel >= FFT_MIN_KERNEL via sr_jax.models.fftconv.FFTConv, the rest as
"xla"). Both have the same parameters, so a checkpoint trained with one runs with the other.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from sr_jax.errors import UserError
from sr_jax.models.fftconv import FFTConv

Dtype = Any
CONV_IMPLS = ("xla", "fft")
# Smallest kernel computed by FFT with conv_impl="fft". Measured alone (bench/conv_impl.py, piano_r4_16k's up-block
# shapes, batch 16, 2 loaded CPU cores): by FFT k = 17, 33, 65 are 1.9x, 2.9x, 4.2x faster forward (1.9x, 3.3x, 4.6x
# forward+backward); k = 9 (W 64, 64 -> 128 ch) is even forward, 1.2x forward+backward: not worth the switch.
FFT_MIN_KERNEL = 17


def level_channels(level: int, width: float = 1.0) -> int:
  """Output channels of down level `level` (1-based); even and >= 2 at any width (subpixel halves them)."""
  base = min(2 ** (6 + level), 512)
  return max(2, 2 * int(round(base * width / 2)))


def level_kernel(level: int) -> int:
  """Kernel size of level `level` (1-based): 65, 33, 17, 9, 9, ..."""
  return max(2 ** (7 - level) + 1, 9)


def check_window(window: int, depth: int) -> None:
  """A depth-B network halves the window B + 1 times: it must be a positive multiple of 2**(B + 1)."""
  if not isinstance(depth, int) or depth < 1:
    raise UserError(f"model depth must be an integer >= 1, got {depth!r}")
  unit = 2 ** (depth + 1)
  if not isinstance(window, int) or window <= 0 or window % unit:
    lower = (window // unit) * unit if isinstance(window, int) else 0
    choices = [c for c in (lower, lower + unit) if c > 0]
    raise UserError(
        f"window {window} does not fit a depth-{depth} network: it must be a multiple of 2**(depth+1) = {unit} "
        f"(nearest valid windows: {' or '.join(str(c) for c in choices)})")


def subpixel(x: jnp.ndarray) -> jnp.ndarray:
  """Kuleshov's SubPixel1D, channels-last: (N, W, C) -> (N, 2W, C/2).

  out[n, 2w + i, c] = x[n, w, i * C/2 + c]: the two halves of the channels are interleaved in time. In row-major
  memory this is exactly a reshape (free in XLA).
  """
  n, w, c = x.shape
  if c % 2:
    raise ValueError(f"subpixel needs an even number of channels, got {c}")
  return x.reshape(n, 2 * w, c // 2)


def check_conv_impl(impl: str) -> str:
  if impl not in CONV_IMPLS:
    raise UserError(f"model.conv_impl must be one of {list(CONV_IMPLS)}, got {impl!r}")
  return impl


def uses_fft(kernel: int, stride: int, impl: str) -> bool:
  """Whether conv(...) computes this convolution by FFT: impl "fft", stride 1, odd kernel >= FFT_MIN_KERNEL."""
  return check_conv_impl(impl) == "fft" and stride == 1 and kernel % 2 == 1 and kernel >= FFT_MIN_KERNEL


def conv(features: int, kernel: int, stride: int, dtype: Dtype, name: str | None = None, zero_init: bool = False,
         impl: str = "xla") -> nn.Module:
  """A 1-D convolution with the zero padding kernel // 2 on both sides (optionally all-zero initial weights).

  nn.Conv, or with impl="fft" and a big stride-1 kernel (`uses_fft`) FFTConv: the same parameters and values.
  """
  extra = {"kernel_init": nn.initializers.zeros} if zero_init else {}
  if uses_fft(kernel, stride, impl):
    return FFTConv(features, kernel, dtype=dtype, name=name, **extra)
  return nn.Conv(features, (kernel,), strides=(stride,), padding=[(kernel // 2, kernel // 2)], dtype=dtype,
                 name=name, **extra)


class ConvBlock(nn.Module):
  """conv -> [BatchNorm] -> [dropout] -> activation.

  Down blocks: stride 2, LeakyReLU 0.2 (+ BatchNorm in the discriminators and the autoencoder).
  Bottleneck: stride 2, dropout, LeakyReLU 0.2.
  """

  features: int
  kernel: int
  stride: int = 2
  norm: bool = False
  dropout: float = 0.0
  activation: str = "leaky_relu"  # leaky_relu | relu | none
  dtype: Dtype = jnp.float32
  conv_impl: str = "xla"  # xla | fft (see conv)

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = conv(self.features, self.kernel, self.stride, self.dtype, name="conv", impl=self.conv_impl)(x)
    if self.norm:
      # momentum 0.9 == PyTorch's BatchNorm momentum 0.1 (the original); statistics update only when mutable.
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=self.dtype,
                       name="norm")(x)
    if self.dropout > 0:
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return activation(self.activation)(x)


class UpBlock(nn.Module):
  """conv (stride 1) -> dropout -> ReLU (or `activation`) -> subpixel -> [concat with the mirrored down output]."""

  features: int
  kernel: int
  dropout: float = 0.5
  dtype: Dtype = jnp.float32
  conv_impl: str = "xla"
  activation: str = "relu"  # relu (Kuleshov et al.) | leaky_relu (a unit negative on every input still learns)

  @nn.compact
  def __call__(self, x, skip=None, train: bool = False):
    x = ConvBlock(self.features, self.kernel, stride=1, dropout=self.dropout, activation=self.activation,
                  dtype=self.dtype, conv_impl=self.conv_impl, name="block")(x, train)
    x = subpixel(x)
    if skip is not None:
      x = jnp.concatenate([x, skip.astype(x.dtype)], axis=-1)
    return x


def activation(name: str):
  if name == "leaky_relu":
    return lambda x: nn.leaky_relu(x, negative_slope=0.2)
  if name == "relu":
    return nn.relu
  if name == "none":
    return lambda x: x
  raise ValueError(f"unknown activation {name!r}")


def as_dtype(name) -> Dtype:
  """'float32' | 'bfloat16' (or a dtype) -> a jnp dtype; anything else is a UserError."""
  if not isinstance(name, str):
    return name
  table = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
  if name not in table:
    raise UserError(f"model.dtype must be one of {sorted(table)}, got {name!r}")
  return table[name]


def as_windows(x: jnp.ndarray) -> jnp.ndarray:
  """(N, W) -> (N, W, 1); (N, W, C) unchanged."""
  if x.ndim == 2:
    return x[..., None]
  if x.ndim != 3:
    raise ValueError(f"expected audio windows of shape (N, W) or (N, W, C), got {x.shape}")
  return x
