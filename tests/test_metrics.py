"""Tests for sr_jax.metrics: numpy metrics against independent float64 computations, hand-worked cases,
and the batched jax versions against the numpy ones."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal

from sr_jax import metrics
from sr_jax.errors import UserError

RATE, CUTOFF = 16000, 2000


def scipy_log_power(x, n_fft, hop):
  """(frequencies, (frames, bins) log10 power) via scipy's STFT, rescaled to the unnormalised convention."""
  window = scipy.signal.get_window("hann", n_fft)
  f, _, z = scipy.signal.stft(
      x, fs=RATE, window=window, nperseg=n_fft, noverlap=n_fft - hop, boundary="even", padded=False
  )
  return f, np.log10(np.abs(z.T * window.sum()) ** 2 + 1e-8)


def reference_lsd(ref, est, n_fft=2048, hop=512, band=None):
  """LSD frame by frame with python loops; band = "hf" / "lf" / None selects bins by scipy's frequencies."""
  f, a = scipy_log_power(ref, n_fft, hop)
  _, b = scipy_log_power(est, n_fft, hop)
  keep = {None: np.ones_like(f, bool), "hf": f >= CUTOFF, "lf": f < CUTOFF}[band]
  per_frame = [np.sqrt(np.mean((a[t][keep] - b[t][keep]) ** 2)) for t in range(a.shape[0])]
  return float(np.mean(per_frame))


@pytest.fixture(name="pair")
def fixture_pair():
  rng = np.random.default_rng(0)
  ref = rng.standard_normal(9000) * 0.3
  est = ref + 0.1 * rng.standard_normal(9000) + 0.05 * np.sin(np.arange(9000) * 0.9)
  return ref, est


def test_lsd_matches_scipy_reference(pair):
  ref, est = pair
  np.testing.assert_allclose(metrics.lsd(ref, est), reference_lsd(ref, est), rtol=1e-9)
  np.testing.assert_allclose(metrics.lsd(ref, est, 512, 128), reference_lsd(ref, est, 512, 128), rtol=1e-9)
  np.testing.assert_allclose(metrics.lsd_hf(ref, est, RATE, CUTOFF), reference_lsd(ref, est, band="hf"), rtol=1e-9)
  np.testing.assert_allclose(metrics.lsd_lf(ref, est, RATE, CUTOFF), reference_lsd(ref, est, band="lf"), rtol=1e-9)


def test_snr_and_si_sdr_match_closed_forms(pair):
  ref, est = pair
  np.testing.assert_allclose(metrics.snr(ref, est), 20 * np.log10(np.linalg.norm(ref) / np.linalg.norm(ref - est)))
  cos = ref @ est / (np.linalg.norm(ref) * np.linalg.norm(est))  # SI-SDR = 10 log10(cos^2 / (1 - cos^2))
  np.testing.assert_allclose(metrics.si_sdr(ref, est), 10 * np.log10(cos**2 / (1 - cos**2)), rtol=1e-9)


def test_all_metrics_keys_and_values(pair):
  ref, est = pair
  got = metrics.all_metrics(ref, est, RATE, CUTOFF)
  assert list(got) == ["lsd", "lsd_hf", "lsd_lf", "snr", "si_sdr"]
  assert all(type(v) is float for v in got.values())
  assert got["lsd"] == metrics.lsd(ref, est)
  assert got["lsd_hf"] == metrics.lsd_hf(ref, est, RATE, CUTOFF)
  assert got["lsd_lf"] == metrics.lsd_lf(ref, est, RATE, CUTOFF)
  assert got["snr"] == metrics.snr(ref, est) and got["si_sdr"] == metrics.si_sdr(ref, est)


def test_identical_signals():
  x = np.random.default_rng(1).standard_normal(5000)
  got = metrics.all_metrics(x, x, RATE, CUTOFF)
  assert got["lsd"] == got["lsd_hf"] == got["lsd_lf"] == 0.0
  np.testing.assert_allclose(got["snr"], 10 * np.log10(np.sum(x**2) / metrics.EPS_ENERGY))
  assert np.isfinite(got["si_sdr"]) and got["si_sdr"] > 100


def test_lsd_of_scaled_copy_is_twice_log10_of_the_scale():
  # every bin's log power moves by 2 log10(10) = 2 (up to the 1e-8 floor, negligible at these levels)
  x = 10 * np.random.default_rng(2).standard_normal(8000)
  np.testing.assert_allclose(metrics.lsd(x, 10.0 * x), 2.0, rtol=1e-6)
  np.testing.assert_allclose(metrics.lsd(10.0 * x, x), 2.0, rtol=1e-6)


def test_silence_is_finite():
  x = np.random.default_rng(3).standard_normal(3000)
  zeros = np.zeros(3000)
  assert metrics.lsd(zeros, zeros) == 0.0
  for ref, est in ((zeros, x), (x, zeros), (zeros, zeros)):
    assert all(np.isfinite(v) for v in metrics.all_metrics(ref, est, RATE, CUTOFF).values())
  assert metrics.snr(zeros, zeros) == 0.0 and metrics.si_sdr(zeros, zeros) == 0.0
  np.testing.assert_allclose(metrics.snr(x, zeros), 0.0, atol=1e-9)  # error energy = signal energy
  assert metrics.lsd(zeros, x) > 5  # log10 floor at -8 against power ~ 1e2..1e3


def test_snr_of_known_noise_level():
  n = np.arange(16000)
  amplitude, sigma = 0.8, 0.05
  sine = amplitude * np.sin(2 * np.pi * 440 * n / 16000)  # 440 whole periods: sum sine^2 = A^2 W / 2
  noise = sigma * (-1.0) ** n  # energy exactly sigma^2 W
  expected = 10 * np.log10(amplitude**2 / (2 * sigma**2))
  np.testing.assert_allclose(metrics.snr(sine, sine + noise), expected, rtol=0, atol=1e-6)


def test_si_sdr_is_scale_invariant_but_snr_is_not(pair):
  ref, est = pair
  base = metrics.si_sdr(ref, est)
  for scale in (0.01, 0.5, 3.0, 100.0, -2.0):
    np.testing.assert_allclose(metrics.si_sdr(ref, scale * est), base, rtol=1e-6)  # up to eps = 1e-8
  assert abs(metrics.snr(ref, 3.0 * est) - metrics.snr(ref, est)) > 1.0


def test_high_band_difference_leaves_low_band_lsd_near_zero():
  # 8001 samples and a 6 kHz cosine at 16 kHz: the cosine is even about both edge samples, so reflect padding
  # extends it exactly and the difference is a pure tone 4 kHz above the cut-off in every frame.
  n = np.arange(8001)
  ref = np.random.default_rng(4).standard_normal(8001)
  est = ref + 0.5 * np.cos(2 * np.pi * 6000 * n / RATE)
  low, high = metrics.lsd_lf(ref, est, RATE, CUTOFF), metrics.lsd_hf(ref, est, RATE, CUTOFF)
  assert low < 1e-8
  assert high > 0.01
  # and the other way round: a difference only below the cut-off (1 kHz, also even about both edges)
  est = ref + 0.5 * np.cos(2 * np.pi * 1000 * n / RATE)
  assert metrics.lsd_hf(ref, est, RATE, CUTOFF) < 1e-8 < 0.01 < metrics.lsd_lf(ref, est, RATE, CUTOFF)


def test_channel_axis_and_dtypes_accepted():
  rng = np.random.default_rng(5)
  ref, est = rng.standard_normal(3000).astype(np.float32), rng.standard_normal(3000).astype(np.float32)
  assert metrics.lsd(ref[:, None], est[:, None]) == metrics.lsd(ref, est)
  np.testing.assert_allclose(metrics.snr(ref, est), metrics.snr(ref.astype(np.float64), est.astype(np.float64)))


def test_mismatched_lengths_and_layouts_raise():
  with pytest.raises(ValueError, match="3000 vs 2999 samples"):
    metrics.lsd(np.zeros(3000), np.zeros(2999))
  with pytest.raises(ValueError, match="reference and estimate differ"):
    metrics.snr(np.zeros(100), np.zeros(101))
  with pytest.raises(ValueError, match=r"mono audio of shape \(W,\)"):
    metrics.si_sdr(np.zeros((100, 2)), np.zeros((100, 2)))
  with pytest.raises(ValueError, match="differ"):
    metrics.batch_snr(jnp.zeros((2, 100)), jnp.zeros((2, 99)))


@pytest.mark.parametrize("cutoff", [0, -5, 8001, 9000])
def test_bad_cutoff_raises(cutoff):
  with pytest.raises(UserError, match="cut-off"):
    metrics.lsd_hf(np.zeros(100), np.zeros(100), RATE, cutoff)


def test_cutoff_needs_rate():
  with pytest.raises(UserError, match="both rate and cutoff_hz"):
    metrics.batch_lsd(jnp.zeros((1, 100)), jnp.zeros((1, 100)), rate=RATE)


def test_batched_versions_agree_with_numpy_per_example():
  rng = np.random.default_rng(6)
  ref = (0.3 * rng.standard_normal((4, 6000))).astype(np.float32)
  est = (ref + 0.1 * rng.standard_normal((4, 6000))).astype(np.float32)
  est[3] = 0  # a silent estimate in the batch
  lsds = metrics.batch_lsd(jnp.asarray(ref)[..., None], jnp.asarray(est)[..., None], rate=RATE, cutoff_hz=CUTOFF)
  snrs = metrics.batch_snr(ref, est)
  si_sdrs = metrics.batch_si_sdr(jnp.asarray(ref), jnp.asarray(est))
  assert isinstance(snrs, jax.Array) and snrs.shape == (4,)
  for i in range(4):
    want = metrics.all_metrics(ref[i], est[i], RATE, CUTOFF)
    for name in ("lsd", "lsd_hf", "lsd_lf"):
      assert lsds[name].shape == (4,)
      np.testing.assert_allclose(lsds[name][i], want[name], rtol=1e-5)
    np.testing.assert_allclose(snrs[i], want["snr"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(si_sdrs[i], want["si_sdr"], rtol=1e-4, atol=1e-4)


def test_batched_versions_jit():
  rng = np.random.default_rng(7)
  ref = jnp.asarray(rng.standard_normal((2, 4096, 1)), jnp.float32)
  est = ref + jnp.asarray(0.2 * rng.standard_normal((2, 4096, 1)), jnp.float32)
  bands = jax.jit(functools.partial(metrics.batch_lsd, n_fft=512, hop=128, rate=RATE, cutoff_hz=CUTOFF))
  for name, value in bands(ref, est).items():
    want = [metrics.all_metrics(r, e, RATE, CUTOFF, n_fft=512, hop=128)[name] for r, e in zip(ref, est)]
    np.testing.assert_allclose(value, want, rtol=1e-4)
  # called inside another jitted function (as eval_step does), against the float64 numpy front end
  inner = jax.jit(lambda r, e: (metrics.batch_lsd(r, e), metrics.batch_snr(r, e), metrics.batch_si_sdr(r, e)))
  for name, value in zip(("lsd", "snr", "si_sdr"), inner(ref, est)):
    want = [metrics.all_metrics(r, e, RATE, CUTOFF)[name] for r, e in zip(ref, est)]
    np.testing.assert_allclose(value, want, rtol=1e-4)
