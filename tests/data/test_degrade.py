"""Tests for sr_jax.data.degrade (chains, resampling, noise, reverb, seeding) and launch/degrade.py."""

import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.signal
import scipy.stats
import soundfile as sf

from sr_jax.data import audio as audio_lib
from sr_jax.data import degrade as degrade_lib
from sr_jax.data import reverb as reverb_lib
from sr_jax.errors import UserError

RATE = 16000
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _white(seconds: float = 2.0, rate: int = RATE, seed: int = 0) -> np.ndarray:
  return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * rate))).astype(np.float32)


def _rms(x: np.ndarray) -> float:
  return float(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)))


def _band_rms(x: np.ndarray, rate: int, low: float, high: float) -> float:
  """RMS of the part of x between low and high Hz (an ideal band-pass via the FFT of the whole signal)."""
  spectrum = np.fft.rfft(np.asarray(x, np.float64))
  freqs = np.fft.rfftfreq(len(x), 1 / rate)
  return _rms(np.fft.irfft(np.where((freqs >= low) & (freqs <= high), spectrum, 0), n=len(x)))


# ---------------------------------------------------------------------------------------------- parsing


def test_parse_chain_and_rates():
  chain = degrade_lib.parse_chain(" sample 4000 16000 , whitenoise 0 0.002,reverb 0.1 50 50 100 0 0 ")
  assert [s.name for s in chain] == ["sample", "whitenoise", "reverb"]
  assert chain[0].args == (4000, 16000)
  assert chain[2].args == (0.1, 50, 50, 100, 0, 0, 0)  # wet gain filled in with sox's default
  assert degrade_lib.parse_chain("reverb")[0].args == (0, 50, 50, 100, 100, 0, 0)
  assert degrade_lib.chain_rates(chain) == (4000, 16000)
  assert degrade_lib.chain_rates("pinknoise 0 0.01") == (None, None)
  assert degrade_lib.parse_chain("") == degrade_lib.parse_chain("  ") == ()
  assert degrade_lib.parse_chain(chain) == chain
  assert str(chain[1]) == "whitenoise 0 0.002"


@pytest.mark.parametrize("chain, bad_step, reason", [
    ("sample 16000", "sample 16000", "takes 2 arguments"),
    ("foo 1 2", "foo 1 2", "unknown step 'foo'"),
    ("sample 16000 4000", "sample 16000 4000", "LOW 16000 must be below HIGH 4000"),
    ("sample 8000 8000", "sample 8000 8000", "must be below"),
    ("sample 4000.5 16000", "sample 4000.5 16000", "must be an integer rate"),
    ("whitenoise 0 abc", "whitenoise 0 abc", "'abc' is not a number"),
    ("pinknoise 0 nan", "pinknoise 0 nan", "not a finite number"),
    ("whitenoise 0 0.1 3", "whitenoise 0 0.1 3", "takes 2 arguments"),
    ("brownnoise 0 -0.1", "brownnoise 0 -0.1", "must not be negative"),
    ("reverb 0 50 50 100 100 0 0 1", "reverb 0 50 50 100 100 0 0 1", "at most 7 arguments"),
    ("reverb 0 150", "reverb 0 150", "reverberance 150 is outside"),
    ("reverb -1", "reverb -1", "VARIANCE must not be negative"),
    ("sample 4000 16000,,whitenoise 0 1", "", "empty step"),
    ("sample 4000 16000,sample 2000 8000", "sample 2000 8000", "at most one 'sample'"),
])
def test_malformed_chain_is_one_clear_user_error(chain, bad_step, reason):
  with pytest.raises(UserError) as info:
    degrade_lib.parse_chain(chain)
  message = str(info.value)
  assert f"bad degradation step {bad_step!r} in chain {chain!r}" in message
  assert reason in message
  assert "grammar: sample LOW HIGH | whitenoise|pinknoise|brownnoise|tpdfnoise VARIANCE VOLUME" in message
  assert "\n" not in message


def test_bad_upsample_method_and_seed():
  with pytest.raises(UserError, match="unknown upsampling method 'spline'"):
    degrade_lib.degrade(_white(0.1), RATE, "sample 4000 16000", 0, upsample="spline")
  with pytest.raises(UserError, match="must not be negative"):
    degrade_lib.degrade(_white(0.1), RATE, "", -1)


# ---------------------------------------------------------------------------------------------- sample


def test_sample_soxr_is_band_limited_and_length_matched():
  clean = _white(2.0, rate=22050)  # the audio's own rate differs from HIGH: the target is resampled
  inp, target, target_rate = degrade_lib.degrade(clean, 22050, "sample 4000 16000", seed=0)
  assert target_rate == 16000 and inp.dtype == target.dtype == np.float32
  assert len(inp) == len(target) == audio_lib.resampled_length(len(clean), 22050, 16000)
  np.testing.assert_allclose(target, audio_lib.resample(clean, 22050, 16000))
  leak_db = 20 * np.log10(_band_rms(inp, 16000, 2300, 8000) / _band_rms(inp, 16000, 0, 2000))
  assert leak_db <= -40
  # Below the cut-off the input is the target (soxr's passband is flat).
  assert _band_rms(inp - target, 16000, 0, 1500) < 0.01 * _band_rms(target, 16000, 0, 1500)


@pytest.mark.parametrize("method", ["cubic", "linear"])
def test_sample_spline_and_linear_lengths_and_low_band(method):
  clean = _white(2.0)
  inp, target, _ = degrade_lib.degrade(clean, RATE, "sample 4000 16000", seed=0, upsample=method)
  assert len(inp) == len(target) == len(clean)
  ref, _, _ = degrade_lib.degrade(clean, RATE, "sample 4000 16000", seed=0)  # soxr: the band-limited input
  # Transfer function from the band-limited input to this one vs the interpolator's known response:
  # linear interpolation by R = 4 is the discrete Fejer kernel, the cubic spline sinc^4 / (2/3 + cos(2 pi u) / 3).
  freqs, cross = scipy.signal.csd(ref, inp, RATE, nperseg=1024)
  _, auto = scipy.signal.welch(ref, RATE, nperseg=1024)
  gain_db = 20 * np.log10(np.abs(cross / auto))
  u = freqs / 4000
  with np.errstate(invalid="ignore", divide="ignore"):
    if method == "linear":
      expected = (np.sin(np.pi * u) / (4 * np.sin(np.pi * u / 4))) ** 2
    else:
      expected = np.sinc(u) ** 4 / (2 / 3 + np.cos(2 * np.pi * u) / 3)
  band = (freqs > 50) & (freqs < 1700)
  np.testing.assert_allclose(gain_db[band], 20 * np.log10(expected[band]), atol=0.05)


def test_upsample_function_lengths_and_exact_samples():
  x_low = np.sin(2 * np.pi * 300 * np.arange(400) / 4000).astype(np.float32)
  for method in degrade_lib.UPSAMPLE_METHODS:
    for length in (1598, 1600, 1605):
      out = degrade_lib.upsample(x_low, 4000, 16000, length, method)
      assert out.shape == (length,) and out.dtype == np.float32
    if method != "soxr":  # interpolators pass through the low-rate samples
      np.testing.assert_allclose(out[:1600:4], x_low, atol=1e-6)
  np.testing.assert_allclose(degrade_lib.upsample(x_low, 4000, 16000, 1600, "soxr"),
                             audio_lib.resample(x_low, 4000, 16000))


# ---------------------------------------------------------------------------------------------- noise


@pytest.mark.parametrize("colour, slope_db", [("whitenoise", 0), ("pinknoise", -3), ("brownnoise", -6),
                                              ("tpdfnoise", 0)])
def test_noise_colour_slope(colour, slope_db):
  clean = np.zeros(4 * RATE, np.float32)
  inp, _, _ = degrade_lib.degrade(clean, RATE, f"{colour} 0 0.01", seed=3)
  freqs, psd = scipy.signal.welch(inp, RATE, nperseg=4096)
  band = (freqs >= 100) & (freqs <= 6000)
  slope = np.polyfit(np.log2(freqs[band]), 10 * np.log10(psd[band]), 1)[0]
  assert slope == pytest.approx(slope_db, abs=1.0)
  if colour == "tpdfnoise":  # triangular pdf: Pearson kurtosis 2.4, support +-sqrt(6) RMS
    assert scipy.stats.kurtosis(inp, fisher=False) == pytest.approx(2.4, abs=0.05)
    assert np.max(np.abs(inp)) <= np.sqrt(6) * 0.01 * (1 + 1e-5)
  elif colour == "whitenoise":  # Gaussian
    assert scipy.stats.kurtosis(inp, fisher=False) == pytest.approx(3.0, abs=0.1)


@pytest.mark.parametrize("colour", degrade_lib.NOISES)
def test_noise_level_is_rms_and_input_is_not_halved(colour):
  clean = _white(1.0)
  chain = f"{colour} 0 0.05"
  inp, target, _ = degrade_lib.degrade(clean, RATE, chain, seed=7)
  noise_only, _, _ = degrade_lib.degrade(np.zeros_like(clean), RATE, chain, seed=7)
  np.testing.assert_array_equal(target, clean)
  assert _rms(inp - clean) == pytest.approx(0.05, rel=0.01)
  assert _rms(noise_only) == pytest.approx(0.05, rel=1e-4)
  np.testing.assert_allclose(inp - noise_only, clean, atol=1e-7)  # input = clean + noise: not halved


def test_noise_variance_randomises_level_per_seed():
  zeros = np.zeros(RATE, np.float32)
  levels = [_rms(degrade_lib.degrade(zeros, RATE, "whitenoise 1e-4 0.05", seed=s)[0]) for s in range(40)]
  # level = max(0, 0.05 + 0.01 z): mean 0.05, std 0.01.
  assert np.mean(levels) == pytest.approx(0.05, abs=0.005)
  assert np.std(levels) == pytest.approx(0.01, rel=0.35)
  huge = [_rms(degrade_lib.degrade(zeros, RATE, "whitenoise 1 0.0", seed=s)[0]) for s in range(10)]
  assert min(huge) == 0 and max(huge) > 0  # negative draws clip to silence


# ---------------------------------------------------------------------------------------------- reverb, chains


def test_reverb_step_matches_reverb_module_and_variance():
  clean = _white(0.5)
  inp, _, _ = degrade_lib.degrade(clean, RATE, "reverb 0 70 20 60 40 5 -2", seed=11)
  rng = np.random.default_rng([11, 0])
  rng.standard_normal()  # the (unused at VARIANCE 0) per-file reverberance draw
  ref = reverb_lib.reverb(clean, RATE, rng, reverb_lib.ReverbParams(70, 20, 60, 40, 5, -2))
  np.testing.assert_array_equal(inp, ref)
  # VARIANCE randomises the reverberance: same seed and VARIANCE 0 differ from VARIANCE 100.
  randomised, _, _ = degrade_lib.degrade(clean, RATE, "reverb 100 70 20 60 40 5 -2", seed=11)
  assert _rms(randomised - inp) > 1e-3 * _rms(inp - clean)


@pytest.mark.parametrize("index, new", [(0, 400), (1, 20), (2, 90), (3, 30), (4, 10), (5, 50), (6, 3)])
def test_every_reverb_argument_changes_output(index, new):
  clean = _white(0.5)
  args = [0, 50, 50, 100, 100, 0, 0]
  base, _, _ = degrade_lib.degrade(clean, RATE, "reverb " + " ".join(map(str, args)), seed=2)
  args[index] = new
  changed, _, _ = degrade_lib.degrade(clean, RATE, "reverb " + " ".join(map(str, args)), seed=2)
  assert _rms(changed - base) > 0.01 * _rms(base - clean)


def test_chain_order_and_seeding():
  clean = _white(1.0, rate=22050)
  chain = "sample 4000 16000,whitenoise 0 0.01,reverb 0 50 50 50 50 10 0"
  a = degrade_lib.degrade(clean, 22050, chain, seed=123)
  b = degrade_lib.degrade(clean, 22050, chain, seed=123)
  c = degrade_lib.degrade(clean, 22050, chain, seed=124)
  assert a[0].tobytes() == b[0].tobytes() and a[1].tobytes() == b[1].tobytes()
  np.testing.assert_array_equal(a[1], c[1])  # the target does not depend on the seed
  assert _rms(a[0] - c[0]) > 0.005
  # Order matters: noise after band-limiting keeps its high band, noise before it loses it.
  noise_last = degrade_lib.degrade(clean, 22050, "sample 4000 16000,whitenoise 0 0.01", seed=1)[0]
  noise_first = degrade_lib.degrade(clean, 22050, "whitenoise 0 0.01,sample 4000 16000", seed=1)[0]
  # White noise of RMS 0.01 has RMS 0.01 * sqrt(5700 / 8000) between 2.3 and 8 kHz.
  assert _band_rms(noise_last, 16000, 2300, 8000) == pytest.approx(0.01 * np.sqrt(5700 / 8000), rel=0.05)
  assert _band_rms(noise_first, 16000, 2300, 8000) < 1e-2 * _band_rms(noise_first, 16000, 0, 2000)  # -40 dB


def test_empty_chain_is_identity_and_file_seed_is_stable():
  clean = _white(0.2)
  inp, target, rate = degrade_lib.degrade(clean, RATE, "", seed=0)
  assert rate == RATE and inp is not target
  np.testing.assert_array_equal(inp, clean)
  np.testing.assert_array_equal(target, clean)
  # A value pinned from sha1("0:a.wav"): hash() randomisation or a changed formula would break it.
  assert degrade_lib.file_seed(0, "a.wav") == int("e79bcb4b9dd65df8", 16) >> 1 == 8344578184891281148
  assert len({degrade_lib.file_seed(r, k) for r in (0, 1) for k in ("a.wav", "b.wav")}) == 4
  assert 0 <= degrade_lib.file_seed(5, "x") < 2**63


# ---------------------------------------------------------------------------------------------- launch


def _launch(*args: str) -> subprocess.CompletedProcess:
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, os.path.join(REPO, "launch", "degrade.py"), *args], cwd=REPO,
                        capture_output=True, text=True, env=env, timeout=120)


def test_launch_degrade_end_to_end(tmp_path):
  src = tmp_path / "clean.wav"
  stereo = np.stack([_white(1.0, 22050, seed=1), _white(1.0, 22050, seed=2)], axis=1)
  sf.write(src, stereo, 22050, subtype="FLOAT")
  out = tmp_path / "out" / "degraded.wav"
  args = [f"--input={src}", f"--output={out}", "--chain=sample 4000 16000,whitenoise 0 0.01", "--seed=3"]
  result = _launch(*args)
  assert result.returncode == 0, result.stderr
  written, rate = sf.read(out, dtype="float32")
  assert rate == 16000 and written.ndim == 1
  assert len(written) == audio_lib.resampled_length(22050, 22050, 16000)
  # The same bytes as the library call with the file seed from --seed and the basename.
  expected = degrade_lib.degrade(stereo.mean(axis=1).astype(np.float32), 22050,
                                 "sample 4000 16000,whitenoise 0 0.01", degrade_lib.file_seed(3, "clean.wav"))[0]
  np.testing.assert_allclose(written, expected, atol=1.01 / 32768)  # written as 16-bit PCM

  again = _launch(*args)  # refuses to overwrite
  assert again.returncode != 0
  lines = again.stderr.strip().splitlines()
  assert len(lines) == 1 and "already exists" in lines[0] and "--overwrite" in lines[0]
  assert "Traceback" not in again.stderr
  assert _launch(*args, "--overwrite").returncode == 0

  missing = _launch(f"--input={tmp_path / 'nope.wav'}", f"--output={tmp_path / 'x.wav'}")
  assert missing.returncode != 0 and "Traceback" not in missing.stderr
  lines = missing.stderr.strip().splitlines()
  assert len(lines) == 1 and "not found" in lines[0] and "nope.wav" in lines[0]
  assert not (tmp_path / "x.wav").exists()

  bad = _launch(f"--input={src}", f"--output={tmp_path / 'y.wav'}", "--chain=foo 1 2")
  assert bad.returncode != 0 and "Traceback" not in bad.stderr
  assert bad.stderr.strip().splitlines() == [bad.stderr.strip()] and "unknown step 'foo'" in bad.stderr
