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
  assert degrade_lib.parse_chain("") == degrade_lib.parse_chain("  ") == degrade_lib.parse_chain(" none ") == ()
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


# ---------------------------------------------------------------------------------------------- new steps: parsing


@pytest.mark.parametrize("chain, expected", [
    ("lowpass butter 4000", ("lowpass", ("butter", 4000, 4000, 8), None)),
    ("lowpass ELLIP 1000 3000 6", ("lowpass", ("ellip", 1000, 3000, 6), None)),
    ("lowpass fir 3000", ("lowpass", ("fir", 3000, 3000, 64), None)),
    ("lowpass random 600 7000", ("lowpass", ("random", 600, 7000), None)),
    ("telephone", ("telephone", (), None)),
    ("codec opus 0.2 0.9", ("codec", ("opus", 0.2, 0.9), None)),
    ("noise pink -5 20.25", ("noise", ("pink", -5, 20.25, "steady"), None)),
    ("noise random 10 random", ("noise", ("random", 10, 10, "random"), None)),
    ("room 0.3 0.8", ("room", ("image", 0.3, 0.8), None)),
    ("room synthetic 1", ("room", ("synthetic", 1, 1), None)),
    ("maybe 0.25 noise hum 30 modulated", ("noise", ("hum", 30, 30, "modulated"), 0.25)),
    ("maybe 0.5 whitenoise 0 0.01", ("whitenoise", (0, 0.01), 0.5)),
])
def test_new_steps_parse_with_defaults_and_round_trip(chain, expected):
  (step,) = degrade_lib.parse_chain(chain)
  assert (step.name, step.args, step.probability) == expected
  # The text form (what the pipeline hashes and its workers parse again) gives back the same step, exactly.
  assert degrade_lib.parse_chain(str(step)) == (step,)


def test_mix_folder_is_absolute_and_quoted_when_needed(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  (step,) = degrade_lib.parse_chain("mix noises 5 15")
  assert step.args == (str(tmp_path / "noises"), 5, 15)
  odd = str(tmp_path / "my noises, 'loud'")
  step, telephone = degrade_lib.parse_chain(f"mix \"{odd}\" 0,telephone")  # a quoted comma does not split
  assert step.args == (odd, 0, 0) and telephone == degrade_lib.Step("telephone")
  assert degrade_lib.parse_chain(f"{step},telephone") == (step, telephone)
  # `{data}` stays until the training pipeline puts its data root there
  (step,) = degrade_lib.parse_chain("mix {data}/train 5 30")
  assert step.args == ("{data}/train", 5, 30) and degrade_lib.parse_chain(str(step)) == (step,)
  with pytest.raises(UserError, match=r"mix folder \{data\}/train: \{data\} is the training data's folder"):
    degrade_lib.degrade(np.ones(1600, np.float32), 16000, "mix {data}/train 5 30", 0)  # unresolved: one clear line
  resolved = degrade_lib.with_data_root("maybe 0.2 mix {data}/train 5 30", "corpus")
  assert degrade_lib.parse_chain(resolved)[0].args == (str(tmp_path / "corpus" / "train"), 5, 30)
  # Numbers keep every digit in the new steps' text (the original steps keep sox-style 6 digits).
  assert str(degrade_lib.parse_chain("noise white 10.123456789")[0]) == "noise white 10.123456789 10.123456789 steady"


@pytest.mark.parametrize("chain, reason", [
    ("lowpass 4000", "'lowpass' needs a KIND first"),
    ("lowpass bessel 4000", "unknown filter kind 'bessel': use one of soxr, butter"),
    ("lowpass butter", "expected lowpass KIND CUTOFF [CUTOFF_MAX [ORDER]], got 0 numbers"),
    ("lowpass butter 1 2 3 4", "got 4 numbers"),
    ("lowpass butter 4000 3000", "CUTOFF_MAX 3000 must not be below CUTOFF 4000"),
    ("lowpass butter 0", "CUTOFF 0 must be above 0 Hz"),
    ("lowpass soxr 4000 4000 8", "ORDER is not an argument of 'lowpass soxr'"),
    ("lowpass random 1000 2000 8", "ORDER is not an argument of 'lowpass random'"),
    ("lowpass fir 4000 4000 33", "ORDER 33 must be an even integer from 2 to 1024"),
    ("lowpass cheby1 4000 4000 2.5", "ORDER 2.5 must be an integer from 1 to 20"),
    ("lowpass random 300 4000", "CUTOFF 300 must be at least 500 Hz for random"),
    ("lowpass butter 4000 nan", "'nan' is not a finite number"),
    ("sample 4000 16000,lowpass butter 9000", "CUTOFF_MAX 9000 Hz must be below the Nyquist frequency 8000 Hz"),
    ("sample 4000 16000,lowpass fir 50", "a 65-tap fir cannot cut off at 50 Hz at 16000 Hz"),
    ("telephone 3", "'telephone' takes no arguments"),
    ("sample 4000 6000,telephone", "needs a rate of at least 8000 Hz"),
    ("codec aac 0.5", "unknown codec 'aac': use one of mp3, vorbis, opus, random"),
    ("codec 0.5", "'codec' needs a FORMAT first"),
    ("codec mp3 1.5", "QUALITY 1.5 must be in [0, 1]"),
    ("noise violet 10", "unknown noise colour 'violet'"),
    ("noise pink 10 20 pulsing", "unknown noise envelope 'pulsing': use one of steady, modulated, random"),
    ("noise pink", "expected noise COLOUR SNR [SNR_MAX] [ENVELOPE], got 0 numbers"),
    ("noise pink 10 5", "SNR_MAX 5 must not be below SNR 10"),
    ("mix 5", "expected mix FOLDER SNR [SNR_MAX]"),
    ("mix \"unclosed 5", "No closing quotation"),
    ("room 3", "RT60 3 must be in [0.1, 2]"),
    ("room cave 0.5", "unknown room kind 'cave': use one of image, synthetic, random"),
    ("maybe 1.5 telephone", "P 1.5 must be a probability in [0, 1]"),
    ("maybe 0.5", "expected maybe P STEP"),
    ("maybe x telephone", "argument 'x' is not a number"),
    ("maybe 0.5 maybe 0.5 telephone", "'maybe' cannot be nested"),
    ("maybe 0.5 sample 4000 16000", "'sample' sets the target rate and cannot be optional"),
    ("maybe 0.5 foo", "unknown step 'foo'"),
])
def test_new_step_mistakes_are_one_clear_user_error(chain, reason):
  with pytest.raises(UserError) as info:
    degrade_lib.parse_chain(chain)
  message = str(info.value)
  assert message.startswith("bad degradation step ") and f"in chain {chain!r}" in message
  assert reason in message
  assert "\n" not in message and "grammar: sample LOW HIGH" in message


def test_rate_mistakes_without_sample_step_fail_before_degrading():
  with pytest.raises(UserError, match="CUTOFF_MAX 5000 Hz must be below the Nyquist frequency 4000 Hz"):
    degrade_lib.degrade(_white(0.1, rate=8000), 8000, "noise white 10,lowpass ellip 1000 5000", 0)
  with pytest.raises(UserError, match="telephone.*needs a rate of at least 8000 Hz"):
    degrade_lib.degrade(_white(0.1, rate=6000), 6000, "telephone", 0)


# ---------------------------------------------------------------------------------------------- lowpass, telephone


def _response(chain: str, rate: int = RATE, frames: int = 16384, seed: int = 0) -> tuple[np.ndarray, int]:
  """(the chain's output for a unit impulse in the middle, float64; the impulse's index)."""
  impulse = np.zeros(frames, np.float32)
  impulse[frames // 2] = 1.0
  return degrade_lib.degrade(impulse, rate, chain, seed)[0].astype(np.float64), frames // 2


def _gain_db(h: np.ndarray, freqs, rate: int = RATE) -> np.ndarray:
  """|DTFT| of h at `freqs` in dB (a shift of h does not change it)."""
  return 20 * np.log10(np.abs(scipy.signal.freqz(h, worN=np.atleast_1d(np.asarray(freqs, float)), fs=rate)[1]))


def _prewarped(freqs, rate: int = RATE) -> np.ndarray:
  """The bilinear transform's analog frequency for each digital frequency: what analog prototypes are written in."""
  return np.tan(np.pi * np.asarray(freqs, float) / rate)


def _chebyshev(n: int, x: np.ndarray) -> np.ndarray:
  """T_n(x) for x >= 0: cos(n acos x) up to 1, cosh(n acosh x) above."""
  x = np.asarray(x, float)
  return np.where(x <= 1, np.cos(n * np.arccos(np.clip(x, 0, 1))), np.cosh(n * np.arccosh(np.maximum(x, 1))))


@pytest.mark.parametrize("kind", ["butter", "cheby1", "cheby2"])
@pytest.mark.parametrize("cutoff, order", [(1500, 8), (3210.5, 5)])
def test_iir_lowpass_matches_analog_prototype_with_half_power_at_cutoff(kind, cutoff, order):
  h, centre = _response(f"lowpass {kind} {cutoff} {cutoff} {order}")
  np.testing.assert_array_equal(h[:centre], 0)  # causal, like a device: nothing before the impulse
  freqs = np.linspace(20, 7900, 400)
  w, wc = _prewarped(freqs), _prewarped(cutoff)
  # Textbook magnitude responses (Oppenheim & Schafer), the prototype's edge placed by hand so that
  # |H(cutoff)|^2 = 1/2: Butterworth's edge is the cut-off; Chebyshev I's passband edge (1 dB ripple, eps^2 =
  # 10^0.1 - 1) lies at wc / cosh(acosh(1/eps)/N); Chebyshev II's stop-band edge (60 dB) at wc * cosh(...).
  if kind == "butter":
    power = 1 / (1 + (w / wc) ** (2 * order))
  elif kind == "cheby1":
    eps2 = 10 ** (1.0 / 10) - 1
    edge = wc / np.cosh(np.arccosh(1 / np.sqrt(eps2)) / order)
    power = 1 / (1 + eps2 * _chebyshev(order, w / edge) ** 2)
  else:
    eps2 = 1 / (10 ** (60.0 / 10) - 1)
    edge = wc * np.cosh(np.arccosh(1 / np.sqrt(eps2)) / order)
    t2 = eps2 * _chebyshev(order, edge / w) ** 2
    power = t2 / (1 + t2)
  expected_db = 10 * np.log10(power)
  measured_db = _gain_db(h, freqs)
  loud = expected_db > -100  # deep stop-band nulls are limited by float32 output
  np.testing.assert_allclose(measured_db[loud], expected_db[loud], atol=0.02)
  assert _gain_db(h, cutoff)[0] == pytest.approx(-3.0103, abs=0.005)


def test_ellip_lowpass_ripple_cutoff_and_stop_band():
  cutoff = 2500.0
  h, centre = _response(f"lowpass ellip {cutoff}")
  np.testing.assert_array_equal(h[:centre], 0)
  assert _gain_db(h, cutoff)[0] == pytest.approx(-3.0103, abs=0.005)
  passband = _gain_db(h, np.linspace(0, 0.97 * cutoff, 300))
  assert passband.max() < 0.001 and passband.min() > -1.001  # 1 dB equiripple
  assert _gain_db(h, np.linspace(1.15 * cutoff, 8000, 300)).max() < -59.9  # 60 dB stop band from 1.15 x cut-off


def test_fir_lowpass_is_zero_phase_with_half_power_at_cutoff():
  h, centre = _response("lowpass fir 2000 2000 48")
  support = np.flatnonzero(np.abs(h) > 1e-9)
  assert (support.min(), support.max()) == (centre - 24, centre + 24)  # 49 taps, centred: the delay is removed
  np.testing.assert_allclose(h[centre - 24:centre], h[centre + 24:centre:-1], atol=1e-7)  # symmetric
  assert _gain_db(h, 2000)[0] == pytest.approx(-3.0103, abs=0.01)
  assert np.sum(h) == pytest.approx(1.0, abs=1e-5)  # unit DC gain
  # A Hamming window's first sidelobe is about -53 dB; its transition band is about 3.3 fs / taps (1080 Hz).
  assert _gain_db(h, np.linspace(3300, 8000, 200)).max() < -50


def test_soxr_lowpass_is_flat_then_nothing():
  h, _ = _response("lowpass soxr 3000")
  assert np.abs(_gain_db(h, np.linspace(0, 0.9 * 3000, 100))).max() < 0.01
  assert _gain_db(h, np.linspace(3000, 8000, 100)).max() < -100


def _classify(h: np.ndarray, centre: int, cutoff: float) -> str:
  """Which lowpass made `h`, from what each does: FIRs are short and symmetric, soxr long and non-causal; of the
  causal IIRs, cheby1/ellip have a -1 dB DC gain (even order), cheby2/ellip a stop band that rises back to -60."""
  before = np.abs(h[:centre]).max()
  if before > 1e-9:
    return "fir" if np.abs(h[:centre - 40]).max() < 1e-9 else "soxr"
  dc = _gain_db(h, 0)[0]
  floor = _gain_db(h, np.linspace(3 * cutoff, 7500, 200)).max()
  ripple, stop = dc < -0.5, floor > -70
  return {(False, False): "butter", (True, False): "cheby1", (False, True): "cheby2", (True, True): "ellip"}[
      (ripple, stop)]


def test_random_lowpass_draws_every_kind_and_log_uniform_cutoffs():
  counts = {}
  for seed in range(48):
    h, centre = _response("lowpass random 1000", frames=4096, seed=seed)
    kind = _classify(h, centre, 1000)
    counts[kind] = counts.get(kind, 0) + 1
  assert set(counts) == set(degrade_lib.FILTERS)
  assert max(counts.values()) <= 18  # 8 expected each
  # The cut-off is log-uniform in [CUTOFF, CUTOFF_MAX]: measured back where the gain crosses half power.
  freqs = np.linspace(500, 6000, 5501)
  cutoffs = []
  for seed in range(40):
    h, _ = _response("lowpass butter 1000 4000", frames=4096, seed=seed)
    cutoffs.append(freqs[np.argmin(np.abs(_gain_db(h, freqs) + 3.0103))])
  assert 1000 <= min(cutoffs) and max(cutoffs) <= 4000
  assert scipy.stats.kstest(np.log(cutoffs), scipy.stats.uniform(np.log(1000), np.log(4)).cdf).pvalue > 0.01


def test_telephone_band_and_8k_channel():
  h, _ = _response("telephone")
  assert _gain_db(h, [300, 3400]) == pytest.approx([-3.0103, -3.0103], abs=0.05)
  assert np.abs(_gain_db(h, np.linspace(700, 2000, 50))).max() < 0.1
  assert _gain_db(h, 100)[0] < -30  # 4th-order high-pass edge: about -38 dB an octave and a half below
  assert _gain_db(h, np.linspace(4000, 8000, 100)).max() < -100  # nothing above the 8 kHz channel's Nyquist
  inp = degrade_lib.degrade(_white(0.5), RATE, "telephone", 0, upsample="linear")[0]
  assert _band_rms(inp, RATE, 4500, 8000) > 1e-3 * _rms(inp)  # linear's images: upsample is used


# ---------------------------------------------------------------------------------------------- codec


def _music(rate: int, seconds: float = 1.0) -> np.ndarray:
  """Harmonic tones with a tremolo and a little noise: what lossy codecs are tuned for."""
  t = np.arange(int(rate * seconds)) / rate
  phases = np.random.default_rng(0).uniform(0, 2 * np.pi, 30)
  x = sum(0.1 / k * np.sin(2 * np.pi * 220 * k * t + phases[k]) for k in range(1, 30) if 220 * k < rate / 2)
  x = x * (1 + 0.5 * np.sin(2 * np.pi * 2 * t)) + 0.003 * np.random.default_rng(1).standard_normal(len(t))
  return x.astype(np.float32)


@pytest.mark.parametrize("codec", degrade_lib.CODECS)
@pytest.mark.parametrize("rate", [16000, 22050])  # opus has no 22050 Hz: it goes through 24 kHz
def test_codec_is_lossy_aligned_and_better_at_higher_quality(codec, rate):
  clean = _music(rate)
  snr = {}
  for quality in (0.0, 0.5, 1.0):
    out = degrade_lib.degrade(clean, rate, f"codec {codec} {quality}", 0)[0]
    assert out.shape == clean.shape and out.dtype == np.float32
    error = out.astype(np.float64) - clean
    snr[quality] = 10 * np.log10(np.sum(clean.astype(np.float64) ** 2) / np.sum(error**2))
    if quality >= 0.5:  # the codec's delay is removed (libsndfile decodes gaplessly)
      cross = scipy.signal.correlate(out.astype(np.float64), clean.astype(np.float64))
      assert np.argmax(cross) - (len(clean) - 1) == 0
  assert 3 < snr[0.0] < snr[1.0] < 60  # lossy, but the music is still there
  assert snr[1.0] - snr[0.0] > 5


def test_codec_random_quality_range_is_seeded():
  clean = _music(RATE, 0.5)
  a = degrade_lib.degrade(clean, RATE, "codec random 0 1", 3)[0]
  assert a.tobytes() == degrade_lib.degrade(clean, RATE, "codec random 0 1", 3)[0].tobytes()
  outputs = {degrade_lib.degrade(clean, RATE, "codec random 0 1", seed)[0].tobytes() for seed in range(6)}
  assert len(outputs) == 6


# ---------------------------------------------------------------------------------------------- noise at an SNR


def _speech_like(seconds: float = 2.0, rate: int = RATE) -> np.ndarray:
  """Bursts of shaped noise, every third quarter second silent: its active level is above its overall level."""
  rng = np.random.default_rng(4)
  x = scipy.signal.lfilter([1.0], [1.0, -0.9], rng.standard_normal(int(seconds * rate))) * 0.05
  gate = (np.arange(len(x)) // int(0.25 * rate)) % 3 != 2
  return (x * gate).astype(np.float32)


def _active_power(x: np.ndarray, rate: int = RATE) -> float:
  """Reference: the mean power of the 20 ms frames within 40 dB of the loudest, in float64."""
  frame = rate // 50
  powers = np.array([np.mean(np.asarray(x[i:i + frame], np.float64) ** 2)
                     for i in range(0, len(x) - frame + 1, frame)])
  return float(np.mean(powers[10 * np.log10(powers / powers.max() + 1e-300) >= -40]))


@pytest.mark.parametrize("colour", ["white", "pink", "brown", "hum"])
@pytest.mark.parametrize("envelope", ["steady", "modulated"])
def test_noise_snr_is_measured_back(colour, envelope):
  clean = _speech_like()
  out = degrade_lib.degrade(clean, RATE, f"noise {colour} 7.5 7.5 {envelope}", 5)[0]
  added = out.astype(np.float64) - clean
  assert 10 * np.log10(_active_power(clean) / _active_power(added)) == pytest.approx(7.5, abs=0.1)
  if envelope == "steady":  # 6 of the 8 quarter seconds are active: the whole file's SNR is 1.25 dB lower
    overall = 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(added**2))
    assert overall == pytest.approx(7.5 + 10 * np.log10(6 / 8), abs=0.3)


def test_noise_snr_range_is_uniform_and_silence_gets_no_noise():
  clean = _speech_like(0.5)
  snrs = []
  for seed in range(40):
    added = degrade_lib.degrade(clean, RATE, "noise random 0 30 random", seed)[0].astype(np.float64) - clean
    snrs.append(10 * np.log10(_active_power(clean) / _active_power(added)))
  assert 0 - 0.1 <= min(snrs) and max(snrs) <= 30 + 0.1
  assert scipy.stats.kstest(snrs, scipy.stats.uniform(0, 30).cdf).pvalue > 0.01
  silent = np.zeros(RATE, np.float32)
  np.testing.assert_array_equal(degrade_lib.degrade(silent, RATE, "noise pink -10", 0)[0], silent)


def test_noise_colours_have_their_slopes():
  clean = np.zeros(2 * RATE, np.float32)
  clean[::400] = 0.5  # a click train: an input that is not silent but adds almost nothing below the noise
  for colour, slope_db in (("white", 0), ("pink", -3), ("brown", -6)):
    out = degrade_lib.degrade(clean, RATE, f"noise {colour} -30", 1)[0] - clean
    freqs, psd = scipy.signal.welch(out, RATE, nperseg=4096)
    band = (freqs >= 100) & (freqs <= 6000)
    assert np.polyfit(np.log2(freqs[band]), 10 * np.log10(psd[band]), 1)[0] == pytest.approx(slope_db, abs=1.0)


def test_hum_is_mains_and_decaying_harmonics():
  clean = _speech_like(1.0)
  fundamentals = set()
  for seed in range(12):
    added = degrade_lib.degrade(clean, RATE, "noise hum 0", seed)[0].astype(np.float64) - clean
    spectrum = np.abs(np.fft.rfft(added)) / len(added) * 2  # 1 Hz bins over one second: harmonics sit on bins
    fundamental = int(np.argmax(spectrum[:100]))
    assert fundamental in (50, 60)
    fundamentals.add(fundamental)
    harmonics = spectrum[fundamental * np.arange(1, 9)]
    assert np.sum(harmonics**2) / 2 == pytest.approx(np.mean(added**2), rel=1e-3)  # all its power is there
    ratios = harmonics[1:] / harmonics[:-1]
    assert np.all((ratios > 0.3 - 1e-3) & (ratios < 0.9 + 1e-3))  # each harmonic 0.3-0.9 x the one below
  assert fundamentals == {50, 60}


def test_modulated_noise_has_a_slow_envelope_and_steady_noise_none():
  clean = _speech_like(4.0)
  levels = {}
  for envelope in ("steady", "modulated"):
    added = degrade_lib.degrade(clean, RATE, f"noise white 0 0 {envelope}", 2)[0].astype(np.float64) - clean
    frames = added[: len(added) // 320 * 320].reshape(-1, 320)
    levels[envelope] = 10 * np.log10(np.mean(frames**2, axis=1))
  assert np.std(levels["steady"]) < 0.5  # a 320-sample power estimate of white noise varies by 0.35 dB
  assert np.std(levels["modulated"]) > 2.0
  # Slow: neighbouring 20 ms frames have nearly the same level (the envelope's knots are >= 0.1 s apart).
  assert np.corrcoef(levels["modulated"][:-1], levels["modulated"][1:])[0, 1] > 0.8


# ---------------------------------------------------------------------------------------------- mix


def _noise_folder(tmp_path) -> tuple[str, np.ndarray, np.ndarray]:
  """A folder with a long 44.1 kHz stereo chirp and (in a subfolder) a short 8 kHz noise file."""
  folder = tmp_path / "noises"
  (folder / "sub").mkdir(parents=True)
  t = np.arange(3 * 44100) / 44100
  chirp = 0.3 * scipy.signal.chirp(t, 100, t[-1], 3000)
  sf.write(folder / "chirp.wav", np.stack([chirp, chirp], axis=1), 44100, subtype="FLOAT")
  short = 0.2 * np.random.default_rng(0).standard_normal(2000)  # 0.25 s
  sf.write(folder / "sub" / "short.flac", short, 8000)
  (folder / "notes.txt").write_text("not audio")
  return str(folder), chirp, short


def test_mix_adds_a_seeded_excerpt_at_the_snr(tmp_path):
  folder, chirp, short = _noise_folder(tmp_path)
  clean = _speech_like(1.0)
  chirp16 = scipy.signal.resample_poly(chirp, 160, 441)  # an independent resampler (polyphase, not soxr)
  picked = set()
  for seed in range(8):
    out = degrade_lib.degrade(clean, RATE, f"mix {folder} 3 3", seed)[0]
    added = out.astype(np.float64) - clean
    assert 10 * np.log10(_active_power(clean) / _active_power(added)) == pytest.approx(3, abs=0.1)
    period = 2000 * 2  # the 0.25 s file at 16 kHz
    if np.allclose(added[1000:-period - 1000], added[1000 + period:-1000], atol=1e-4 * np.abs(added).max()):
      picked.add("short")  # looped: the input is longer than the file
      continue
    # Otherwise an excerpt of the chirp from some 44.1 kHz frame on, scaled: find that frame and compare.
    coarse = int(np.argmax(scipy.signal.correlate(chirp16, added, mode="valid"))) * 441 // 160
    errors = []
    for start in range(max(0, coarse - 4), coarse + 5):
      reference = scipy.signal.resample_poly(chirp[start:start + 44100 + 441], 160, 441)[:len(added)]
      scale = (reference @ added) / (reference @ reference)
      inner = slice(200, -200)  # away from the resamplers' edges
      errors.append(np.abs(added[inner] - scale * reference[inner]).max())
    assert min(errors) < 0.01 * np.abs(added).max()
    picked.add("chirp")
  assert picked == {"chirp", "short"}
  again = degrade_lib.degrade(clean, RATE, f"mix {folder} 0 20", 4)[0]
  assert again.tobytes() == degrade_lib.degrade(clean, RATE, f"mix {folder} 0 20", 4)[0].tobytes()


def test_mix_lists_the_folder_once_and_reports_bad_folders(tmp_path, monkeypatch):
  from sr_jax.data import datasets

  folder, _, _ = _noise_folder(tmp_path)
  calls = []
  real = datasets.audio_files
  monkeypatch.setattr(datasets, "audio_files", lambda f: calls.append(f) or real(f))
  degrade_lib._folder_files.cache_clear()
  for seed in range(3):
    degrade_lib.degrade(_white(0.1), RATE, f"mix {folder} 10", seed)
  assert calls == [folder]
  for bad, reason in ((tmp_path / "missing", "does not exist"), (tmp_path / "empty", "has no audio files")):
    if "empty" in str(bad):
      bad.mkdir()
    with pytest.raises(UserError) as info:
      degrade_lib.degrade(_white(0.1), RATE, f"mix {bad} 10", 0)
    assert f"mix folder {bad} {reason}" in str(info.value) and "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------------- maybe, seeding


def test_maybe_applies_with_its_probability_and_independent_coins():
  clean = _white(0.02)
  first, both = [], []
  for seed in range(400):
    a = not np.array_equal(degrade_lib.degrade(clean, RATE, "maybe 0.3 noise white 20", seed)[0], clean)
    b = degrade_lib.step_applies(degrade_lib.parse_chain("telephone,maybe 0.6 telephone")[1], seed, 1)
    first.append(a)
    both.append(a and b)
  # Binomial(400, 0.3): 120 +- 9.2; the two steps' coins are independent: P(both) = 0.18 (72 +- 7.7).
  assert abs(sum(first) - 120) < 4 * 9.2
  assert abs(sum(both) - 72) < 4 * 7.7


def test_maybe_never_shifts_the_randomness_of_steps():
  clean = _speech_like(0.5)
  step = "noise pink 5 25 modulated"
  plain = degrade_lib.degrade(clean, RATE, step, 9)[0]
  assert degrade_lib.degrade(clean, RATE, f"maybe 1 {step}", 9)[0].tobytes() == plain.tobytes()
  np.testing.assert_array_equal(degrade_lib.degrade(clean, RATE, f"maybe 0 {step}", 9)[0], clean)
  # A skipped (or added) later step leaves the earlier steps' draws alone.
  assert degrade_lib.degrade(clean, RATE, f"{step},maybe 0 codec mp3 0.5", 9)[0].tobytes() == plain.tobytes()


def test_full_new_chain_is_deterministic_and_seed_dependent():
  clean = _speech_like(0.5, rate=22050)
  chain = ("sample 8000 16000,room synthetic 0.2 0.6,maybe 0.5 noise random 5 30 random,"
           "lowpass random 1000 3500,maybe 0.7 codec random 0.2 0.9,telephone")
  a = degrade_lib.degrade(clean, 22050, chain, 11)
  b = degrade_lib.degrade(clean, 22050, chain, 11)
  c = degrade_lib.degrade(clean, 22050, chain, 12)
  assert a[2] == 16000 and len(a[0]) == len(a[1])
  assert a[0].tobytes() == b[0].tobytes() and a[1].tobytes() == c[1].tobytes()
  assert a[0].tobytes() != c[0].tobytes()


# ----- target_phase: the target turned by the passband phase of the chain's IIR filters -------------------------


def _tone(freq: float, seconds: float = 2.0, rate: int = 16000) -> np.ndarray:
  return (0.5 * np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


@pytest.mark.parametrize("chain,sos", [
    ("lowpass butter 4000", lambda: scipy.signal.butter(8, 4000, fs=16000, output="sos")),
    ("telephone", lambda: scipy.signal.butter(4, (300, 3400), "bandpass", fs=16000, output="sos")),
    ("lowpass butter 4000,lowpass butter 3000 3000 4",
     lambda: np.concatenate([scipy.signal.butter(8, 4000, fs=16000, output="sos"),
                             scipy.signal.butter(4, 3000, fs=16000, output="sos")])),
])
def test_target_phase_turns_a_tone_as_the_filter_turned_the_input(chain, sos):
  """A steady 1.5 kHz tone: after its transient the causal filter's output is |H| sin(w t + phi), phi = arg H(f0)
  (scipy's time-domain sosfilt); the turned target is sin(w t + phi) itself, the input over |H|, while the clean
  target is far from it."""
  clean = _tone(1500.0)
  x, turned, _ = degrade_lib.degrade(clean, 16000, chain, seed=0, target_phase=True)
  _, h = scipy.signal.sosfreqz(sos(), worN=[1500.0], fs=16000)
  assert abs(np.angle(h[0])) > 0.5  # a turn that matters (radians)
  inner = slice(8000, 24000)
  np.testing.assert_allclose(x[inner] / np.abs(h[0]), turned[inner], atol=3e-3)
  assert np.max(np.abs(clean[inner] - turned[inner])) > 0.2
  x_plain, target, _ = degrade_lib.degrade(clean, 16000, chain, seed=0)
  np.testing.assert_array_equal(x_plain, x)  # the input does not depend on it
  np.testing.assert_array_equal(target, clean)


def test_target_phase_keeps_the_magnitudes_and_leaves_linear_phase_chains_alone():
  clean = _white(2.0)
  for chain in ("sample 8000 16000", "lowpass soxr 3000", "lowpass fir 3000", "noise white 10", "room random 0.5",
                "maybe 0.0 lowpass butter 3000"):
    x0, t0, _ = degrade_lib.degrade(clean, RATE, chain, seed=3)
    x1, t1, _ = degrade_lib.degrade(clean, RATE, chain, seed=3, target_phase=True)
    np.testing.assert_array_equal(x1, x0)
    np.testing.assert_array_equal(t1, t0)
  x, turned, _ = degrade_lib.degrade(clean, RATE, "lowpass ellip 2000", seed=3, target_phase=True)
  inner = slice(RATE // 2, -RATE // 2)  # away from the ends, where the turn spreads into the zero padding
  spec = lambda s: np.abs(scipy.signal.stft(s[inner], RATE, nperseg=1024)[2])  # noqa: E731
  assert np.median(np.abs(spec(turned) / (spec(clean) + 1e-9) - 1)) < 0.05  # the same magnitudes
  assert _rms(turned - clean) > 0.3 * _rms(clean)  # another phase


def test_target_phase_draws_the_random_filter_the_input_got():
  """lowpass random: the filter behind the turn is the one the step's stream drew, whatever the kind; the
  turned target lines up with the input in the passband (the best real gain Re(T conj X) / |X|^2 near 1) where
  the clean target does not."""
  clean = _white(3.0)
  iir = 0
  for seed in range(6):
    x, turned, _ = degrade_lib.degrade(clean, RATE, "lowpass random 3000 3000", seed=seed, target_phase=True)
    _, _, xs = scipy.signal.stft(x, RATE, nperseg=512)
    f, _, ts = scipy.signal.stft(turned, RATE, nperseg=512)
    _, _, cs = scipy.signal.stft(clean, RATE, nperseg=512)
    band = (f > 500) & (f < 2500)
    best = lambda t: np.sum(np.real(t[band] * np.conj(xs[band]))) / np.sum(np.abs(xs[band]) ** 2)  # noqa: B023,E731
    assert best(ts) > 0.97, seed
    if best(cs) < 0.9:  # an IIR kind: the clean target is out of phase there
      assert best(ts) - best(cs) > 0.2
      iir += 1
  assert iir >= 2  # the seeds drew IIR kinds, so the comparison above ran
