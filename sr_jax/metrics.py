"""Evaluation metrics: log-spectral distance (full band, high band, low band), SNR and SI-SDR.

Two front ends over one set of formulas (each written once, on an array module ``xp``):

* numpy, for evaluation: ``metric(reference, estimate) -> float``. Inputs are mono signals, shape (W,) or
  (W, 1), converted to float64.
* jax.numpy, for training: ``batch_metric(reference, estimate) -> (N,)`` on batches (N, W) or (N, W, 1), in
  the input precision (float32). They are wrapped in ``jax.jit`` (n_fft, hop, rate, cutoff_hz static), so they
  are fast when called eagerly and can be called inside another jitted function, with those options as Python
  numbers, e.g. ``functools.partial(batch_lsd, rate=16000, cutoff_hz=2000)``.

Reference and estimate must have the same shape: different lengths raise a `UserError` (a `ValueError`)
rather than being silently trimmed.

Definitions (S = `sr_jax.spectral.stft`, Hann, n_fft = 2048, hop = 512 by default):

* LSD: ``X = log10(|S|^2 + 1e-8)``; per frame ``sqrt(mean_k (X - X_hat)^2)``, then the mean over frames.
  `lsd_hf` / `lsd_lf` take the mean over the bins whose frequency ``k * rate / n_fft`` is >= / < `cutoff_hz`
  (typically the Nyquist frequency of the low-rate input, e.g. 2000 Hz for 4 kHz -> 16 kHz).
* SNR: ``10 log10((sum ref^2 + eps) / (sum (ref - est)^2 + eps))`` with ``eps = EPS_ENERGY = 1e-8``: 0 dB for
  two silent signals, finite (``10 log10(sum ref^2 / 1e-8)``) for identical ones.
* SI-SDR (Le Roux et al. 2019, "SDR - half-baked or well done?"), *without* mean removal:
  ``alpha = <est, ref> / (<ref, ref> + eps)``, then the SNR formula above between ``alpha ref`` and ``est``:
  ``10 log10((|alpha ref|^2 + eps) / (|alpha ref - est|^2 + eps))``. Invariant to scaling the estimate (up to
  eps).
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from sr_jax import spectral
from sr_jax.errors import UserError

EPS_POWER = 1e-8  # added to |S|^2 before log10 in the LSD
EPS_ENERGY = 1e-8  # added to signal / error energies in SNR and SI-SDR

METRIC_NAMES = ("lsd", "lsd_hf", "lsd_lf", "snr", "si_sdr")


# -- formulas, written once for numpy and jax.numpy -----------------------------------------------------


def _energy_ratio_db(signal: Any, estimate: Any, xp: ModuleType, cap_db: float | None = None) -> Any:
  """``10 log10((|signal|^2 + eps) / (|signal - estimate|^2 + c |signal|^2 + eps))`` over the last axis, c =
  10^(-cap_db / 10) (0 without a cap: a soft cap at cap_db)."""
  signal_energy = (signal**2).sum(axis=-1)
  error_energy = ((signal - estimate) ** 2).sum(axis=-1)
  if cap_db is not None:
    error_energy = error_energy + 10.0 ** (-cap_db / 10.0) * signal_energy
  return 10.0 * xp.log10((signal_energy + EPS_ENERGY) / (error_energy + EPS_ENERGY))


_snr = _energy_ratio_db  # SNR is the energy ratio between the reference and the estimate itself


def _si_sdr(reference: Any, estimate: Any, xp: ModuleType) -> Any:
  alpha = (estimate * reference).sum(axis=-1) / ((reference**2).sum(axis=-1) + EPS_ENERGY)
  return _energy_ratio_db(alpha[..., None] * reference, estimate, xp)


def _log_power(x: Any, n_fft: int, hop: int, xp: ModuleType) -> Any:
  return xp.log10(spectral.power(spectral.stft(x, n_fft, hop)) + EPS_POWER)


def _frame_mean_distance(squared_diff: Any, xp: ModuleType) -> Any:
  """(..., frames, bins) squared log differences -> (...): per-frame RMS over bins, mean over frames."""
  return xp.sqrt(squared_diff.mean(axis=-1)).mean(axis=-1)


def high_band_mask(n_fft: int, rate: float, cutoff_hz: float) -> np.ndarray:
  """Boolean mask over the ``n_fft // 2 + 1`` bins: True where ``k * rate / n_fft >= cutoff_hz``.

  The cut-off must leave bins on both sides: ``0 < cutoff_hz <= rate / 2``, else `UserError`.
  """
  if not rate > 0:
    raise UserError(f"sample rate must be positive, got {rate!r}")
  if not 0 < cutoff_hz <= rate / 2:
    raise UserError(f"LSD cut-off must be in (0, {rate / 2:g}] Hz (Nyquist of rate {rate:g}), got {cutoff_hz!r}")
  return spectral.bin_frequencies(n_fft, rate) >= cutoff_hz


def _lsd_all(
    reference: Any,
    estimate: Any,
    n_fft: int,
    hop: int,
    rate: float | None,
    cutoff_hz: float | None,
    xp: ModuleType,
) -> dict[str, Any]:
  """{"lsd"} (and "lsd_hf", "lsd_lf" when rate and cutoff_hz are given) over the last axis."""
  if (rate is None) != (cutoff_hz is None):
    raise UserError(
        f"give both rate and cutoff_hz for the high/low band LSD, got rate={rate!r}, cutoff_hz={cutoff_hz!r}"
    )
  squared_diff = (_log_power(reference, n_fft, hop, xp) - _log_power(estimate, n_fft, hop, xp)) ** 2
  out = {"lsd": _frame_mean_distance(squared_diff, xp)}
  if rate is not None:
    high = high_band_mask(n_fft, rate, cutoff_hz)
    out["lsd_hf"] = _frame_mean_distance(squared_diff[..., high], xp)
    out["lsd_lf"] = _frame_mean_distance(squared_diff[..., ~high], xp)
  return out


def _check_pair(reference: Any, estimate: Any, xp: ModuleType, signal_ndim: int) -> tuple[Any, Any]:
  """Converts both to float arrays of `xp`, drops a trailing channel axis of size 1 and checks the shapes."""
  if xp is np:
    reference, estimate = np.asarray(reference, np.float64), np.asarray(estimate, np.float64)
  else:
    reference, estimate = spectral.as_float(jnp.asarray(reference)), spectral.as_float(jnp.asarray(estimate))
  reference = spectral.drop_channel_axis(reference, signal_ndim)
  estimate = spectral.drop_channel_axis(estimate, signal_ndim)
  layout = "(W,) or (W, 1)" if signal_ndim == 1 else "(N, W) or (N, W, 1)"
  for name, x in (("reference", reference), ("estimate", estimate)):
    if x.ndim != signal_ndim or x.shape[-1] == 0:
      raise UserError(f"{name} must be mono audio of shape {layout} with W > 0, got shape {tuple(x.shape)}")
  if reference.shape != estimate.shape:
    raise UserError(
        f"reference and estimate differ in shape: {tuple(reference.shape)} vs {tuple(estimate.shape)} "
        f"({reference.shape[-1]} vs {estimate.shape[-1]} samples); trim or align them to the same length first"
    )
  return reference, estimate


# -- numpy front end: one signal in, python float out ----------------------------------------------------


def lsd(reference: np.ndarray, estimate: np.ndarray, n_fft: int = 2048, hop: int = 512) -> float:
  """Log-spectral distance over all bins (0 for identical signals)."""
  reference, estimate = _check_pair(reference, estimate, np, 1)
  return float(_lsd_all(reference, estimate, n_fft, hop, None, None, np)["lsd"])


def lsd_hf(
    reference: np.ndarray, estimate: np.ndarray, rate: float, cutoff_hz: float, n_fft: int = 2048, hop: int = 512
) -> float:
  """Log-spectral distance over the bins with frequency >= `cutoff_hz` (the band the model has to invent)."""
  reference, estimate = _check_pair(reference, estimate, np, 1)
  return float(_lsd_all(reference, estimate, n_fft, hop, rate, cutoff_hz, np)["lsd_hf"])


def lsd_lf(
    reference: np.ndarray, estimate: np.ndarray, rate: float, cutoff_hz: float, n_fft: int = 2048, hop: int = 512
) -> float:
  """Log-spectral distance over the bins with frequency < `cutoff_hz` (the band present in the input)."""
  reference, estimate = _check_pair(reference, estimate, np, 1)
  return float(_lsd_all(reference, estimate, n_fft, hop, rate, cutoff_hz, np)["lsd_lf"])


def snr(reference: np.ndarray, estimate: np.ndarray) -> float:
  """Signal-to-noise ratio in dB, ``10 log10(sum ref^2 / sum (ref - est)^2)`` (eps: see the module docstring)."""
  reference, estimate = _check_pair(reference, estimate, np, 1)
  return float(_snr(reference, estimate, np))


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
  """Scale-invariant SDR in dB, no mean removal (see the module docstring)."""
  reference, estimate = _check_pair(reference, estimate, np, 1)
  return float(_si_sdr(reference, estimate, np))


def all_metrics(
    reference: np.ndarray, estimate: np.ndarray, rate: float, cutoff_hz: float, n_fft: int = 2048, hop: int = 512
) -> dict[str, float]:
  """All metrics of one signal pair, keys `METRIC_NAMES`: "lsd", "lsd_hf", "lsd_lf", "snr", "si_sdr"."""
  reference, estimate = _check_pair(reference, estimate, np, 1)
  out = _lsd_all(reference, estimate, n_fft, hop, rate, cutoff_hz, np)
  out["snr"] = _snr(reference, estimate, np)
  out["si_sdr"] = _si_sdr(reference, estimate, np)
  return {name: float(out[name]) for name in METRIC_NAMES}


# -- jax.numpy front end: batches (N, W) or (N, W, 1) in, (N,) out; already jitted (compiled once per shape) --


@functools.partial(jax.jit, static_argnames=("n_fft", "hop", "rate", "cutoff_hz"))
def batch_lsd(
    reference: Any,
    estimate: Any,
    n_fft: int = 2048,
    hop: int = 512,
    rate: float | None = None,
    cutoff_hz: float | None = None,
) -> jnp.ndarray | dict[str, jnp.ndarray]:
  """Per-example LSD, shape (N,); with `rate` and `cutoff_hz` a dict {"lsd", "lsd_hf", "lsd_lf"} of (N,)."""
  reference, estimate = _check_pair(reference, estimate, jnp, 2)
  out = _lsd_all(reference, estimate, n_fft, hop, rate, cutoff_hz, jnp)
  return out if rate is not None else out["lsd"]


@jax.jit
def batch_snr(reference: Any, estimate: Any) -> jnp.ndarray:
  """Per-example SNR in dB, shape (N,)."""
  reference, estimate = _check_pair(reference, estimate, jnp, 2)
  return _snr(reference, estimate, jnp)


VALID_SNR_CAP_DB = 30.0  # validation's capped SNR: a window's SNR counts up to here


@jax.jit
def batch_snr_capped(reference: Any, estimate: Any) -> jnp.ndarray:
  """Per-example SNR in dB soft-capped at VALID_SNR_CAP_DB, shape (N,): 10 log10(E_s / (E_e + c E_s)), c =
  10^(-cap / 10) (the thresholded SNR of the capped SNR loss). In a mean over windows an uncapped SNR is ruled by
  the windows the input already got almost right (an output 40 dB under a 70 dB input weighs like a 30 dB
  gain elsewhere); capped, the mean says whether the model beats its input where there is something to restore."""
  reference, estimate = _check_pair(reference, estimate, jnp, 2)
  return _snr(reference, estimate, jnp, VALID_SNR_CAP_DB)


@jax.jit
def batch_si_sdr(reference: Any, estimate: Any) -> jnp.ndarray:
  """Per-example SI-SDR in dB, shape (N,)."""
  reference, estimate = _check_pair(reference, estimate, jnp, 2)
  return _si_sdr(reference, estimate, jnp)
