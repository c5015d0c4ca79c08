"""FFT convolution: the generator's big-kernel stride-1 convolutions, computed in the frequency domain.

`fft_conv1d(x, kernel)` is exactly `lax.conv_general_dilated(x, kernel, (1,), [(p, p)], ("NWC", "WIO", "NWC"))`
with p = k // 2 (a cross-correlation with "same" zero padding, odd k), up to float32 rounding:
  out[n, t, o] = sum_{i, c} x[n, t + i - p, c] * kernel[i, c, o]      (x = 0 outside 0 <= t < W)
Direct convolution costs 2 W k Cin Cout flops per window; here it is a real FFT of the input per channel, a complex
channel mix per frequency (about 8 F Cin Cout real flops, F = n/2 + 1) and an inverse FFT per output channel, so for
k = 33 or 65 it is several times cheaper (bench/conv_impl.py measures it).

How: with the kernel laid out circularly, g[d mod n] = kernel[d + p] for -p <= d <= p, the circular
cross-correlation c[t] = sum_m x[(t + m) mod n] g[m] equals out[t] for 0 <= t < W as soon as n >= W + p (the taps
reaching left of the window wrap onto the zeros at W..n-1, those reaching right never wrap) and n >= k (no two taps
share a slot). Its spectrum is C = X * conj(G), X = rfft(x, n). conj(G)[f] = sum_i kernel[i] e^{+2 pi i f (i - p)/n}
is computed directly as one (2F, k) @ (k, Cin Cout) matmul with a constant cos/sin matrix (the kernel has only k
nonzero taps out of n, and the result comes out laid (F, Cin, Cout) as the per-frequency mix wants it). n is the
smallest 2^a 3^b 5^c >= max(W + p, k). The mix is a batched matmul with the frequency as the leading batch dimension
(F, N, Cin) @ (F, Cin, Cout), the fastest of the orderings measured on XLA's CPU backend.

Everything runs in float32 (FFTs in bfloat16 are not supported on every backend); `FFTConv` casts the result to its
dtype. `FFTConv` has exactly nn.Conv's parameters ("kernel" (k, Cin, Cout), "bias" (Cout,), the same initialisers),
so checkpoints are interchangeable with the lax implementation.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.linen.linear import default_kernel_init
from jax import lax

Dtype = Any


def fast_size(m: int) -> int:
  """The smallest 2^a 3^b 5^c >= m (sizes every FFT library does fast)."""
  size = max(1, m)
  while True:
    rest = size
    for prime in (2, 3, 5):
      while rest % prime == 0:
        rest //= prime
    if rest == 1:
      return size
    size += 1


def fft_size(width: int, kernel: int) -> int:
  """The transform length used for a window of `width` samples and an odd kernel: fast and >= max(W + k//2, k)."""
  return fast_size(max(width + kernel // 2, kernel))


def _conj_spectrum_matrix(kernel: int, n: int) -> np.ndarray:
  """(2F, k) float32: rows [cos; sin] of 2 pi f (i - p) / n, so that M @ kernel = [Re; Im] of conj(G)."""
  f = np.arange(n // 2 + 1)[:, None]
  i = np.arange(kernel)[None, :] - kernel // 2
  angle = 2 * np.pi * ((f * i) % n) / n  # exact integer phase before scaling
  return np.concatenate([np.cos(angle), np.sin(angle)], axis=0).astype(np.float32)


def kernel_spectrum(kernel: jax.Array, n: int) -> jax.Array:
  """(k, Cin, Cout) real -> conj(G) (F, Cin, Cout) complex64, G the rfft of the circularly laid kernel."""
  k, cin, cout = kernel.shape
  f = n // 2 + 1
  s = jnp.dot(jnp.asarray(_conj_spectrum_matrix(k, n)), kernel.astype(jnp.float32).reshape(k, cin * cout),
              precision=lax.Precision.HIGHEST)  # independent of the batch: cheap, keep it exact on every backend
  s = s.reshape(2, f, cin, cout)
  return lax.complex(s[0], s[1])


def fft_conv1d(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """x (N, W, Cin), kernel (k, Cin, Cout) with k odd -> (N, W, Cout) float32; see the module docstring."""
  if x.ndim != 3 or kernel.ndim != 3 or x.shape[-1] != kernel.shape[1]:
    raise ValueError(f"fft_conv1d needs x (N, W, Cin) and kernel (k, Cin, Cout), got {x.shape} and {kernel.shape}")
  k = kernel.shape[0]
  if k % 2 == 0:
    raise ValueError(f"fft_conv1d needs an odd kernel size, got {k}")
  _, w, _ = x.shape
  n = fft_size(w, k)
  spec_x = jnp.fft.rfft(jnp.swapaxes(x.astype(jnp.float32), 1, 2), n=n)  # (N, Cin, F)
  spec_x = jnp.transpose(spec_x, (2, 0, 1))  # (F, N, Cin)
  spec_y = jnp.einsum("fnc,fco->fno", spec_x, kernel_spectrum(kernel, n))  # (F, N, Cout)
  y = jnp.fft.irfft(jnp.transpose(spec_y, (1, 2, 0)), n=n)  # (N, Cout, n)
  return jnp.swapaxes(y[:, :, :w], 1, 2)


class FFTConv(nn.Module):
  """nn.Conv(features, (k,), strides=1, padding=[(k//2, k//2)]) computed by `fft_conv1d`, with the same params.

  Inputs (..., W, Cin); the convolution runs in float32 and the output is cast to `dtype`.
  """

  features: int
  kernel_size: int
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  kernel_init: Callable = default_kernel_init  # nn.Conv's defaults
  bias_init: Callable = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", self.kernel_init, (self.kernel_size, x.shape[-1], self.features), self.param_dtype)
    bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype)
    lead = x.shape[:-2]
    y = fft_conv1d(x.reshape((-1,) + x.shape[-2:]), kernel) + bias.astype(jnp.float32)
    return y.reshape(lead + y.shape[-2:]).astype(self.dtype)
