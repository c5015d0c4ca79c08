"""The one short-time Fourier transform of sr_jax, shared by the metrics and the losses (numpy and jax.numpy).

Convention (the defaults of ``torch.stft(x, n_fft, hop, window=torch.hann_window(n_fft), center=True,
pad_mode="reflect", normalized=False, onesided=True, return_complex=True)``):

* window: periodic Hann, ``w[n] = 0.5 - 0.5 cos(2 pi n / n_fft)`` (``torch.hann_window``,
  ``scipy.signal.get_window("hann")``); n_fft = 2048 and hop = 512 by default;
* centring: the signal is padded with ``n_fft // 2`` samples on both sides by reflection without repeating the
  edge sample (``numpy.pad(mode="reflect")``, torch's ``"reflect"``). A signal too short to reflect
  (length <= n_fft // 2, where torch raises) is zero padded instead;
* frames: ``L = 1 + (length + 2 * (n_fft // 2) - n_fft) // hop`` (``1 + length // hop`` for even n_fft);
  frame l starts at sample ``l * hop`` of the padded signal ``xpad``;
* unnormalised one-sided DFT, ``n_fft // 2 + 1`` bins:
  ``S[l, k] = sum_n w[n] xpad[l * hop + n] exp(-2 pi i k n / n_fft)``.
  ``scipy.signal.stft`` divides by ``sum(w)`` by default: multiply its output by ``w.sum()`` to compare.

Layout: ``(..., frames, bins)``, time before frequency (torch and scipy give ``(..., bins, frames)``).
Bin k has frequency ``k * rate / n_fft`` (`bin_frequencies`).

The same code runs on numpy arrays (float64 stays float64, e.g. for evaluation) and on jax arrays (jit-able,
differentiable, any leading batch axes): the array module (`array_module`) is chosen from the input type,
so a traced value inside ``jax.jit`` takes the jax.numpy path. numpy uses ``rfft``; jax computes the DFT as a
matmul with cos/sin bases, because XLA does not partition FFTs over a sharded batch (it all-gathers them).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

DEFAULT_N_FFT = 2048
DEFAULT_HOP = 512


def array_module(x: Any) -> ModuleType:
  """jax.numpy for jax arrays (including tracers), numpy for everything else (numpy arrays, lists, scalars)."""
  return jnp if isinstance(x, jax.Array) else np


def as_float(x: Any) -> Any:
  """`x` as an array of its array module, promoted to at least float32 (float64 stays float64)."""
  xp = array_module(x)
  x = xp.asarray(x)
  return x.astype(xp.result_type(x.dtype, xp.float32))


def drop_channel_axis(x: Any, signal_ndim: int) -> Any:
  """Removes a trailing channel axis of size 1: ``(..., W, 1) -> (..., W)``.

  `signal_ndim` is the number of axes expected without the channel axis (1 for one signal, 2 for a batch);
  only an array with one more axis whose last size is 1 is squeezed, so ``(N, W)`` is never mistaken for a
  channel layout.
  """
  if x.ndim == signal_ndim + 1 and x.shape[-1] == 1:
    return x[..., 0]
  return x


def hann_window(n_fft: int, dtype: Any = np.float64) -> np.ndarray:
  """Periodic Hann window of length `n_fft` (``torch.hann_window(n_fft)``), as a numpy array of `dtype`."""
  n = np.arange(n_fft)
  return (0.5 - 0.5 * np.cos(2.0 * np.pi * n / n_fft)).astype(dtype)


def num_frames(length: int, n_fft: int = DEFAULT_N_FFT, hop: int = DEFAULT_HOP) -> int:
  """Number of STFT frames of a signal of `length` samples (centred, as `stft`)."""
  return 1 + (length + 2 * (n_fft // 2) - n_fft) // hop


def bin_frequencies(n_fft: int, rate: float) -> np.ndarray:
  """Frequency in Hz of each of the ``n_fft // 2 + 1`` one-sided bins: ``k * rate / n_fft``."""
  return np.arange(n_fft // 2 + 1) * (rate / n_fft)


def _check_sizes(n_fft: int, hop: int) -> None:
  for name, value in (("n_fft", n_fft), ("hop", hop)):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
      raise ValueError(f"STFT {name} must be a positive int, got {value!r}")


def center_pad(x: Any, n_fft: int) -> Any:
  """Pads the last axis with ``n_fft // 2`` samples on each side: reflection, or zeros if too short to reflect."""
  xp = array_module(x)
  pad = n_fft // 2
  mode = "reflect" if x.shape[-1] > pad else "constant"
  return xp.pad(x, [(0, 0)] * (x.ndim - 1) + [(pad, pad)], mode=mode)


def frame(x: Any, n_fft: int, hop: int) -> Any:
  """Frames of the last axis: ``(..., P) -> (..., 1 + (P - n_fft) // hop, n_fft)``, frame l = x[l*hop : l*hop+n_fft].

  numpy gets a strided view (no copy, for long evaluation signals); jax gathers with a static index table.
  """
  if array_module(x) is np:
    return np.lib.stride_tricks.sliding_window_view(x, n_fft, axis=-1)[..., ::hop, :]
  count = 1 + (x.shape[-1] - n_fft) // hop
  index = np.arange(count)[:, None] * hop + np.arange(n_fft)[None, :]
  return x[..., index]


def stft(x: Any, n_fft: int = DEFAULT_N_FFT, hop: int = DEFAULT_HOP) -> Any:
  """Complex STFT of the last axis of `x` (see the module docstring): ``(..., W) -> (..., frames, n_fft//2 + 1)``.

  numpy in, numpy out (complex128 for float64 input); jax in, jax out (complex64 for float32, jit-able).
  """
  _check_sizes(n_fft, hop)
  x = as_float(x)
  if x.ndim == 0 or x.shape[-1] == 0:
    raise ValueError(f"STFT needs a non-empty signal on the last axis, got shape {tuple(x.shape)}")
  xp = array_module(x)
  windowed = frame(center_pad(x, n_fft), n_fft, hop) * xp.asarray(hann_window(n_fft, x.dtype))
  if xp is np:
    return np.fft.rfft(windowed, axis=-1)
  return _rdft_matmul(windowed, n_fft)


def _rdft_matmul(frames: jax.Array, n_fft: int) -> jax.Array:
  """The one-sided DFT of the last axis as two matmuls with cos/sin bases built in the program.

  Under GSPMD, XLA all-gathers the batch of an FFT over the devices (it does not partition FFTs), while a dot
  over batch axes stays sharded; this keeps the STFT loss and metrics data-parallel. The phase k*n is reduced
  mod n_fft in integers, so the bases are exact to float32 rounding.
  """
  n = jnp.arange(n_fft, dtype=jnp.int32)
  k = jnp.arange(n_fft // 2 + 1, dtype=jnp.int32)
  angle = (2.0 * np.pi / n_fft) * ((n[:, None] * k[None, :]) % n_fft).astype(frames.dtype)
  dot = lambda basis: jnp.einsum("...n,nk->...k", frames, basis, precision=jax.lax.Precision.HIGHEST)
  return jax.lax.complex(dot(jnp.cos(angle)), -dot(jnp.sin(angle)))


def istft(spectrum: Any, length: int, n_fft: int = DEFAULT_N_FFT, hop: int = DEFAULT_HOP) -> Any:
  """The inverse of `stft` (``torch.istft`` with the same window, ``center=True``): ``(..., frames, n_fft//2 + 1)
  -> (..., length)``. Each frame's inverse one-sided DFT is windowed again, overlap-added and divided by the summed
  squared window (weighted overlap-add), so ``istft(stft(x), len(x)) == x`` to rounding, and a modified spectrum
  gives the signal whose STFT is closest to it in least squares (Griffin and Lim 1984). Needs ``n_fft % hop == 0``,
  ``n_fft >= 2 * hop`` and ``length <= (frames - 1) * hop + n_fft // 2`` (what the frames cover once the centring
  pad is cut off).

  numpy: ``irfft``; jax: matmuls with cos/sin bases (as `stft`, so a sharded batch stays sharded).
  """
  _check_sizes(n_fft, hop)
  if n_fft % hop or n_fft < 2 * hop:  # hop = n_fft: the Hann window is 0 where the frames meet
    raise ValueError(f"istft needs n_fft to be a multiple of hop, at least 2 hops, got n_fft={n_fft}, hop={hop}")
  xp = array_module(spectrum)
  frames = spectrum.shape[-2]
  if spectrum.shape[-1] != n_fft // 2 + 1 or length > (frames - 1) * hop + n_fft // 2:
    raise ValueError(f"istft of a spectrum {tuple(spectrum.shape)} cannot give {length} samples with n_fft={n_fft}, "
                     f"hop={hop}")
  if xp is np:
    real = np.fft.irfft(spectrum, n=n_fft, axis=-1)
  else:
    real = _irdft_matmul(spectrum, n_fft)
  window = hann_window(n_fft)
  start = n_fft // 2
  signal = _overlap_add(real * xp.asarray(window, real.dtype), hop)[..., start:start + length]
  # the summed squared window; every kept sample lies strictly inside a frame, where the window is nonzero
  squared = _overlap_add(np.broadcast_to(window**2, (frames, n_fft)), hop)[start:start + length]
  return signal / xp.asarray(squared, real.dtype)


def _overlap_add(frames: Any, hop: int) -> Any:
  """``(..., L, n) -> (..., (L - 1) * hop + n)``: frame l added at sample l * hop (n a multiple of hop). Frame l's
  piece k (samples k*hop .. (k+1)*hop) lands at (l + k) * hop, so the n / hop pieces are L-long runs, each shifted."""
  xp = array_module(frames)
  count, n = frames.shape[-2:]
  lead = frames.shape[:-2]
  span = (count - 1) * hop + n
  out = 0
  for k in range(n // hop):
    piece = frames[..., k * hop:(k + 1) * hop].reshape(lead + (count * hop,))
    out = out + xp.pad(piece, [(0, 0)] * len(lead) + [(k * hop, span - count * hop - k * hop)])
  return out


def _irdft_matmul(spectrum: jax.Array, n_fft: int) -> jax.Array:
  """The real inverse of the one-sided DFT (``irfft`` with n = n_fft) as two matmuls, the twin of `_rdft_matmul`:
  ``x[n] = (1 / n_fft) sum_k c_k (Re S_k cos(2 pi k n / n_fft) - Im S_k sin(2 pi k n / n_fft))``, c_k = 1 at k = 0 and
  k = n_fft / 2, else 2 (the imaginary parts there drop out, as in irfft)."""
  bins = n_fft // 2 + 1
  n = jnp.arange(n_fft, dtype=jnp.int32)
  k = jnp.arange(bins, dtype=jnp.int32)
  dtype = spectrum.real.dtype
  angle = (2.0 * np.pi / n_fft) * ((k[:, None] * n[None, :]) % n_fft).astype(dtype)
  weight = np.full(bins, 2.0)
  weight[0] = 1.0
  if n_fft % 2 == 0:
    weight[-1] = 1.0
  weight = jnp.asarray(weight / n_fft, dtype)[:, None]
  dot = lambda part, basis: jnp.einsum("...k,kn->...n", part, basis * weight, precision=jax.lax.Precision.HIGHEST)
  return dot(spectrum.real, jnp.cos(angle)) - dot(spectrum.imag, jnp.sin(angle))


def power(spectrum: Any) -> Any:
  """``|S|^2`` as ``re^2 + im^2`` (smooth, so its gradient is defined at S = 0, unlike ``abs``)."""
  return spectrum.real**2 + spectrum.imag**2
