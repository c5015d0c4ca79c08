"""Synthetic room reverberation in numpy/scipy, driven by sox's `reverb` arguments.

The wet part is a synthetic room impulse response (IR) built from noise, convolved with the dry signal
(`scipy.signal.oaconvolve`) and added to it: output = dry + wet, same length as the input (tail truncated).
How each argument shapes the IR (r, d, s, w = REVERBERANCE, HF_DAMPING, ROOM_SCALE, STEREO_DEPTH in [0, 1]):

- RT60 (time for the reverb to decay by 60 dB, at low frequencies) = (0.05 + 2 r) * (0.25 + 0.75 s) seconds,
  see `rt60`: 1.05 s at sox's defaults (50 % reverberance, 100 % room scale), 2.05 s at most.
- HF damping: the IR is split into octave bands (a partition of unity in log-frequency); the band centred at
  f decays with RT60 / (1 + 2 d log2(f / 1 kHz)) above 1 kHz, so at d = 1 the 4 kHz band dies 5x faster.
- Room scale: besides RT60, it sets the delay of the first reflection (1 + 9 s ms after the direct sound) and
  the echo density, which grows as (t / t_mix)^2 (the image-source law) until the mixing time
  t_mix = 5 + 75 s ms; before that the IR is sparse (single reflections), after it dense noise.
- Stereo depth: sox makes two decorrelated channels; here the left/right IRs (equal energy, correlation
  exactly 1 - w) are mixed to mono, so a deeper stereo image gives a weaker mono wet part (energy x (2 - w) / 2,
  down to -3 dB at w = 1) with different fine structure.
- Pre-delay (ms) delays the whole wet part; wet gain (dB) scales it.
- Level: at wet gain 0 dB and stereo depth 0, the wet IR's energy (sum of squares) is RT60 / 1 s, i.e. a
  direct-to-reverberant ratio of -10 log10(RT60 / 1 s) dB (0 dB at RT60 = 1 s).

The IR's noise is drawn from the caller's `numpy.random.Generator`; pre-delay and wet gain do not change the
draws, so changing only them shifts or scales the wet part exactly.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.fft
import scipy.signal

# sox's ranges for the reverb arguments (sox refuses values outside them).
RANGES = {
    "reverberance": (0.0, 100.0),
    "hf_damping": (0.0, 100.0),
    "room_scale": (0.0, 100.0),
    "stereo_depth": (0.0, 100.0),
    "pre_delay": (0.0, 500.0),
    "wet_gain": (-10.0, 10.0),
}

_FIRST_BAND_HZ = 125.0  # centre of the lowest octave band; bands go up by octaves to Nyquist


@dataclasses.dataclass(frozen=True)
class ReverbParams:
  """sox `reverb` arguments: percentages, except pre_delay (ms) and wet_gain (dB). Defaults are sox's."""
  reverberance: float = 50.0
  hf_damping: float = 50.0
  room_scale: float = 100.0
  stereo_depth: float = 100.0
  pre_delay: float = 0.0
  wet_gain: float = 0.0

  def check(self) -> "ReverbParams":
    """Raises ValueError naming the first argument outside sox's range; returns self."""
    for field, (low, high) in RANGES.items():
      value = getattr(self, field)
      if not low <= value <= high:
        raise ValueError(f"{field} {value:g} is outside [{low:g}, {high:g}]")
    return self


def rt60(reverberance: float, room_scale: float) -> float:
  """Nominal low-frequency RT60 in seconds for reverberance and room scale in percent."""
  return (0.05 + 2.0 * reverberance / 100.0) * (0.25 + 0.75 * room_scale / 100.0)


def reverberance_for(rt60_s: float, room_scale: float) -> float:
  """The reverberance (percent) that gives `rt60_s` seconds at `room_scale` percent: the inverse of `rt60`, clipped
  to [0, 100] (see `room_scale_range` for the room scales where no clipping is needed)."""
  return float(np.clip((rt60_s / (0.25 + 0.75 * room_scale / 100.0) - 0.05) / 2.0 * 100.0, 0.0, 100.0))


def room_scale_range(rt60_s: float) -> tuple[float, float]:
  """(lowest, highest) room scale in percent at which some reverberance in [0, 100] gives `rt60_s` seconds.

  rt60 = (0.05 + 2 r) (0.25 + 0.75 s) lies between 0.05 (0.25 + 0.75 s) and 2.05 (0.25 + 0.75 s); RT60 outside
  [0.0125, 2.05] s is a ValueError.
  """
  if not rt60(0.0, 0.0) <= rt60_s <= rt60(100.0, 100.0):
    raise ValueError(f"RT60 {rt60_s:g} s is outside [{rt60(0.0, 0.0):g}, {rt60(100.0, 100.0):g}] s")
  low = (rt60_s / rt60(100.0, 100.0) - 0.25) / 0.75 * 100.0  # at reverberance 100 %
  high = (rt60_s / rt60(0.0, 100.0) - 0.25) / 0.75 * 100.0  # at reverberance 0 %
  return float(np.clip(low, 0.0, 100.0)), float(np.clip(high, 0.0, 100.0))


def band_rt60(rt: float, hf_damping: float, centre_hz: np.ndarray) -> np.ndarray:
  """RT60 per octave band: `rt` up to 1 kHz, shorter above it as HF damping (percent) grows."""
  octaves_above_1k = np.maximum(0.0, np.log2(np.asarray(centre_hz, dtype=np.float64) / 1000.0))
  return rt / (1.0 + 2.0 * (hf_damping / 100.0) * octaves_above_1k)


def _band_masks(n_fft: int, rate: int) -> tuple[np.ndarray, np.ndarray]:
  """(centres (bands,), masks (bands, n_fft // 2 + 1)): octave bands summing to 1 on every rfft bin (n_fft even)."""
  centres = _FIRST_BAND_HZ * 2.0 ** np.arange(int(np.floor(np.log2(rate / 2 / _FIRST_BAND_HZ))) + 1)
  freqs = np.fft.rfftfreq(n_fft, 1.0 / rate)
  pos = np.log2(np.maximum(freqs, 1e-3) / _FIRST_BAND_HZ)  # position in octaves above the first centre
  pos = np.clip(pos, 0.0, len(centres) - 1)
  masks = np.maximum(0.0, 1.0 - np.abs(pos[None, :] - np.arange(len(centres))[:, None]))
  return centres, masks


def _shape_tail(noise: np.ndarray, rate: int, band_rts: np.ndarray, masks: np.ndarray) -> np.ndarray:
  """Splits `noise` into octave bands and gives each its own exponential decay (-60 dB at its RT60)."""
  n = len(noise)
  n_fft = 2 * (masks.shape[1] - 1)
  spectrum = scipy.fft.rfft(noise, n=n_fft)
  t = np.arange(n) / rate
  tail = np.zeros(n)
  for band_rt, mask in zip(band_rts, masks):
    tail += scipy.fft.irfft(spectrum * mask, n=n_fft)[:n] * 10.0 ** (-3.0 * t / band_rt)
  return tail


def impulse_response(rate: int, rng: np.random.Generator, params: ReverbParams = ReverbParams()) -> np.ndarray:
  """The wet part of the room's mono impulse response (float64), index 0 = the direct sound's arrival."""
  params.check()
  rt = rt60(params.reverberance, params.room_scale)
  s = params.room_scale / 100.0
  n = int(np.ceil(rt * rate)) + 1
  n_fft = 2 * scipy.fft.next_fast_len((n + n // 8) // 2 + 1, real=True)  # even, with room against wrap-around
  centres, masks = _band_masks(n_fft, rate)
  band_rts = band_rt60(rt, params.hf_damping, centres)
  # Echo density grows as (t / t_mix)^2; pulses are kept with that probability and scaled by 1/sqrt(p) so the
  # expected energy envelope stays exponential. At least one reflection per ms keeps the early part bounded.
  t = np.arange(n) / rate
  t_first, t_mix = (1.0 + 9.0 * s) / 1000.0, (5.0 + 75.0 * s) / 1000.0
  p = np.clip((t / t_mix) ** 2, min(1.0, 1000.0 / rate), 1.0)
  keep = (rng.random(n) < p) & (t >= t_first)
  channels = []
  for _ in range(2):  # independent left/right noises; mixed below according to the stereo depth
    noise = np.where(keep, rng.standard_normal(n) / np.sqrt(p), 0.0)
    # The band filters are zero-phase: drop their pre-ringing before the first reflection.
    channels.append(np.where(t >= t_first, _shape_tail(noise, rate, band_rts, masks), 0.0))
  left, independent = channels
  energy = np.sum(left**2)
  # Make the second noise exactly uncorrelated with `left` and as loud, so the channels correlate by exactly `corr`.
  independent -= (independent @ left) / energy * left
  independent *= np.sqrt(energy / np.sum(independent**2))
  scale = np.sqrt(rt / 1.0 / energy)  # energy of the depth-0 wet IR = RT60 / 1 s
  corr = 1.0 - params.stereo_depth / 100.0
  right = corr * left + np.sqrt(1.0 - corr**2) * independent
  wet = scale * 10.0 ** (params.wet_gain / 20.0) * 0.5 * (left + right)
  delay = int(round(params.pre_delay / 1000.0 * rate))
  return np.concatenate([np.zeros(delay), wet])


def reverb(audio: np.ndarray, rate: int, rng: np.random.Generator, params: ReverbParams = ReverbParams()) -> np.ndarray:
  """dry + wet for mono audio (frames,), float32, same length (the reverb tail past the end is dropped)."""
  dry = np.asarray(audio, dtype=np.float64)
  ir = impulse_response(rate, rng, params)
  wet = scipy.signal.oaconvolve(dry, ir)[: len(dry)]
  return (dry + wet).astype(np.float32)
