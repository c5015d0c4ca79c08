"""How wide is a recording, and is it wider than the band a model was trained to extend?

A band-extension model (chain "sample LOW HIGH", sr_jax/data/degrade.py) learns to fill HIGH's band from audio
band-limited to LOW / 2 Hz; audio that already has content well above LOW / 2 is not what it was trained on, and it
can make it worse (the r = 4 model on an 8 kHz recording: SNR 35.7 -> 23.1 dB). `measure` estimates the band the
audio really occupies (its sample rate only bounds it: a 44.1 kHz file may hold a 4 kHz recording), `warning`
compares it with the model's band and names the shipped model that fits, if one does.

Measurement (`measure`, pure): the long-term average spectrum (`long_term_spectrum`: Welch, Hann windows of
RESOLUTION_HZ resolution or finer, half overlapped, the channels' powers summed). The bandwidth is the highest
frequency whose level is within DROP_DB of the spectrum's peak bin (a tone stands higher above broadband content the
finer the bins) and at least FLOOR_MARGIN_DB above the level of 16-bit quantisation noise (white, 2^-30 / 12 of power
per channel spread over 0 .. rate / 2), so that the quantisation noise of a quiet 16-bit recording, which fills its
whole band, does not count as content. Digital silence is 0 Hz wide. Only the first HEAD_SECONDS of a file are read
(`head`): cheap on any length.
"""

from __future__ import annotations

import functools

import numpy as np
import soundfile as sf

from sr_jax.data import audio as audio_lib
from sr_jax.errors import UserError

RESOLUTION_HZ = 20.0  # the spectrum's bin width is at most this (the next power-of-two segment)
DROP_DB = 60.0  # content: within this of the spectrum's peak ...
FLOOR_MARGIN_DB = 10.0  # ... and this far above 16-bit quantisation noise
HEAD_SECONDS = 30.0  # seconds of a file measured
WIDER = 1.25  # a measured band more than this many times the model's band is "clearly wider"


def measure(audio: np.ndarray, rate: int) -> float:
  """The bandwidth in Hz of audio (frames,) or (frames, channels) at `rate`: see the module docstring."""
  x = np.asarray(audio, np.float32).reshape(len(audio), -1)
  if len(x) < 2 or not x.any():
    return 0.0
  freqs, power = long_term_spectrum(x, rate)
  level = 10 * np.log10(power + 1e-300)
  floor = 10 * np.log10(x.shape[1] * 2.0 ** -30 / 12 / (rate / 2))  # 16-bit quantisation noise, per Hz
  content = np.nonzero(level >= max(level.max() - DROP_DB, floor + FLOOR_MARGIN_DB))[0]
  return float(freqs[content[-1]]) if len(content) else 0.0


def long_term_spectrum(x: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
  """(frequencies, power spectral density summed over channels, one-sided, per Hz) of x (frames, channels): Welch's
  method with periodic Hann windows of the next power of two to rate / RESOLUTION_HZ samples (at most the frames),
  hop half a window, each segment's mean removed; segments are taken a few at a time, so memory stays small."""
  n = min(1 << int(np.ceil(np.log2(rate / RESOLUTION_HZ))), 1 << int(np.log2(len(x))))
  window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)
  segments = np.lib.stride_tricks.sliding_window_view(x, n, axis=0)[::n // 2]  # (count, channels, n), a view
  power = np.zeros(n // 2 + 1)
  for i in range(0, len(segments), 64):
    seg = segments[i:i + 64].astype(np.float64)
    seg -= seg.mean(axis=-1, keepdims=True)
    power += (np.abs(np.fft.rfft(seg * window, axis=-1)) ** 2).sum(axis=(0, 1))
  power /= len(segments) * rate * (window ** 2).sum()
  power[1:(n + 1) // 2] *= 2  # one-sided: the negative frequencies' power (not at 0 Hz and Nyquist)
  return np.arange(n // 2 + 1) * rate / n, power


def head(path: str, seconds: float = HEAD_SECONDS) -> tuple[np.ndarray, int]:
  """The first `seconds` of an audio file: (float32 (frames, channels), rate). UserErrors as sr_jax.enhance's."""
  try:
    f = sf.SoundFile(path)
  except Exception as e:
    raise UserError(f"cannot read {path} as audio ({audio_lib._reason(e)})") from None
  with f:
    try:
      return f.read(int(seconds * f.samplerate), dtype="float32", always_2d=True), f.samplerate
    except Exception as e:
      raise UserError(f"cannot read {path}: decoding failed in its first {seconds:g} s ({audio_lib._reason(e)})"
                      ) from None


def trained_band(config) -> float:
  """The input band in Hz a model of `config` was trained on: LOW / 2 of its chain's sample step ("sample 4000
  16000": 2000 Hz), else (no band limiting in the chain) the Nyquist frequency of config.data.rate."""
  from sr_jax.data import degrade  # noqa: PLC0415  (scipy)

  low, _ = degrade.chain_rates(config.data.chain)
  return (low if low is not None else int(config.data.rate)) / 2


@functools.lru_cache(maxsize=1)
def shipped_bands() -> dict[str, tuple[float, int]]:
  """{shipped model name: (its trained input band in Hz, its rate)}, from each model's saved config."""
  from sr_jax import resources  # noqa: PLC0415
  from sr_jax.train.checkpoint import restore_config  # noqa: PLC0415  (jax: only once a model is wanted)

  bands = {}
  for name in resources.model_names():
    config = restore_config(resources.model_path(name))
    bands[name] = (trained_band(config), int(config.data.rate))
  return bands


def fitting_model(band: float, bands: dict[str, tuple[float, int]] | None = None) -> str | None:
  """The shipped model (of `bands`, default `shipped_bands()`) trained on the narrowest band that `band` Hz is not
  clearly wider than (band <= WIDER * its band, counting only what fits below its Nyquist frequency) and that it
  has something to add to (its trained band below its Nyquist frequency); None when none is."""
  bands = shipped_bands() if bands is None else bands
  fits = [(trained, name) for name, (trained, rate) in bands.items()
          if trained < rate / 2 and min(band, rate / 2) <= WIDER * trained]
  return min(fits)[1] if fits else None


def warning(band: float, trained: float, rate: int, chain: str, what: str,
            bands: dict[str, tuple[float, int]] | None = None) -> str | None:
  """One line (without its `warning: ` prefix) when `what`, measured `band` Hz wide, is clearly wider than the
  `trained` Hz band a model at `rate` (chain `chain`) was trained to extend; None when it is not. Only the band
  below the model's Nyquist frequency is compared: the model sees no more."""
  seen = min(band, rate / 2)
  if seen <= WIDER * trained:
    return None
  bands = shipped_bands() if bands is None else bands
  name = fitting_model(band, bands)
  hint = (f"the shipped model {name} (trained on a {bands[name][0] / 1000:g} kHz band) fits it" if name else
          "no shipped model is trained on input that wide")
  return (f"{what} has content up to {band / 1000:.1f} kHz, wider than the {trained / 1000:g} kHz band this model was "
          f"trained to extend (chain {chain!r}): enhancing may make it worse; {hint}")

