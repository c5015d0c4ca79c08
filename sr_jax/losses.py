"""Training losses: pure jax.numpy functions returning scalar means (jit-able, differentiable).

* reconstruction: `l2_loss` (mean squared error), `l1_loss` (mean absolute error), `snr_loss` (the negative SNR in dB
  of each example, averaged: every example counts the same whatever its level), `reconstruction_loss` by name;
* adversarial (non-saturating GAN, binary cross-entropy on logits via ``optax.sigmoid_binary_cross_entropy``,
  stable for huge logits): `discriminator_loss`, `generator_adversarial_loss`. Logits may have any shape
  (one per example, or a PatchGAN's (N, P, 1)); the mean is over all of them. `grouped_discriminator_loss` and
  `grouped_generator_adversarial_loss` average the same losses over groups of patches instead (the MRSD's
  resolutions), so each group counts the same whatever its number of patches;
* `feature_matching_loss`: mean L1 between a discriminator's inner features of the target and of the output;
* `feature_loss`: distance between autoencoder bottleneck features of the target and of the output;
* `multi_resolution_stft_loss`: spectral convergence + log-magnitude L1 over several STFT resolutions
  (Yamamoto et al. 2020, Parallel WaveGAN), with the STFT of `sr_jax.spectral`, bounded on silent windows;
* `spectral_corridor_loss`: a spectral corridor, a log-magnitude hinge that is zero while the output's STFT level lies
  between `floor_db` below the target's and `ceiling_db` above it (see its docstring).

Target and output must have the same shape (no broadcasting: (N, W) against (N, W, 1) would silently give an
(N, W, W) difference), else `ValueError`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sr_jax import spectral
from sr_jax.errors import UserError

STFT_EPS = 1e-7  # added inside the log of the magnitudes (STFT and corridor terms)
# the spectral-convergence denominator never falls below the STFT norm of white noise at this RMS level (dB
# re full scale 1.0): the level below which sr_jax calls audio silent (data.silence_db)
STFT_SC_FLOOR_DB = -60.0
RECONSTRUCTION_KINDS = ("l1", "l2", "snr")
# snr_loss adds this mean power (-80 dB re full scale) to signal and error: a silent target's loss stays finite and
# flat, and an error far below it no longer pulls
SNR_LOSS_FLOOR_DB = -80.0


def _check_same_shape(target: jnp.ndarray, output: jnp.ndarray) -> None:
  if jnp.shape(target) != jnp.shape(output):
    raise ValueError(f"target and output shapes differ: {jnp.shape(target)} vs {jnp.shape(output)}")


def l2_loss(target: jnp.ndarray, output: jnp.ndarray) -> jnp.ndarray:
  """Mean squared error over all elements."""
  _check_same_shape(target, output)
  return jnp.mean((target - output) ** 2)


def l1_loss(target: jnp.ndarray, output: jnp.ndarray) -> jnp.ndarray:
  """Mean absolute error over all elements."""
  _check_same_shape(target, output)
  return jnp.mean(jnp.abs(target - output))


def snr_loss(target: jnp.ndarray, output: jnp.ndarray, max_db: float | None = None) -> jnp.ndarray:
  """Mean over examples (the leading axis) of -10 log10((P_t + f) / (P_e + tau P_t + f)), P_t the target's mean
  power, P_e the error's, f = 10^(SNR_LOSS_FLOOR_DB / 10), tau = 10^(-max_db / 10) (0 when `max_db` is None): the
  negative SNR in dB, the measure evaluation reports. Unlike L2, a window 18 dB quieter weighs as much as a loud one,
  and no example's shrinkage pays for another's.

  `max_db` soft-caps each example's SNR there (the thresholded SNR of Wisdom et al. 2020, MixIT). Without it an
  example whose output is already almost exact (an input with nothing to restore) pulls hardest of all, the
  gradient of log P_e growing as 1/sqrt(P_e), and under gradient clipping drowns the examples that have noise or a
  room to remove; with it an example past max_db hardly pulls."""
  _check_same_shape(target, output)
  axes = tuple(range(1, jnp.ndim(target)))
  floor = 10.0 ** (SNR_LOSS_FLOOR_DB / 10.0)
  tau = 0.0 if max_db is None else 10.0 ** (-float(max_db) / 10.0)
  power = jnp.mean(jnp.square(target), axis=axes)
  error = jnp.mean(jnp.square(target - output), axis=axes) + tau * power + floor
  return jnp.mean(10.0 * (jnp.log10(error) - jnp.log10(power + floor)))


_DISTANCES = {"l2": l2_loss, "l1": l1_loss}  # feature losses; reconstruction adds "snr"


def _lookup(kind: str, what: str, table: dict):
  if kind not in table:
    allowed = ", ".join(repr(k) for k in sorted(table))
    raise UserError(f"unknown {what} kind {kind!r}; allowed: {allowed}")
  return table[kind]


def reconstruction_loss(target: jnp.ndarray, output: jnp.ndarray, kind: str = "l2",
                        snr_max_db: float | None = None) -> jnp.ndarray:
  """`l2_loss`, `l1_loss` or `snr_loss` (with `snr_max_db` as its max_db) by name (`kind` in
  ``RECONSTRUCTION_KINDS``; anything else is a `UserError`)."""
  snr = functools.partial(snr_loss, max_db=snr_max_db)
  return _lookup(kind, "reconstruction loss", {**_DISTANCES, "snr": snr})(target, output)


def feature_loss(target_features: jnp.ndarray, output_features: jnp.ndarray, kind: str = "l2") -> jnp.ndarray:
  """Mean squared ("l2") or mean absolute ("l1") difference between bottleneck features."""
  return _lookup(kind, "feature loss", _DISTANCES)(target_features, output_features)


def discriminator_loss(real_logits: jnp.ndarray, fake_logits: jnp.ndarray) -> jnp.ndarray:
  """``mean(-log sigmoid(real)) + mean(-log(1 - sigmoid(fake)))``: real labelled 1, fake labelled 0."""
  real = optax.sigmoid_binary_cross_entropy(real_logits, jnp.ones_like(real_logits))
  fake = optax.sigmoid_binary_cross_entropy(fake_logits, jnp.zeros_like(fake_logits))
  return jnp.mean(real) + jnp.mean(fake)


def generator_adversarial_loss(fake_logits: jnp.ndarray) -> jnp.ndarray:
  """Non-saturating generator loss ``mean(-log sigmoid(fake))``: the generator wants fakes labelled 1."""
  return jnp.mean(optax.sigmoid_binary_cross_entropy(fake_logits, jnp.ones_like(fake_logits)))


def split_patches(logits: jnp.ndarray, sizes: Sequence[int]) -> list[jnp.ndarray]:
  """Logits (N, P, ...) -> the groups of `sizes` consecutive patches along axis 1 (sum(sizes) must be P)."""
  if sum(sizes) != logits.shape[1] or not sizes:
    raise ValueError(f"patch groups of sizes {tuple(sizes)} do not add up to the {logits.shape[1]} patches of "
                     f"logits {tuple(logits.shape)}")
  return jnp.split(logits, np.cumsum(sizes)[:-1].tolist(), axis=1)


def grouped_discriminator_loss(real_logits: jnp.ndarray, fake_logits: jnp.ndarray,
                               sizes: Sequence[int] | None = None) -> jnp.ndarray:
  """`discriminator_loss` of each group of patches (`split_patches` of both logits by `sizes`, e.g. the MRSD's
  `patch_counts`), averaged over the groups; sizes None: `discriminator_loss` of all patches."""
  if sizes is None:
    return discriminator_loss(real_logits, fake_logits)
  pairs = zip(split_patches(real_logits, sizes), split_patches(fake_logits, sizes))
  return sum(discriminator_loss(r, f) for r, f in pairs) / len(sizes)


def grouped_generator_adversarial_loss(fake_logits: jnp.ndarray, sizes: Sequence[int] | None = None) -> jnp.ndarray:
  """`generator_adversarial_loss` of each group of patches, averaged over the groups (as
  `grouped_discriminator_loss`); sizes None: that of all patches."""
  if sizes is None:
    return generator_adversarial_loss(fake_logits)
  return sum(generator_adversarial_loss(f) for f in split_patches(fake_logits, sizes)) / len(sizes)


def feature_matching_loss(real_features, fake_features) -> jnp.ndarray:
  """Feature matching (Salimans et al. 2016; HiFi-GAN, UnivNet): ``mean |real - fake|`` of each feature map, averaged
  over the maps (the discriminator's layers, and resolutions for the MRSD).

  `real_features` and `fake_features` are lists (or any pytrees of the same structure) of arrays of equal shapes,
  the discriminator's inner activations on the target and on the generator's output. The real ones are constants
  (stop-gradient): the loss moves the output's features towards the target's, never the other way.
  """
  real, fake = jax.tree.leaves(real_features), jax.tree.leaves(fake_features)
  if jax.tree.structure(real_features) != jax.tree.structure(fake_features) or not real:
    raise ValueError("feature matching needs the same (non-empty) list of feature maps for target and output")
  terms = []
  for r, f in zip(real, fake):
    _check_same_shape(r, f)
    r = jax.lax.stop_gradient(r).astype(jnp.float32)
    terms.append(jnp.mean(jnp.abs(r - f.astype(jnp.float32))))
  return sum(terms) / len(terms)


def _safe_sqrt(x: jnp.ndarray) -> jnp.ndarray:
  """sqrt with value 0 and gradient 0 at 0 (plain sqrt has an infinite gradient there, NaN after the chain)."""
  positive = x > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)


def _frobenius(m: jnp.ndarray) -> jnp.ndarray:
  """Frobenius norm over the last two axes (frames, bins): one value per example."""
  return _safe_sqrt(jnp.sum(m**2, axis=(-2, -1)))


def stft_noise_norm(length: int, n_fft: int, hop: int, level_db: float) -> float:
  """Expected Frobenius norm of the STFT (`sr_jax.spectral.stft`) of white noise of RMS 10**(level_db / 20) over
  `length` samples: every frame and bin has E|S|^2 = rms^2 * sum(w^2) (Hann window w), so the norm is
  ``rms * sqrt(frames * (n_fft / 2 + 1) * sum(w^2))``; any stationary signal of that RMS has about the same."""
  frames = spectral.num_frames(length, n_fft, hop)
  window_energy = float(np.sum(spectral.hann_window(n_fft) ** 2))
  return 10.0 ** (level_db / 20.0) * math.sqrt(frames * (n_fft // 2 + 1) * window_energy)


@functools.partial(jax.jit, static_argnums=(2, 3))  # compiled once per shape, also when called eagerly
def _stft_loss_terms(
    target: jnp.ndarray, output: jnp.ndarray, n_fft: int, hop: int, sc_floor: jnp.ndarray
) -> tuple[jnp.ndarray, jnp.ndarray]:
  """(spectral convergence, log-magnitude L1) at one resolution, each averaged over the batch."""
  target_mag = _safe_sqrt(spectral.power(spectral.stft(target, n_fft, hop)))
  output_mag = _safe_sqrt(spectral.power(spectral.stft(output, n_fft, hop)))
  convergence = _frobenius(target_mag - output_mag) / jnp.maximum(_frobenius(target_mag), sc_floor)
  log_l1 = jnp.abs(jnp.log(target_mag + STFT_EPS) - jnp.log(output_mag + STFT_EPS))
  return jnp.mean(convergence), jnp.mean(log_l1)


def multi_resolution_stft_loss(
    target: jnp.ndarray,
    output: jnp.ndarray,
    fft_sizes: Sequence[int] = (512, 1024, 2048),
    hop_sizes: Sequence[int] = (128, 256, 512),
    sc_weight: float = 1.0,
    mag_weight: float = 1.0,
    sc_floor_db: float = STFT_SC_FLOOR_DB,
) -> jnp.ndarray:
  """Multi-resolution STFT loss of signals (N, W) or (N, W, 1); the mean over resolutions of
  ``sc_weight * SC + mag_weight * LogMag`` where, with magnitudes M = |S(target)| and M_hat = |S(output)|:

  * SC = ``||M - M_hat||_F / max(||M||_F, F)``, Frobenius norms over (frames, bins) per example, then the batch
    mean; F = `stft_noise_norm` (W, n_fft, hop, sc_floor_db): the norm of a window of white noise at `sc_floor_db`
    dB RMS (-60 dB: 0.91 at n_fft 512 and W 2048);
  * LogMag = ``mean |log(M + 1e-7) - log(M_hat + 1e-7)|`` over examples, frames and bins.

  Why the floor: SC is a relative error, which has no meaning against silence. With the bare ``||M||_F`` (+ 1e-7),
  a silent or near-silent target window (2% of the built-in corpus's training windows are exactly zero: rests and
  file ends) turns the tiny residual of a good output into an SC of 1e4 or more (3e5 for a -90 dB residual on a zero
  window). Windows above the floor's level keep their relative error unchanged (the floor is a max: their loss is the
  same function as without it); a quieter one is measured against the floor instead, an absolute error in units of a
  window at that level. For a target below the floor SC is then at most about ``RMS(output - target) / 10**(sc_floor_db
  / 20)`` (100 for an output at -20 dB RMS against the -60 dB floor, 0.03 for a -90 dB residual), and the norm of its
  gradient with respect to each example's output at most about ``1 / (N * 10**(sc_floor_db / 20) * sqrt(W))``, that of
  a window at the floor's level (a window at -20 dB gets 1/100 of it). A fixed level, not one relative to the batch,
  keeps each example's loss independent of the others. LogMag needs no floor for its value: it is at most
  ``log(1 + max M / 1e-7)``, ~23 for signals within [-1, 1] (max M <= sum(w) = n_fft / 2); its gradient, 1 / (M_hat +
  1e-7) per bin, is small wherever the output is not near silent itself.

  Gradients are finite everywhere, also for silent (all-zero) target and output.
  """
  if len(fft_sizes) != len(hop_sizes) or not fft_sizes:
    raise ValueError(f"need one hop per FFT size (at least one), got fft_sizes={fft_sizes}, hop_sizes={hop_sizes}")
  if not math.isfinite(sc_floor_db):
    raise ValueError(f"sc_floor_db must be a finite level in dB, got {sc_floor_db}")
  target = spectral.drop_channel_axis(jnp.asarray(target), 2)
  output = spectral.drop_channel_axis(jnp.asarray(output), 2)
  _check_same_shape(target, output)
  total = 0.0
  for n_fft, hop in zip(fft_sizes, hop_sizes):
    floor = jnp.asarray(stft_noise_norm(target.shape[-1], n_fft, hop, sc_floor_db), jnp.float32)
    convergence, log_l1 = _stft_loss_terms(target, output, n_fft, hop, floor)
    total = total + sc_weight * convergence + mag_weight * log_l1
  return total / len(fft_sizes)


@functools.partial(jax.jit, static_argnums=(2, 3, 6))
def _corridor_term(target: jnp.ndarray, output: jnp.ndarray, n_fft: int, hop: int, floor: jnp.ndarray,
                   ceiling: jnp.ndarray | None, pool: int) -> jnp.ndarray:
  # bin powers without the Nyquist bin, (N, frames, n_fft / 2); bands: sums over `pool` adjacent bins
  target_power, output_power = (spectral.power(spectral.stft(x, n_fft, hop))[..., : n_fft // 2]
                                for x in (target, output))
  band = lambda p: jnp.sum(p.reshape(*p.shape[:-1], -1, pool), axis=-1)
  log = lambda p: jnp.log(p + STFT_EPS**2)
  below = 0.5 * (log(floor**2 * band(target_power)) - log(band(output_power)))  # per band
  if ceiling is None:
    return jnp.mean(jax.nn.relu(below))
  above = 0.5 * (log(output_power) - log(ceiling**2 * target_power))  # per bin
  return jnp.mean(jax.nn.relu(below)) + jnp.mean(jax.nn.relu(above))


def spectral_corridor_loss(
    target: jnp.ndarray,
    output: jnp.ndarray,
    floor_db: float = -12.0,
    fft_sizes: Sequence[int] = (512, 1024, 2048),
    hop_sizes: Sequence[int] = (128, 256, 512),
    pool: int = 1,
    ceiling_db: float | None = None,
) -> jnp.ndarray:
  """Spectral corridor of signals (N, W) or (N, W, 1): the mean over resolutions of

    ``mean relu(log(a B) - log(B_hat))`` over examples, frames and bands
    + ``mean relu(log(M_hat) - log(c M))`` over examples, frames and bins,
    a = 10**(floor_db / 20), c = 10**(ceiling_db / 20) (natural log; 1e-7 is added to every magnitude inside it;
    the second term only with a ceiling),

  where M, M_hat are the STFT magnitudes |S| of target and output and B, B_hat their band magnitudes: per frame, the
  square root of the power summed over `pool` adjacent bins (pool = 1: B = M; the Nyquist bin is left out everywhere;
  n_fft / 2 must be a multiple of `pool`). It is zero, with zero gradient, wherever the output's band level is no
  more than `floor_db` below the target's and its bin level no more than `ceiling_db` above it, and grows as the log
  of the distance outside that corridor. Without a ceiling (None, the default) only the floor is left: a one-sided
  hinge.

  Why: an L2-trained super-resolution network outputs E[y | x], which is ~0 in the parts of the missing band whose
  phase it cannot predict; LSD (log-spectral) punishes that emptiness heavily, while filling the band at the
  target's level with the wrong phase doubles the band's squared error (the perception-distortion trade-off,
  Blau & Michaeli 2018). Added to L2, this term asks for at least `floor_db` of the true level in every band and
  no more: L2 still decides everything above the floor, and energy the network cannot place in phase costs about
  10**(floor_db / 10) of the band's energy in squared error (-12 dB: 6%). Pooling bins (e.g. 16) keeps the floor from
  chasing every random dip of an incoherent fill's fine structure, which drives the fill far above the floor. A
  ceiling (e.g. 0 dB) adds what L2 hardly sees: every frame and bin counts alike, as in LSD, so a fill left in a quiet
  or silent frame, or low-level rumble that the fill's nonlinearity puts below the lowest notes (where L2's cost is
  negligible), is pushed down. The ceiling is per bin, so pooling cannot hide such rumble inside a loud band.
  """
  if len(fft_sizes) != len(hop_sizes) or not fft_sizes:
    raise ValueError(f"need one hop per FFT size (at least one), got fft_sizes={fft_sizes}, hop_sizes={hop_sizes}")
  check_corridor_settings(floor_db, ceiling_db, pool, fft_sizes)
  target = spectral.drop_channel_axis(jnp.asarray(target), 2)
  output = spectral.drop_channel_axis(jnp.asarray(output), 2)
  _check_same_shape(target, output)
  floor = jnp.asarray(10.0 ** (floor_db / 20.0), jnp.float32)
  ceiling = None if ceiling_db is None else jnp.asarray(10.0 ** (ceiling_db / 20.0), jnp.float32)
  total = 0.0
  for n_fft, hop in zip(fft_sizes, hop_sizes):
    total = total + _corridor_term(target, output, n_fft, hop, floor, ceiling, pool)
  return total / len(fft_sizes)


def check_corridor_settings(floor_db: float, ceiling_db: float | None, pool: int, fft_sizes: Sequence[int],
                            names: Sequence[str] = ("floor_db", "ceiling_db", "pool")) -> None:
  """UserError unless floor_db < 0, ceiling_db (if any) >= floor_db and `pool` >= 1 divides every n_fft / 2;
  `names` are the settings' names in the message (train.state.check_config passes the config fields)."""
  floor_name, ceiling_name, pool_name = names
  if not floor_db < 0:
    raise UserError(f"{floor_name}={floor_db} must be below 0 dB (the floor lies that far below the target's level)")
  if ceiling_db is not None and not ceiling_db >= floor_db:
    raise UserError(f"{ceiling_name}={ceiling_db} must not be below {floor_name}={floor_db}")
  bad = [n for n in fft_sizes if pool < 1 or (n // 2) % pool]
  if bad:
    raise UserError(f"{pool_name}={pool} must be >= 1 and divide n_fft / 2 of every FFT size, not of {list(bad)}")
