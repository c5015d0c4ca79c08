"""Training losses: pure jax.numpy functions returning scalar means (jit-able, differentiable).

* reconstruction: `l2_loss` (mean squared error), `l1_loss` (mean absolute error), `reconstruction_loss` by name;
* adversarial (non-saturating GAN, binary cross-entropy on logits via ``optax.sigmoid_binary_cross_entropy``,
  stable for huge logits): `discriminator_loss`, `generator_adversarial_loss`. Logits may have any shape
  (one per example, or a PatchGAN's (N, P, 1)); the mean is over all of them;
* `feature_loss`: distance between autoencoder bottleneck features of the target and of the output;
* `multi_resolution_stft_loss`: spectral convergence + log-magnitude L1 over several STFT resolutions
  (Yamamoto et al. 2020, Parallel WaveGAN), with the STFT of `sr_jax.spectral`.

Target and output must have the same shape (no broadcasting: (N, W) against (N, W, 1) would silently give an
(N, W, W) difference), else `ValueError`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax

from sr_jax import spectral
from sr_jax.errors import UserError

STFT_EPS = 1e-7  # added to the spectral-convergence denominator and inside the log of the magnitudes
RECONSTRUCTION_KINDS = ("l1", "l2")


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


_DISTANCES = {"l2": l2_loss, "l1": l1_loss}


def _distance(kind: str, what: str):
  if kind not in _DISTANCES:
    allowed = ", ".join(repr(k) for k in RECONSTRUCTION_KINDS)
    raise UserError(f"unknown {what} kind {kind!r}; allowed: {allowed}")
  return _DISTANCES[kind]


def reconstruction_loss(target: jnp.ndarray, output: jnp.ndarray, kind: str = "l2") -> jnp.ndarray:
  """`l2_loss` or `l1_loss` by name (`kind` in ``RECONSTRUCTION_KINDS``; anything else is a `UserError`)."""
  return _distance(kind, "reconstruction loss")(target, output)


def feature_loss(target_features: jnp.ndarray, output_features: jnp.ndarray, kind: str = "l2") -> jnp.ndarray:
  """Mean squared ("l2") or mean absolute ("l1") difference between bottleneck features."""
  return _distance(kind, "feature loss")(target_features, output_features)


def discriminator_loss(real_logits: jnp.ndarray, fake_logits: jnp.ndarray) -> jnp.ndarray:
  """``mean(-log sigmoid(real)) + mean(-log(1 - sigmoid(fake)))``: real labelled 1, fake labelled 0."""
  real = optax.sigmoid_binary_cross_entropy(real_logits, jnp.ones_like(real_logits))
  fake = optax.sigmoid_binary_cross_entropy(fake_logits, jnp.zeros_like(fake_logits))
  return jnp.mean(real) + jnp.mean(fake)


def generator_adversarial_loss(fake_logits: jnp.ndarray) -> jnp.ndarray:
  """Non-saturating generator loss ``mean(-log sigmoid(fake))``: the generator wants fakes labelled 1."""
  return jnp.mean(optax.sigmoid_binary_cross_entropy(fake_logits, jnp.ones_like(fake_logits)))


def _safe_sqrt(x: jnp.ndarray) -> jnp.ndarray:
  """sqrt with value 0 and gradient 0 at 0 (plain sqrt has an infinite gradient there, NaN after the chain)."""
  positive = x > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)


def _frobenius(m: jnp.ndarray) -> jnp.ndarray:
  """Frobenius norm over the last two axes (frames, bins): one value per example."""
  return _safe_sqrt(jnp.sum(m**2, axis=(-2, -1)))


@functools.partial(jax.jit, static_argnums=(2, 3))  # compiled once per shape, also when called eagerly
def _stft_loss_terms(
    target: jnp.ndarray, output: jnp.ndarray, n_fft: int, hop: int
) -> tuple[jnp.ndarray, jnp.ndarray]:
  """(spectral convergence, log-magnitude L1) at one resolution, each averaged over the batch."""
  target_mag = _safe_sqrt(spectral.power(spectral.stft(target, n_fft, hop)))
  output_mag = _safe_sqrt(spectral.power(spectral.stft(output, n_fft, hop)))
  convergence = _frobenius(target_mag - output_mag) / (_frobenius(target_mag) + STFT_EPS)
  log_l1 = jnp.abs(jnp.log(target_mag + STFT_EPS) - jnp.log(output_mag + STFT_EPS))
  return jnp.mean(convergence), jnp.mean(log_l1)


def multi_resolution_stft_loss(
    target: jnp.ndarray,
    output: jnp.ndarray,
    fft_sizes: Sequence[int] = (512, 1024, 2048),
    hop_sizes: Sequence[int] = (128, 256, 512),
    sc_weight: float = 1.0,
    mag_weight: float = 1.0,
) -> jnp.ndarray:
  """Multi-resolution STFT loss of signals (N, W) or (N, W, 1); the mean over resolutions of
  ``sc_weight * SC + mag_weight * LogMag`` where, with magnitudes M = |S(target)| and M_hat = |S(output)|:

  * SC = ``||M - M_hat||_F / (||M||_F + 1e-7)``, Frobenius norms over (frames, bins) per example, then the
    batch mean;
  * LogMag = ``mean |log(M + 1e-7) - log(M_hat + 1e-7)|`` over examples, frames and bins.

  Gradients are finite everywhere, also for silent (all-zero) target and output.
  """
  if len(fft_sizes) != len(hop_sizes) or not fft_sizes:
    raise ValueError(f"need one hop per FFT size (at least one), got fft_sizes={fft_sizes}, hop_sizes={hop_sizes}")
  target = spectral.drop_channel_axis(jnp.asarray(target), 2)
  output = spectral.drop_channel_axis(jnp.asarray(output), 2)
  _check_same_shape(target, output)
  total = 0.0
  for n_fft, hop in zip(fft_sizes, hop_sizes):
    convergence, log_l1 = _stft_loss_terms(target, output, n_fft, hop)
    total = total + sc_weight * convergence + mag_weight * log_l1
  return total / len(fft_sizes)
