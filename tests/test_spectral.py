"""Tests for sr_jax.spectral: the STFT against its definition (direct float64 DFT sums) and scipy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal

from sr_jax import spectral


def definition_stft(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
  """Direct float64 evaluation of S[l, k] = sum_n w[n] xpad[l*hop + n] exp(-2 pi i k n / n_fft), (frames, bins).

  Padding written out by index: reflection about the edge samples (torch/numpy "reflect"), zeros when the
  signal is not longer than n_fft // 2.
  """
  x = np.asarray(x, np.float64)
  length, pad = len(x), n_fft // 2
  xpad = np.zeros(length + 2 * pad)
  for i in range(len(xpad)):
    j = i - pad
    if length > pad:  # reflect: -1 -> 1, length -> length - 2
      j = -j if j < 0 else (2 * (length - 1) - j if j >= length else j)
      xpad[i] = x[j]
    elif 0 <= j < length:
      xpad[i] = x[j]
  n = np.arange(n_fft)
  window = 0.5 - 0.5 * np.cos(2 * np.pi * n / n_fft)
  k = np.arange(n_fft // 2 + 1)
  basis = np.exp(-2j * np.pi * np.outer(n, k) / n_fft)  # (n_fft, bins)
  frames = [xpad[start : start + n_fft] for start in range(0, len(xpad) - n_fft + 1, hop)]
  return np.stack([(window * f) @ basis for f in frames])


@pytest.mark.parametrize(
    "length, n_fft, hop",
    [(1000, 64, 16), (1001, 64, 16), (257, 63, 10), (5000, 2048, 512), (3000, 256, 100), (40, 64, 16)],
)
def test_stft_matches_definition(length, n_fft, hop):
  x = np.random.default_rng(length + n_fft).standard_normal(length)
  got = spectral.stft(x, n_fft, hop)
  want = definition_stft(x, n_fft, hop)
  assert got.dtype == np.complex128
  assert got.shape == want.shape == (spectral.num_frames(length, n_fft, hop), n_fft // 2 + 1)
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-10 * np.abs(want).max())


@pytest.mark.parametrize("length", [1, 31, 32, 33, 100])
def test_short_signals_zero_pad_only_when_too_short_to_reflect(length):
  n_fft, hop = 64, 16
  x = np.random.default_rng(length).standard_normal(length)
  got = spectral.stft(x, n_fft, hop)
  np.testing.assert_allclose(got, definition_stft(x, n_fft, hop), atol=1e-10)
  padded = spectral.center_pad(x, n_fft)
  if length > n_fft // 2:  # reflect: the first padded sample mirrors x[n_fft // 2]
    assert padded[0] == x[n_fft // 2]
  else:
    assert np.all(padded[: n_fft // 2] == 0)


def test_stft_matches_rescaled_scipy():
  rng = np.random.default_rng(0)
  x = rng.standard_normal(4321)
  n_fft, hop = 512, 128
  window = scipy.signal.get_window("hann", n_fft)
  # boundary="even" is reflection without repeating the edge; scipy divides by sum(window) ("spectrum").
  _, _, z = scipy.signal.stft(
      x, window=window, nperseg=n_fft, noverlap=n_fft - hop, boundary="even", padded=False, detrend=False
  )
  want = z.T * window.sum()
  got = spectral.stft(x, n_fft, hop)
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, atol=1e-10 * np.abs(want).max())


def test_hann_window_is_periodic():
  np.testing.assert_allclose(spectral.hann_window(16), scipy.signal.get_window("hann", 16), atol=1e-15)
  w = spectral.hann_window(8)
  assert w[0] == 0 and w[4] == 1 and w[-1] != 0  # periodic: no trailing zero


def test_frame_counts_and_bin_frequencies():
  for length in (1, 511, 512, 513, 8192):
    assert spectral.num_frames(length, 2048, 512) == 1 + length // 512
  np.testing.assert_allclose(spectral.bin_frequencies(8, 16000), [0, 2000, 4000, 6000, 8000])


def test_batched_jax_matches_numpy_per_example():
  rng = np.random.default_rng(1)
  x = rng.standard_normal((3, 2, 3000)).astype(np.float32)
  got = spectral.stft(jnp.asarray(x), 512, 128)
  assert isinstance(got, jax.Array) and got.dtype == jnp.complex64
  assert got.shape == (3, 2, spectral.num_frames(3000, 512, 128), 257)
  want = np.stack([[definition_stft(row, 512, 128) for row in group] for group in x])
  np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=2e-5 * np.abs(want).max())


def test_jit_and_short_signal_in_jax():
  x = jnp.asarray(np.random.default_rng(2).standard_normal((2, 20)), jnp.float32)
  got = jax.jit(spectral.stft, static_argnums=(1, 2))(x, 64, 16)
  want = np.stack([definition_stft(row, 64, 16) for row in np.asarray(x, np.float64)])
  np.testing.assert_allclose(np.asarray(got), want, atol=1e-5)


def test_numpy_float32_and_int_inputs():
  x = np.arange(100, dtype=np.int16)
  got = spectral.stft(x, 32, 8)
  assert got.dtype == np.complex64
  np.testing.assert_allclose(got, definition_stft(x, 32, 8), rtol=1e-5, atol=1e-3)


def test_power_has_finite_gradient_at_zero():
  g = jax.grad(lambda x: spectral.power(spectral.stft(x, 32, 8)).sum())(jnp.zeros(64))
  assert np.all(np.isfinite(np.asarray(g)))


@pytest.mark.parametrize("n_fft, hop", [(0, 4), (16, 0), (16.0, 4), (16, -1)])
def test_bad_sizes_raise(n_fft, hop):
  with pytest.raises(ValueError, match="positive int"):
    spectral.stft(np.zeros(100), n_fft, hop)


def test_empty_signal_raises():
  with pytest.raises(ValueError, match="non-empty"):
    spectral.stft(np.zeros(0), 16, 4)


def test_drop_channel_axis():
  assert spectral.drop_channel_axis(np.zeros((4, 10, 1)), 2).shape == (4, 10)
  assert spectral.drop_channel_axis(np.zeros((4, 1)), 2).shape == (4, 1)  # (N, W=1) is not a channel layout
  assert spectral.drop_channel_axis(np.zeros((10, 1)), 1).shape == (10,)


@pytest.mark.parametrize("length, n_fft, hop", [(1000, 64, 16), (1003, 64, 32), (8192, 512, 128), (4321, 256, 64), (4352, 256, 128)])
def test_istft_inverts_stft(length, n_fft, hop):
  x = np.random.default_rng(length).standard_normal((2, length))
  np.testing.assert_allclose(spectral.istft(spectral.stft(x, n_fft, hop), length, n_fft, hop), x, atol=1e-12)
  got = spectral.istft(spectral.stft(jnp.asarray(x, jnp.float32), n_fft, hop), length, n_fft, hop)
  assert isinstance(got, jax.Array) and got.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(got), x, atol=2e-5)


def test_istft_of_a_modified_spectrum_matches_scipy():
  """A spectrum no signal has (random gains per bin): weighted overlap-add, as scipy.signal.istft computes it
  (scipy's STFT is divided by sum(window))."""
  rng = np.random.default_rng(3)
  n_fft, hop, length = 512, 128, 4096
  spectrum = spectral.stft(rng.standard_normal(length), n_fft, hop) * rng.uniform(0, 1, (33, n_fft // 2 + 1))
  window = scipy.signal.get_window("hann", n_fft)
  _, want = scipy.signal.istft(spectrum.T / window.sum(), window=window, nperseg=n_fft, noverlap=n_fft - hop)
  want = want[:length]
  np.testing.assert_allclose(spectral.istft(spectrum, length, n_fft, hop), want, atol=1e-12)
  got = jax.jit(lambda s: spectral.istft(s, length, n_fft, hop))(jnp.asarray(spectrum, jnp.complex64))
  np.testing.assert_allclose(np.asarray(got), want, atol=1e-5 * np.abs(want).max())


def test_istft_bad_sizes_raise():
  spectrum = spectral.stft(np.zeros(1024), 64, 16)
  with pytest.raises(ValueError, match="multiple of hop"):
    spectral.istft(spectral.stft(np.zeros(1024), 64, 24), 1024, 64, 24)
  with pytest.raises(ValueError, match="at least 2 hops"):
    spectral.istft(spectral.stft(np.zeros(1024), 64, 64), 1024, 64, 64)
  with pytest.raises(ValueError, match="cannot give"):
    spectral.istft(spectrum, 1024, 128, 16)  # bins of another n_fft
  with pytest.raises(ValueError, match="cannot give"):
    spectral.istft(spectrum, 1024 + 33, 64, 16)  # longer than the frames cover (64 * 16 + 32)
