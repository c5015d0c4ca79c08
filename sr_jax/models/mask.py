"""The spectral mask front-end: a gain in [0, 1] per time-frequency bin of the input's STFT, predicted from its log
power spectrogram, before the U-Net (model.mask_channels > 0).

  x (N, W)              S = stft(x) (sr_jax.spectral: periodic Hann, centred; n_fft, hop)  (N, frames, bins)
  features              log(|S|^2 + 1e-8) minus its mean over the window (so the gains do not depend on the level)
  in                    dense bins -> channels
  block_1 .. block_L    residual: h + conv over frames (kernel 3, dilation 1, 2, 4, 8, 1, ...)(gelu(LayerNorm(h)))
  out                   dense channels -> bins, sigmoid (bias 4: every gain starts at 0.98, near the identity)
  turn                  (phase=True) dense channels -> 2 x bins (a, b); the gain is 2 sigmoid(out) times the unit
                        turn (1 + a + i b) / |1 + a + i b|, out and turn zero-initialised: exactly 1 at the start
  y                     istft(S * gains)                                                    (N, W)

Why: the time-domain U-Net learns to remove noise slowly (a few dB after hours on CPU), while a gain per bin is what
Wiener filtering, spectral subtraction and most speech enhancement networks apply, and a small network learns it
fast: noise and the late part of a room's tail sit in bins the signal leaves weak. A gain cannot invent what the
input lacks (a missing band, the phase under the noise); the U-Net after it does that.

Why a phase turn (phase=True): an IIR low-pass or the telephone band-pass turns the phase of the passband near its
edges (a Butterworth at 4 kHz by more than 90 degrees from 1 to 3.5 kHz), so under a waveform loss the best real
gain there is 0 (Re(T conj(X)) / |X|^2, clipped): a real mask trained on such input cuts the passband of clean
band-limited input too. A complex gain can turn it back, and a magnitude up to 2 lifts a filter's -3 dB edge.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from sr_jax import spectral
from sr_jax.errors import UserError
from sr_jax.models.layers import Dtype

LOG_POWER_FLOOR = 1e-8  # inside the log of the features: -80 dB, under 16-bit quantisation noise
GAIN_BIAS = 4.0  # sigmoid(4) = 0.982: the front-end starts almost transparent
PHASE_MAX_GAIN = 2.0  # phase=True: the magnitude is PHASE_MAX_GAIN * sigmoid(out), 1 at the start
TURN_FLOOR = 1e-12  # inside the turn's norm: (1 + a, b) = 0 maps to 0 instead of NaN


def check_mask_settings(n_fft: int, hop: int, channels: int, layers: int, window: int, part: str = "mask") -> None:
  """UserError unless a mask front-end (or, with part="fill", a spectral fill) with these settings (model.mask_fft,
  mask_hop, PART_channels, PART_layers) runs on windows of `window` samples."""
  if hop < 1 or n_fft % hop or n_fft < 2 * hop:
    raise UserError(f"model.mask_fft must be a multiple of model.mask_hop, at least twice it, got {n_fft} and {hop}")
  if window % hop or window < n_fft:
    raise UserError(f"data.window ({window}) must be a multiple of model.mask_hop ({hop}) and at least "
                    f"model.mask_fft ({n_fft})")
  if channels < 1 or layers < 0:
    raise UserError(f"model.{part}_channels must be > 0 and model.{part}_layers >= 0, got {channels} and {layers}")


def dilation(block: int) -> int:
  """Block `block` (0-based)'s dilation over frames: 1, 2, 4, 8, 1, 2, ..."""
  return 2 ** (block % 4)


def frame_trunk(features, channels: int, layers: int, dtype: Dtype):
  """(N, frames, bins) features -> (N, frames, channels): in, block_1 .. block_L, norm_out (the module docstring's
  trunk). Called inside a compact method: its layers become that module's own (the names say which)."""
  h = nn.Dense(channels, dtype=dtype, name="in")(features.astype(dtype))
  for b in range(layers):
    r = nn.gelu(nn.LayerNorm(dtype=dtype, name=f"norm_{b}")(h))
    h = h + nn.Conv(channels, (3,), kernel_dilation=(dilation(b),), padding="SAME", dtype=dtype,
                    name=f"block_{b + 1}")(r)
  return nn.gelu(nn.LayerNorm(dtype=dtype, name="norm_out")(h))


class SpectralMask(nn.Module):
  """(N, W) float32 -> (N, W) float32: the input with a learned gain on each STFT bin (module docstring)."""

  n_fft: int = 512
  hop: int = 128
  channels: int = 256
  layers: int = 6
  phase: bool = False  # True: a complex gain (a magnitude in [0, 2] and a phase turn per bin), else a real one
  dtype: Dtype = jnp.float32

  @nn.compact
  def gains(self, x):
    """(N, W) -> (S, g): the input's STFT (N, frames, bins) complex and its gains (N, frames, bins): real in [0, 1],
    or with phase=True complex with |g| in [0, 2]."""
    spectrum = spectral.stft(x, self.n_fft, self.hop)
    features = jnp.log(spectral.power(spectrum) + LOG_POWER_FLOOR)
    features = features - jnp.mean(features, axis=(-2, -1), keepdims=True)
    h = frame_trunk(features, self.channels, self.layers, self.dtype)
    bins = self.n_fft // 2 + 1
    if not self.phase:
      logits = nn.Dense(bins, dtype=self.dtype, bias_init=nn.initializers.constant(GAIN_BIAS), name="out")(h)
      return spectrum, nn.sigmoid(logits.astype(jnp.float32))
    logits = nn.Dense(bins, dtype=self.dtype, kernel_init=nn.initializers.zeros, name="out")(h).astype(jnp.float32)
    turn = nn.Dense(2 * bins, dtype=self.dtype, kernel_init=nn.initializers.zeros, name="turn")(h).astype(jnp.float32)
    re, im = 1.0 + turn[..., :bins], turn[..., bins:]
    norm = jnp.sqrt(re * re + im * im + TURN_FLOOR)
    magnitude = PHASE_MAX_GAIN * nn.sigmoid(logits)
    return spectrum, jax.lax.complex(magnitude * re / norm, magnitude * im / norm)

  def __call__(self, x):
    spectrum, gains = self.gains(x)
    return spectral.istft(spectrum * gains, x.shape[-1], self.n_fft, self.hop)
