"""Discriminators: global (one logit per window), conditional, PatchGAN (one logit per patch), and a multi-resolution
spectrogram discriminator (MRSD: one logit per time-frequency patch of several STFTs).

Discriminator: the generator's down path with BatchNorm (conv stride 2 -> BatchNorm -> LeakyReLU 0.2 per level),
dropout, flatten, dense -> 1 logit. ConditionalDiscriminator: the same network whose input is the degraded input
and the candidate concatenated on channels (pix2pix). PatchDiscriminator: fully convolutional: `depth` down blocks
then a kernel-`head_kernel` conv to one channel, so each logit sees a receptive field set by the depth
(`receptive_field()`); conditional or not. The original removed its PatchGAN because it was broken; this one has no
flatten, so it takes any window that is a multiple of 2**depth.

SpectrogramDiscriminator (disc.kind "mrsd", the discriminator of the HiFi-GAN family's bandwidth extension: UnivNet's
multi-resolution D, AERO, AP-BWE): for each STFT size n of `fft_sizes` the log-magnitude spectrogram of the window
(sr_jax.spectral.stft: hop n / 4, periodic Hann, centred; computed inside the network, so gradients reach the
waveform) goes through its own small 2-D conv stack (`SPECTROGRAM_LAYERS`: LeakyReLU 0.2, strides along frequency,
no normalisation) to a map of patch logits. Why: a waveform D judges the missing band through a few strided 1-D convs
of the whole signal; the spectrogram stacks see the band's level and fine structure at several time-frequency
resolutions directly, which is what bandwidth extension gets wrong.

Every discriminator returns logits (N, P, 1) or (N, 1) that sigmoid() makes into probabilities (the project's BCE
convention), so the training step, collaborative sampling and shaping use them alike; the MRSD's are its resolutions'
patch maps flattened and concatenated (`patch_counts`). `return_features=True` also returns the inner activations
for feature matching (losses.feature_matching_loss): the down blocks' outputs of global and patch D, every 2-D conv
layer's output of the MRSD.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from sr_jax import spectral
from sr_jax.errors import UserError
from sr_jax.models.layers import ConvBlock, Dtype, activation, as_windows, conv, level_channels, level_kernel

# The MRSD's 2-D conv stack per resolution, on (frames, bins) maps, as UnivNet's: (frequency kernel, frequency stride)
# of each layer; every kernel spans 3 frames, stride 1 in time; "same" zero padding (k // 2 on both sides); each
# followed by LeakyReLU 0.2. Then a 3 x 3 conv to one channel: the patch logits.
SPECTROGRAM_LAYERS = ((9, 1), (9, 2), (9, 2), (9, 2), (3, 1))
SPECTROGRAM_TIME_KERNEL = 3
SPECTROGRAM_HEAD_KERNEL = 3
# Added to |S|^2 before the log (the MRSD's input is 0.5 log(|S|^2 + floor)): a magnitude floor of 1e-4, far below a
# -60 dB (silent, data.silence_db) window's bins, which bounds the log's gradient on a silent output (|d/dS| <= 5e3).
SPECTROGRAM_POWER_FLOOR = 1e-8


def _inputs(y, x, conditional: bool, dtype):
  y = as_windows(y)
  if conditional:
    if x is None:
      raise ValueError("a conditional discriminator needs the degraded input: call D(candidate, degraded_input)")
    y = jnp.concatenate([as_windows(x).astype(y.dtype), y], axis=-1)
  return y.astype(dtype)


def _down_path(h, depth: int, width: float, dtype, train: bool, conv_impl: str = "xla"):
  """conv stride 2 -> BatchNorm -> LeakyReLU for levels 1..depth (called inside a compact method) -> (h, [every
  level's output]: the features for feature matching)."""
  features = []
  for b in range(1, depth + 1):
    h = ConvBlock(level_channels(b, width), level_kernel(b), stride=2, norm=True, dtype=dtype,
                  conv_impl=conv_impl, name=f"down_{b}")(h, train)
    features.append(h)
  return h, features


class Discriminator(nn.Module):
  """Global discriminator: (N, W, 1) [+ condition (N, W, 1)] -> logits (N, 1). W % 2**depth == 0."""

  depth: int = 4
  width: float = 1.0
  dropout: float = 0.5
  conditional: bool = False
  dtype: Dtype = jnp.float32
  conv_impl: str = "xla"  # xla | fft (see layers.conv; every conv here has stride 2, so both are the same)

  @nn.compact
  def __call__(self, y, x=None, train: bool = False, return_features: bool = False):
    """logits (N, 1); with return_features, (logits, [down block outputs]) (features before the dropout)."""
    h = _inputs(y, x, self.conditional, self.dtype)
    if h.shape[1] % 2 ** self.depth:
      raise UserError(f"discriminator window {h.shape[1]} must be a multiple of 2**depth = {2 ** self.depth}")
    h, features = _down_path(h, self.depth, self.width, self.dtype, train, self.conv_impl)
    h = h.reshape(h.shape[0], -1)
    h = nn.Dropout(self.dropout, deterministic=not train, name="dropout")(h)
    logits = nn.Dense(1, dtype=self.dtype, name="logit")(h).astype(jnp.float32)
    return (logits, features) if return_features else logits


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
  def __call__(self, y, x=None, train: bool = False, return_features: bool = False):
    """logits (N, W / 2**depth, 1); with return_features, (logits, [down block outputs])."""
    h = _inputs(y, x, self.conditional, self.dtype)
    if h.shape[1] % 2 ** self.depth:
      raise UserError(f"patch discriminator window {h.shape[1]} must be a multiple of 2**depth = {2 ** self.depth}")
    h, features = _down_path(h, self.depth, self.width, self.dtype, train, self.conv_impl)
    logits = conv(1, self.head_kernel, 1, self.dtype, name="logit", impl=self.conv_impl)(h).astype(jnp.float32)
    return (logits, features) if return_features else logits

  def receptive_field(self) -> int:
    """Input samples seen by one logit: r = k_head; then for each level from the top r = 2 r + k_b - 2."""
    r = self.head_kernel
    for b in range(self.depth, 0, -1):
      r = 2 * (r - 1) + level_kernel(b)
    return r


def check_spectrogram_settings(fft_sizes: Sequence[int], channels: int) -> None:
  """UserError unless `fft_sizes` (disc.stft_fft_sizes) are distinct positive multiples of 4 (the hop is a quarter)
  and `channels` (disc.channels) is an integer >= 1."""
  sizes = tuple(fft_sizes) if isinstance(fft_sizes, (tuple, list)) else ()
  ok = sizes and all(isinstance(n, int) and not isinstance(n, bool) and n >= 4 and n % 4 == 0 for n in sizes)
  if not ok or len(set(sizes)) != len(sizes):
    raise UserError(f"disc.stft_fft_sizes must be distinct FFT sizes, each a positive multiple of 4 (the hop is a "
                    f"quarter of it), e.g. (512, 1024, 2048); got {fft_sizes!r}")
  if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
    raise UserError(f"disc.channels must be an integer >= 1 (channels of the spectrogram discriminator's 2-D convs), "
                    f"got {channels!r}")


def log_spectrogram(y, n_fft: int):
  """(N, W) -> (N, frames, n_fft // 2 + 1) float32: 0.5 log(|S|^2 + SPECTROGRAM_POWER_FLOOR), the natural log of the
  magnitude (floored) of sr_jax.spectral.stft at hop n_fft / 4."""
  power = spectral.power(spectral.stft(jnp.asarray(y, jnp.float32), n_fft, n_fft // 4))
  return 0.5 * jnp.log(power + SPECTROGRAM_POWER_FLOOR)


class SpectrogramStack(nn.Module):
  """One resolution of the MRSD: (N, frames, bins, C) -> ([every conv layer's output], logits (N, frames, P_f, 1))."""

  channels: int = 32
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, h):
    features, t = [], SPECTROGRAM_TIME_KERNEL
    for i, (k, stride) in enumerate(SPECTROGRAM_LAYERS):
      h = nn.Conv(self.channels, (t, k), strides=(1, stride), padding=[(t // 2, t // 2), (k // 2, k // 2)],
                  dtype=self.dtype, name=f"conv_{i}")(h)
      h = activation("leaky_relu")(h)
      features.append(h)
    k = SPECTROGRAM_HEAD_KERNEL
    logits = nn.Conv(1, (k, k), padding=[(k // 2, k // 2)] * 2, dtype=self.dtype, name="logit")(h)
    return features, logits


class SpectrogramDiscriminator(nn.Module):
  """Multi-resolution spectrogram discriminator: (N, W, 1) [+ condition (N, W, 1)] -> logits (N, P, 1).

  P = sum of `patch_counts(W)`: for each n in `fft_sizes` (in that order) the (frames, frequency patches) map of
  stack `stft_{n}`, flattened frames first. Conditional: the degraded input's log-magnitude spectrogram is the first
  input channel, the candidate's the second. No BatchNorm and no dropout: `train` changes nothing, and the variables
  hold no batch_stats (the training step's empty collection passes through).
  """

  fft_sizes: tuple[int, ...] = (512, 1024, 2048)
  channels: int = 32
  conditional: bool = False
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, y, x=None, train: bool = False, return_features: bool = False):
    """logits (N, P, 1) float32; with return_features, (logits, [every conv layer's output of every resolution])."""
    check_spectrogram_settings(self.fft_sizes, self.channels)
    y = as_windows(y)
    if y.shape[-1] != 1:
      raise ValueError(f"the spectrogram discriminator takes mono windows (N, W, 1), got {y.shape}")
    if self.conditional and x is None:
      raise ValueError("a conditional discriminator needs the degraded input: call D(candidate, degraded_input)")
    logits, features = [], []
    for n in self.fft_sizes:
      h = log_spectrogram(y[..., 0], n)[..., None]
      if self.conditional:
        h = jnp.concatenate([log_spectrogram(as_windows(x)[..., 0], n)[..., None], h], axis=-1)
      f, out = SpectrogramStack(self.channels, self.dtype, name=f"stft_{n}")(h.astype(self.dtype))
      features.extend(f)
      logits.append(out.reshape(out.shape[0], -1, 1).astype(jnp.float32))
    logits = jnp.concatenate(logits, axis=1)
    return (logits, features) if return_features else logits

  def patch_counts(self, window: int) -> tuple[int, ...]:
    """Patch logits per resolution for a `window`-sample input, in the order of the logits: frames x frequency
    patches, where each conv of frequency kernel k and stride s maps b bins to (b + 2 (k // 2) - k) // s + 1."""
    counts = []
    for n in self.fft_sizes:
      bins = n // 2 + 1
      for k, stride in SPECTROGRAM_LAYERS:
        bins = (bins + 2 * (k // 2) - k) // stride + 1
      counts.append(spectral.num_frames(window, n, n // 4) * bins)
    return tuple(counts)
