"""Seeded degradation chains: the clean audio is the target, the chain degrades the input.

Grammar (the original EPFL project's `--preprocessing`), steps separated by commas and applied in order::

  sample LOW HIGH
  whitenoise|pinknoise|brownnoise|tpdfnoise VARIANCE VOLUME
  reverb VARIANCE [REVERBERANCE HF_DAMPING ROOM_SCALE STEREO_DEPTH PRE_DELAY WET_GAIN]

e.g. "sample 4000 16000,whitenoise 0 0.002,reverb 0.1 50 50 100 0 0". An empty chain is the identity.

- `sample LOW HIGH`: the target is the clean audio resampled to HIGH Hz (soxr). The input is band-limited to
  LOW (anti-aliased soxr resampling HIGH -> LOW) and brought back to HIGH by `upsample` ("soxr": band-limited,
  what enhancing a real LOW Hz file does; "cubic": cubic spline, Kuleshov et al.'s baseline; "linear": the
  original project's), with exactly the target's length. At most one sample step; LOW < HIGH. All other steps
  run at the target rate (HIGH, or the audio's own rate without a sample step).
- noise: coloured noise ADDED to the input, which is not scaled (the original's `sox -m` halved it). VOLUME is
  the RMS of the added noise over the whole file (full scale = 1.0); per file the RMS is
  max(0, VOLUME + sqrt(VARIANCE) * z), z ~ N(0, 1). Colours: white (flat), pink (-3 dB/octave power),
  brown (-6 dB/octave, flat below 20 Hz and without DC), tpdf (white with a triangular amplitude pdf: the sum
  of two uniforms).
- `reverb`: a synthetic room reverb (see `sr_jax.data.reverb`) with sox's argument meanings and defaults
  (reverberance 50 %, HF damping 50 %, room scale 100 %, stereo depth 100 %, pre-delay 0 ms, wet gain 0 dB;
  VARIANCE 0). Per file the reverberance is clip(REVERBERANCE + sqrt(VARIANCE) * z, 0, 100), z ~ N(0, 1), so
  VARIANCE is in percent squared (100 gives a spread of about +-10 %).

Randomness: step i draws from `np.random.default_rng([seed, i])`, so the same seed gives the same bytes, and a
step's noise does not depend on the other steps. `file_seed(run_seed, key)` derives a per-file seed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from typing import Sequence, Union

import numpy as np
import scipy.interpolate

from sr_jax.data import audio as audio_lib
from sr_jax.data import reverb as reverb_lib
from sr_jax.errors import UserError

GRAMMAR = ("sample LOW HIGH | whitenoise|pinknoise|brownnoise|tpdfnoise VARIANCE VOLUME | "
           "reverb VARIANCE [REVERBERANCE HF_DAMPING ROOM_SCALE STEREO_DEPTH PRE_DELAY WET_GAIN], "
           "comma-separated")
NOISES = ("whitenoise", "pinknoise", "brownnoise", "tpdfnoise")
UPSAMPLE_METHODS = ("soxr", "cubic", "linear")
# Power slope of each noise colour in dB per octave is -3 * _NOISE_EXPONENT (PSD ~ f ** -exponent).
_NOISE_EXPONENT = {"whitenoise": 0.0, "pinknoise": 1.0, "brownnoise": 2.0, "tpdfnoise": 0.0}
_NOISE_CORNER_HZ = 20.0  # coloured noise is flat below this, so its RMS is not all infrasound
_REVERB_DEFAULTS = (0.0,) + tuple(f.default for f in dataclasses.fields(reverb_lib.ReverbParams))


@dataclasses.dataclass(frozen=True)
class Step:
  """One parsed degradation step: its name and its numeric arguments (defaults filled in for reverb)."""
  name: str
  args: tuple[float, ...]

  def __str__(self) -> str:
    return " ".join([self.name] + [f"{a:g}" for a in self.args])


Chain = Union[str, Sequence[Step]]


def _bad(piece: str, text: str, reason: str) -> UserError:
  return UserError(f"bad degradation step {piece!r} in chain {text!r}: {reason}; grammar: {GRAMMAR}")


def _parse_step(piece: str, text: str) -> Step:
  """Parses and validates one comma-separated piece of `text`."""
  tokens = piece.split()
  if not tokens:
    raise _bad(piece, text, "empty step (stray comma?)")
  name, raw = tokens[0].lower(), tokens[1:]
  args = []
  for token in raw:
    try:
      value = float(token)
    except ValueError:
      raise _bad(piece, text, f"argument {token!r} is not a number") from None
    if not math.isfinite(value):
      raise _bad(piece, text, f"argument {token!r} is not a finite number")
    args.append(value)
  if name == "sample":
    if len(args) != 2:
      raise _bad(piece, text, f"'sample' takes 2 arguments (LOW HIGH), got {len(args)}")
    low, high = args
    for label, rate in (("LOW", low), ("HIGH", high)):
      if rate != int(rate) or not audio_lib.MIN_RATE <= rate <= audio_lib.MAX_RATE:
        raise _bad(piece, text, f"{label} {rate:g} must be an integer rate from {audio_lib.MIN_RATE} to "
                   f"{audio_lib.MAX_RATE} Hz")
    if low >= high:
      raise _bad(piece, text, f"LOW {low:g} must be below HIGH {high:g}")
    return Step(name, (int(low), int(high)))
  if name in NOISES:
    if len(args) != 2:
      raise _bad(piece, text, f"{name!r} takes 2 arguments (VARIANCE VOLUME), got {len(args)}")
    if args[0] < 0 or args[1] < 0:
      raise _bad(piece, text, "VARIANCE and VOLUME must not be negative")
    return Step(name, tuple(args))
  if name == "reverb":
    if len(args) > len(_REVERB_DEFAULTS):
      raise _bad(piece, text, f"'reverb' takes at most {len(_REVERB_DEFAULTS)} arguments, got {len(args)}")
    args = args + list(_REVERB_DEFAULTS[len(args):])
    if args[0] < 0:
      raise _bad(piece, text, "VARIANCE must not be negative")
    try:
      reverb_lib.ReverbParams(*args[1:]).check()
    except ValueError as e:
      raise _bad(piece, text, str(e)) from None
    return Step(name, tuple(args))
  raise _bad(piece, text, f"unknown step {tokens[0]!r}")


def parse_chain(text: Chain) -> tuple[Step, ...]:
  """Parses a chain string into Steps (an already parsed chain is returned as a tuple). Errors: UserError."""
  if not isinstance(text, str):
    return tuple(text)
  if not text.strip():
    return ()
  steps = tuple(_parse_step(piece.strip(), text) for piece in text.split(","))
  samples = [s for s in steps if s.name == "sample"]
  if len(samples) > 1:
    raise _bad(str(samples[1]), text, "at most one 'sample' step is allowed")
  return steps


def chain_rates(chain: Chain) -> tuple[int | None, int | None]:
  """(input_rate LOW, target_rate HIGH) of the chain's sample step, or (None, None) without one."""
  for step in parse_chain(chain):
    if step.name == "sample":
      return step.args[0], step.args[1]
  return None, None


def file_seed(run_seed: int, key: str) -> int:
  """A stable 63-bit seed for one file (e.g. key = its basename) from the run's seed: sha1, not hash()."""
  digest = hashlib.sha1(f"{int(run_seed)}:{key}".encode("utf-8")).hexdigest()
  return int(digest[:16], 16) >> 1


def _check_method(method: str) -> None:
  if method not in UPSAMPLE_METHODS:
    raise UserError(f"unknown upsampling method {method!r}: use one of {', '.join(UPSAMPLE_METHODS)}")


def upsample(x_low: np.ndarray, low: int, high: int, length: int, method: str = "soxr") -> np.ndarray:
  """Brings mono audio at `low` Hz up to `high` Hz with exactly `length` frames, float32.

  method: "soxr" (band-limited; frames past soxr's output are zeros, extra frames trimmed), "cubic" (cubic
  spline through the samples) or "linear" (straight lines); the last two hold the last sample's value past
  the end. Used by `degrade` and by the spline/linear baselines of the evaluation.
  """
  _check_method(method)
  x_low = np.asarray(x_low, dtype=np.float64)
  if len(x_low) == 0:
    return np.zeros(length, np.float32)
  if method == "soxr":
    out = audio_lib.resample(x_low.astype(np.float32), low, high)[:length]
    return np.pad(out, (0, length - len(out))).astype(np.float32)
  t_low = np.arange(len(x_low)) / low
  t_high = np.minimum(np.arange(length) / high, t_low[-1])
  if method == "linear" or len(x_low) < 4:
    return np.interp(t_high, t_low, x_low).astype(np.float32)
  return scipy.interpolate.make_interp_spline(t_low, x_low, k=3)(t_high).astype(np.float32)


def noise(frames: int, colour: str, rate: int, rng: np.random.Generator) -> np.ndarray:
  """Zero-mean noise (frames,) float64 with RMS exactly 1; colour is one of NOISES."""
  if frames == 0:
    return np.zeros(0)
  if colour == "tpdfnoise":
    x = rng.uniform(-1.0, 1.0, frames) + rng.uniform(-1.0, 1.0, frames)
  else:
    x = rng.standard_normal(frames)
  exponent = _NOISE_EXPONENT[colour]
  if exponent:
    n_fft = frames + frames % 2  # even, so the spectrum has a Nyquist bin
    freqs = np.fft.rfftfreq(n_fft, 1.0 / rate)
    gain = (np.maximum(freqs, _NOISE_CORNER_HZ) / _NOISE_CORNER_HZ) ** (-exponent / 2.0)
    gain[0] = 0.0
    x = np.fft.irfft(np.fft.rfft(x, n=n_fft) * gain, n=n_fft)[:frames]
  x = x - x.mean()
  rms = np.sqrt(np.mean(x**2))
  return x / rms if rms > 0 else x


def _per_file(value: float, variance: float, rng: np.random.Generator) -> float:
  """value + sqrt(variance) * z with z ~ N(0, 1) (always drawn, so the rng stream does not depend on it)."""
  return value + math.sqrt(variance) * rng.standard_normal()


def _band_limit(x: np.ndarray, low: int, high: int, method: str) -> np.ndarray:
  """x at `high` Hz through a `low` Hz channel: soxr down to `low`, then `upsample` back to len(x) frames."""
  return upsample(audio_lib.resample(x, high, low), low, high, len(x), method)


def apply_step(x: np.ndarray, rate: int, step: Step, rng: np.random.Generator, upsample_method: str) -> np.ndarray:
  """One step on mono float32 `x` at the target `rate` (a sample step's HIGH); returns float32, same length."""
  if step.name == "sample":
    return _band_limit(x, step.args[0], rate, upsample_method)
  if step.name in NOISES:
    variance, volume = step.args
    level = max(0.0, _per_file(volume, variance, rng))
    return (x + level * noise(len(x), step.name, rate, rng)).astype(np.float32)
  if step.name == "reverb":
    variance, reverberance, *rest = step.args
    reverberance = float(np.clip(_per_file(reverberance, variance, rng), 0.0, 100.0))
    return reverb_lib.reverb(x, rate, rng, reverb_lib.ReverbParams(reverberance, *rest))
  raise UserError(f"unknown degradation step {step.name!r}; grammar: {GRAMMAR}")


def degrade(audio: np.ndarray, rate: int, chain: Chain, seed: int,
            upsample: str = "soxr") -> tuple[np.ndarray, np.ndarray, int]:
  """Degrades clean mono audio (frames,) at `rate` Hz. Returns (input, target, target_rate), both float32.

  target = the clean audio at the sample step's HIGH rate (or as is); input = target through the chain's steps
  in order, step i drawing from `np.random.default_rng([seed, i])`. `upsample` picks how the sample step
  comes back up (see `upsample`).
  """
  steps = parse_chain(chain)
  _check_method(upsample)
  audio = np.asarray(audio, dtype=np.float32)
  if audio.ndim != 1:
    raise UserError(f"degrade expects mono audio of shape (frames,), got shape {audio.shape}")
  rate = audio_lib.check_rate(rate, "sample rate of the audio to degrade")
  if int(seed) < 0:
    raise UserError(f"the degradation seed must not be negative, got {seed}")
  target_rate = chain_rates(steps)[1] or rate
  target = audio_lib.resample(audio, rate, target_rate)
  x = target
  for index, step in enumerate(steps):
    x = apply_step(x, target_rate, step, np.random.default_rng([int(seed), index]), upsample)
  return (x.copy() if x is target else x), target, target_rate
