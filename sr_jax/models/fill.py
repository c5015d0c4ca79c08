"""The spectral fill after the U-Net (model.fill_channels > 0): noise of a learned level per STFT bin added to the
output, where the output lacks a band the target has.

  y (N, W)              the U-Net's output;  S = stft(y) (n_fft, hop: the mask's model.mask_fft / mask_hop)
  ref                   log of S's mean power over the window's frames and bins (the level everything is relative to)
  features              log(|S|^2 + 1e-8) - ref, gradients stopped (the fill learns from the output, it does not
                        steer the U-Net)
  trunk                 as the mask's (sr_jax.models.mask.frame_trunk): in, residual conv blocks over frames
  out                   dense channels -> bins: a log-magnitude l per bin (kernel 0, bias FILL_BIAS: every bin
                        starts 40 dB under the mean bin power), at most FILL_MAX_LOG
  y + g istft(exp(ref / 2 + l) e^{i phi})   phi: fixed random phases (one draw, the same for every window);
                        g = 10^(model.fill_gain_db / 20) outside training, 1 in training

Why: a band-limited input's missing band cannot be predicted in phase (the U-Net's fill there is 30-45 dB under the
truth and unrelated to it, bench/RESULTS.md), and a waveform loss keeps any unpredictable part at zero, while the
log-spectral distance (LSD) punishes an empty band most. A level per bin is predictable: the fill puts noise at the
level the loss's balance of waveform (SNR) and log-magnitude (STFT) terms asks for, under the band's true level; the
time-domain network could not learn to (the STFT term's gradient did not move its fill). The fill never removes
anything; its level follows the output's spectrum frame by frame.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sr_jax import spectral
from sr_jax.models.layers import Dtype
from sr_jax.models.mask import LOG_POWER_FLOOR, frame_trunk

FILL_BIAS = -4.6  # natural log of the magnitude re the mean bin power's root: -40 dB at the start
FILL_MAX_LOG = 3.0  # the log-magnitude's ceiling (+26 dB re that root): exp never overflows
PHASE_SEED = 0  # the fixed phases' draw


def fill_phases(frames: int, bins: int) -> np.ndarray:
  """(frames, bins) float32 phases in [0, 2 pi): the fill's fixed random phases (the same draw for every call)."""
  return np.random.default_rng(PHASE_SEED).uniform(0.0, 2.0 * np.pi, (frames, bins)).astype(np.float32)


class SpectralFill(nn.Module):
  """(N, W) float32 -> (N, W) float32: the input plus noise of a learned level per STFT bin (module docstring)."""

  n_fft: int = 512
  hop: int = 128
  channels: int = 128
  layers: int = 4
  dtype: Dtype = jnp.float32

  @nn.compact
  def magnitudes(self, y):
    """(N, W) -> the fill's magnitudes (N, frames, bins), float32."""
    power = spectral.power(spectral.stft(jax.lax.stop_gradient(y), self.n_fft, self.hop))
    ref = jnp.log(jnp.mean(power, axis=(-2, -1), keepdims=True) + LOG_POWER_FLOOR)
    features = jnp.log(power + LOG_POWER_FLOOR) - ref
    h = frame_trunk(features, self.channels, self.layers, self.dtype)
    logits = nn.Dense(power.shape[-1], dtype=self.dtype, kernel_init=nn.initializers.zeros,
                      bias_init=nn.initializers.constant(FILL_BIAS), name="out")(h).astype(jnp.float32)
    return jnp.exp(0.5 * ref + jnp.minimum(logits, FILL_MAX_LOG))

  def __call__(self, y, gain_db: float = 0.0):
    """`gain_db`: the fill's level re its learned one (model.fill_gain_db outside training)."""
    magnitude = self.magnitudes(y) * (10.0 ** (gain_db / 20.0))
    phases = jnp.asarray(fill_phases(*magnitude.shape[-2:]))
    fill = jax.lax.complex(magnitude * jnp.cos(phases), magnitude * jnp.sin(phases))
    return y + spectral.istft(fill, y.shape[-1], self.n_fft, self.hop)
