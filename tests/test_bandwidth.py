"""sr_jax.bandwidth: the measured band of hand-made band-limited signals, and the wider-than-trained warning."""

import ml_collections
import numpy as np
import pytest
import soundfile as sf

from sr_jax import bandwidth


def band_limited(cutoff: float, rate: int = 16000, seconds: float = 10.0, seed: int = 0, slope: float = 0.0,
                 channels: int = 1, rms: float = 0.1) -> np.ndarray:
  """Gaussian noise with nothing above `cutoff` Hz (a brick wall: FFT bins above it zeroed), its power falling by
  3 * slope dB per octave above 20 Hz (0: white, 1: pink, 2: brown), float32 (frames, channels)."""
  x = np.random.default_rng(seed).standard_normal((round(seconds * rate), channels))
  spectrum = np.fft.rfft(x, axis=0)
  f = np.fft.rfftfreq(len(x), 1 / rate)
  spectrum[f > cutoff] = 0
  spectrum *= (np.maximum(f, 20) / 20)[:, None] ** (-slope / 2)
  y = np.fft.irfft(spectrum, len(x), axis=0)
  return (rms * y / y.std()).astype(np.float32)


# The spectrum's bins are at most RESOLUTION_HZ (20 Hz) apart, and a Hann window's leakage from a brick wall is
# 60 dB down within about 5 bins: the measured band is the cut-off to within 100 Hz above it (a bin below it).
@pytest.mark.parametrize("rate", [16000, 44100])
@pytest.mark.parametrize("cutoff", [1000, 2000, 3900, 6000])
@pytest.mark.parametrize("slope", [0, 1, 2])
def test_band_limited_noise(rate, cutoff, slope):
  measured = bandwidth.measure(band_limited(cutoff, rate, slope=slope), rate)
  assert cutoff - 20 <= measured <= cutoff + 100, measured


def test_full_band_silence_sine_and_channels():
  assert bandwidth.measure(band_limited(8000), 16000) == 8000.0  # white up to Nyquist: the top bin
  assert bandwidth.measure(np.zeros((5000, 2), np.float32), 16000) == 0.0  # digital silence
  t = np.arange(5 * 16000) / 16000
  assert 1000 <= bandwidth.measure(0.5 * np.sin(2 * np.pi * 1000 * t), 16000) <= 1100  # a pure 1 kHz tone
  stereo = np.concatenate([band_limited(1000), band_limited(3000, seed=1)], axis=1)
  assert 3000 - 20 <= bandwidth.measure(stereo, 16000) <= 3100  # the wider channel counts
  assert 3000 - 20 <= bandwidth.measure(stereo[:, ::-1], 16000) <= 3100


def test_quantisation_noise_is_not_content_and_hiss_is():
  """White noise band-limited to 2 kHz at -70 dBFS, stored as 16-bit PCM. Its level in band is sigma^2 / 2000 Hz =
  4.5e-11 /Hz; the quantisation noise is (2^-15)^2 / 12 over 8 kHz = 9.7e-14 /Hz, only 26.7 dB lower, so the
  whole spectrum is within DROP_DB (60 dB) of its peak: the floor 10 dB above 16-bit quantisation noise finds the
  2 kHz band (the same signal 60 dB louder too). A tone over white hiss is full-band: the tone's peak, about
  0.045 / (1.5 x 15.6 Hz) = 1.9e-3 /Hz (Hann's noise bandwidth is 1.5 bins), is 52 dB above the hiss's 1e-4 / 8 kHz
  = 1.25e-8 /Hz."""
  x = band_limited(2000, rms=3e-4)
  pcm16 = np.round(x * 32768) / 32768
  assert np.abs(pcm16 - x).max() > 0  # really quantised
  assert 2000 - 20 <= bandwidth.measure(pcm16, 16000) <= 2100
  assert 2000 - 20 <= bandwidth.measure(np.round(x * 1000 * 32768) / 32768, 16000) <= 2100
  assert bandwidth.measure(pcm16 / 1000, 16000) == 0.0  # below the floor altogether: nothing to measure
  t = np.arange(5 * 16000)[:, None] / 16000
  hiss = 0.3 * np.sin(2 * np.pi * 440 * t) + band_limited(8000, rms=0.01, seconds=5.0)
  assert bandwidth.measure(hiss, 16000) == 8000.0


def test_head_reads_the_first_seconds(tmp_path):
  fade_in = np.clip(np.arange(64000)[:, None] / 16000 - 2.5, 0, 1)  # the wide noise from 2.5 s on (no click)
  x = band_limited(1000, seconds=4.0) + fade_in * band_limited(5000, seconds=4.0, seed=1)
  path = str(tmp_path / "x.wav")
  sf.write(path, x, 16000, subtype="FLOAT")
  audio, rate = bandwidth.head(path, seconds=2.0)
  assert rate == 16000 and audio.shape == (32000, 1)
  assert 980 <= bandwidth.measure(audio, rate) <= 1100
  assert 4980 <= bandwidth.measure(bandwidth.head(path)[0], rate) <= 5100


@pytest.mark.parametrize("chain, rate, band", [("sample 4000 16000", 16000, 2000), ("sample 8000 16000", 16000, 4000),
                                               ("whitenoise 0 0.01,sample 11025 22050", 22050, 5512.5),
                                               ("", 16000, 8000), ("whitenoise 0 0.01", 24000, 12000)])
def test_trained_band(chain, rate, band):
  config = ml_collections.ConfigDict({"data": {"chain": chain, "rate": rate}})
  assert bandwidth.trained_band(config) == band


BANDS = {"r4": (2000.0, 16000), "r2": (4000.0, 16000), "denoise": (8000.0, 16000), "r2_48k": (12000.0, 48000)}


@pytest.mark.parametrize("band, name", [(1500, "r4"), (2500, "r4"), (2600, "r2"), (4900, "r2"), (5100, "r2_48k"),
                                        (7900, "r2_48k"), (15000, "r2_48k"), (16000, None)])
def test_fitting_model(band, name):
  """The narrowest trained band that `band` is at most 1.25 times (counting only what is below each model's
  Nyquist frequency); "denoise" (trained on its full band) extends nothing and is never named."""
  assert bandwidth.fitting_model(band, BANDS) == name


def test_warning_lines():
  assert bandwidth.warning(2400, 2000, 16000, "sample 4000 16000", "a.wav", BANDS) is None  # within 1.25 x
  note = bandwidth.warning(3800, 2000, 16000, "sample 4000 16000", "a.wav", BANDS)
  assert note == ("a.wav has content up to 3.8 kHz, wider than the 2 kHz band this model was trained to extend (chain "
                  "'sample 4000 16000'): enhancing may make it worse; the shipped model r2 (trained on a 4 kHz band) "
                  "fits it")
  # A 22 kHz-wide file given to a 16 kHz model: only its band below 8 kHz is compared (and fits no 16 kHz model).
  note = bandwidth.warning(22000, 4000, 16000, "sample 8000 16000", "b.flac", {k: BANDS[k] for k in ("r4", "r2")})
  assert note.startswith("b.flac has content up to 22.0 kHz, wider than the 4 kHz band") and note.endswith(
      "no shipped model is trained on input that wide")
  assert bandwidth.warning(22000, 8000, 16000, "", "c.wav", BANDS) is None  # a full-band model: never wider


def test_the_shipped_models_bands():
  """The shipped models' saved chains: piano_r4_16k extends a 2 kHz band, piano_r2_16k a 4 kHz one, so an 8 kHz
  recording (3.9 kHz wide) fits piano_r2_16k."""
  bands = bandwidth.shipped_bands()
  assert bands["piano_r4_16k"] == (2000.0, 16000) and bands["piano_r2_16k"] == (4000.0, 16000)
  assert bandwidth.fitting_model(3900) == "piano_r2_16k" and bandwidth.fitting_model(1900) == "piano_r4_16k"


def test_long_term_spectrum_is_welchs():
  """The numpy Welch estimate equals scipy.signal.welch's (Hann, half overlap, mean removed, density) summed over
  channels, and integrates to white noise's total power (Parseval)."""
  from scipy import signal

  x = band_limited(3000, seconds=3.0, channels=2, slope=1) + np.float32(0.01)
  f, power = bandwidth.long_term_spectrum(x, 16000)
  f_ref, power_ref = signal.welch(x.astype(np.float64), 16000, nperseg=1024, axis=0)
  np.testing.assert_array_equal(f, f_ref)
  np.testing.assert_allclose(power, power_ref.sum(axis=1), rtol=1e-9, atol=1e-12 * power.max())
  white = band_limited(3000, seconds=3.0, channels=2)  # (the pink noise's power below a bin is partly detrended)
  _, power = bandwidth.long_term_spectrum(white, 16000)
  np.testing.assert_allclose(power.sum() * (f[1] - f[0]), white.var(axis=0).sum(), rtol=0.02)
