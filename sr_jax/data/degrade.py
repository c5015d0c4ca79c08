"""Seeded degradation chains: the clean audio is the target, the chain degrades the input.

Grammar (the first three lines are the original EPFL project's `--preprocessing`), steps separated by commas and
applied in order::

  sample LOW HIGH
  whitenoise|pinknoise|brownnoise|tpdfnoise VARIANCE VOLUME
  reverb VARIANCE [REVERBERANCE HF_DAMPING ROOM_SCALE STEREO_DEPTH PRE_DELAY WET_GAIN]
  lowpass soxr|butter|cheby1|cheby2|ellip|fir|random CUTOFF [CUTOFF_MAX [ORDER]]
  telephone
  codec mp3|vorbis|opus|random QUALITY [QUALITY_MAX]
  noise white|pink|brown|hum|random SNR [SNR_MAX] [steady|modulated|random]
  mix FOLDER SNR [SNR_MAX]
  room [image|synthetic|random] RT60 [RT60_MAX]
  maybe P STEP

e.g. "sample 4000 16000,whitenoise 0 0.002,reverb 0.1 50 50 100 0 0" or "room random 0.2 1.2,maybe 0.5 noise
random 5 30,maybe 0.3 codec random 0.2 0.8,lowpass random 2000 8000". The chain `none`, like an empty one, is the
identity. A range X [X_MAX] is drawn per example: uniformly in [X, X_MAX] (log-uniformly for cut-offs: equal odds
per octave); X alone is fixed. A word `random` draws one of the listed choices per example, with equal odds.

- `sample LOW HIGH`: the target is the clean audio resampled to HIGH Hz (soxr). The input is band-limited to
  LOW (anti-aliased soxr resampling HIGH -> LOW) and brought back to HIGH by `upsample` ("soxr": band-limited,
  what enhancing a real LOW Hz file does; "cubic": cubic spline, Kuleshov et al.'s baseline; "linear": the
  original project's), with exactly the target's length. At most one sample step, never inside `maybe`;
  LOW < HIGH. All other steps run at the target rate (HIGH, or the audio's own rate without a sample step).
- whitenoise etc.: coloured noise ADDED to the input, which is not scaled (the original's `sox -m` halved it).
  VOLUME is the RMS of the added noise over the whole file (full scale = 1.0); per file the RMS is
  max(0, VOLUME + sqrt(VARIANCE) * z), z ~ N(0, 1). Colours: white (flat), pink (-3 dB/octave power),
  brown (-6 dB/octave, flat below 20 Hz and without DC), tpdf (white with a triangular amplitude pdf: the sum
  of two uniforms).
- `reverb`: a synthetic room reverb (see `sr_jax.data.reverb`) with sox's argument meanings and defaults
  (reverberance 50 %, HF damping 50 %, room scale 100 %, stereo depth 100 %, pre-delay 0 ms, wet gain 0 dB;
  VARIANCE 0). Per file the reverberance is clip(REVERBERANCE + sqrt(VARIANCE) * z, 0, 100), z ~ N(0, 1), so
  VARIANCE is in percent squared (100 gives a spread of about +-10 %).
- `lowpass KIND CUTOFF [CUTOFF_MAX [ORDER]]` (Hz, below the Nyquist frequency): every KIND but soxr has its
  half-power point (-3.01 dB) exactly at the cut-off. soxr: resampled down to 2 x cut-off and back like `sample`
  (flat to about 0.91 x cut-off, nothing above it; cut-off >= 500 Hz). butter, cheby1 (1 dB passband ripple),
  cheby2 (60 dB stop band), ellip (both): IIR filters of ORDER (default 8) run causally (scipy's sosfilt), with
  the phase and group delay of a real device or analog anti-aliasing filter. fir: a linear-phase Hamming-windowed
  sinc of ORDER + 1 taps (ORDER even, default 64) whose constant delay ORDER / 2 is removed, as soxr's is.
  ORDER is for one KIND only (not soxr or random; random uses the defaults).
- `telephone`: narrowband telephony: a Butterworth band-pass 300-3400 Hz (order 4 per edge, -3.01 dB at both,
  causal), then through 8 kHz (soxr down, `upsample` back up). Needs a rate of at least 8 kHz.
- `codec FORMAT QUALITY [QUALITY_MAX]`: lossy encoding and decoding in memory with libsndfile (MP3, Ogg Vorbis,
  Opus), QUALITY in [0, 1] (1 best: libsndfile's compression level 1 - QUALITY, at most 0.99 for MP3). At a rate
  the codec lacks, the audio goes through the next higher rate it has (48 kHz at most) and back with soxr.
  Encoders may differ across CPUs and libsndfile builds (the seed fixes the bytes on one machine).
- `noise COLOUR SNR [SNR_MAX] [ENVELOPE]` and `mix FOLDER SNR [SNR_MAX]`: noise added at SNR dB below the
  step's input (the signal as the steps before left it). Both levels are active levels (`active_level`): the
  mean power of the 20 ms frames within 40 dB of the loudest, so pauses do not lower them; a silent input gets
  no noise. Colours: white, pink, brown (as above), hum (mains hum: 50 or 60 Hz and 7 more harmonics, each
  0.3-0.9 x the one below it, random phases). ENVELOPE steady (default) or modulated: the noise times a slow
  random envelope (a cubic spline through Gaussian dB values 0.1-1 s apart with a standard deviation of 3-12 dB).
  mix adds a random excerpt of a random audio file under FOLDER (recorded noise, other speakers for babble):
  mono, resampled to the chain's rate, looped when shorter than the input; the folder is listed once per
  process. FOLDER may be quoted ("my noises") and is made absolute. In a training config's data.chain, FOLDER may
  start with `{data}`, the training data's root folder (`with_data_root`; the packaged corpora's
  `{data}/train` gives babble of other training voices).
- `room [KIND] RT60 [RT60_MAX]` (seconds, 0.1-2): the input through a room impulse response (see
  `sr_jax.data.rooms`): image (default; a random shoebox room by the image-source method, needs `pip install
  pyroomacoustics`) or synthetic (the `reverb` model). The direct sound keeps no delay: the input's dry part is
  aligned with the (dry) target. The output is scaled to the step's input's active level (`active_level`): a
  recording's level is whatever its maker set, so a model need not guess how much louder each room made the audio
  (a guess it meets by turning every input down).
- `maybe P STEP`: STEP applied with probability P, decided by its own coin (see below), so one chain makes
  each degradation alone and combined.

Randomness: step i draws from `np.random.default_rng([seed, i])`, so the same seed gives the same bytes, and a
step's noise does not depend on the other steps; a `maybe` step's coin comes from an independent child stream
(`np.random.SeedSequence([seed, i], spawn_key=(0,))`), so `maybe 1 STEP` is exactly STEP. `file_seed(run_seed,
key)` derives a per-file seed.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import math
import os
import re
import shlex
from typing import Sequence, Union

import numpy as np
import scipy.interpolate
import scipy.optimize
import scipy.signal

from sr_jax.data import audio as audio_lib
from sr_jax.data import reverb as reverb_lib
from sr_jax.data import rooms
from sr_jax.errors import UserError

GRAMMAR = ("sample LOW HIGH | whitenoise|pinknoise|brownnoise|tpdfnoise VARIANCE VOLUME | "
           "reverb VARIANCE [REVERBERANCE HF_DAMPING ROOM_SCALE STEREO_DEPTH PRE_DELAY WET_GAIN] | "
           "lowpass soxr|butter|cheby1|cheby2|ellip|fir|random CUTOFF [CUTOFF_MAX [ORDER]] | telephone | "
           "codec mp3|vorbis|opus|random QUALITY [QUALITY_MAX] | "
           "noise white|pink|brown|hum|random SNR [SNR_MAX] [steady|modulated|random] | mix FOLDER SNR [SNR_MAX] | "
           "room [image|synthetic|random] RT60 [RT60_MAX] | maybe P STEP; comma-separated (see sr_jax/data/degrade.py)")
NOISES = ("whitenoise", "pinknoise", "brownnoise", "tpdfnoise")
UPSAMPLE_METHODS = ("soxr", "cubic", "linear")
FILTERS = ("soxr", "butter", "cheby1", "cheby2", "ellip", "fir")
COLOURS = ("white", "pink", "brown", "hum")
ENVELOPES = ("steady", "modulated")
CODECS = ("mp3", "vorbis", "opus")
NEW_STEPS = ("lowpass", "telephone", "codec", "noise", "mix", "room")
# Power slope of each noise colour in dB per octave is -3 * _NOISE_EXPONENT (PSD ~ f ** -exponent).
_NOISE_EXPONENT = {"whitenoise": 0.0, "pinknoise": 1.0, "brownnoise": 2.0, "tpdfnoise": 0.0}
_NOISE_CORNER_HZ = 20.0  # coloured noise is flat below this, so its RMS is not all infrasound
_REVERB_DEFAULTS = (0.0,) + tuple(f.default for f in dataclasses.fields(reverb_lib.ReverbParams))
_LEGACY = ("sample", "reverb") + NOISES  # steps whose text form (`Step.__str__`) must not change
_DEFAULT_ORDER = {"butter": 8, "cheby1": 8, "cheby2": 8, "ellip": 8, "fir": 64}
_MAX_ORDER = {"butter": 20, "cheby1": 20, "cheby2": 20, "ellip": 20, "fir": 1024}
RIPPLE_DB = 1.0  # passband ripple of cheby1 and ellip
STOP_DB = 60.0  # stop-band attenuation of cheby2 and ellip
HALF_POWER = 1.0 / math.sqrt(2.0)  # the gain of every lowpass but soxr at its cut-off (-3.01 dB)
TELEPHONE_BAND_HZ = (300.0, 3400.0)
TELEPHONE_RATE = 8000
# libsndfile's (format, subtype, the sample rates it encodes) for each codec.
_CODEC_FORMATS = {
    "mp3": ("MP3", "MPEG_LAYER_III", (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)),
    "vorbis": ("OGG", "VORBIS", (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)),
    "opus": ("OGG", "OPUS", (8000, 12000, 16000, 24000, 48000)),
}
LEVEL_FRAME_S = 0.02  # `active_level`: frame length
LEVEL_RANGE_DB = 40.0  # `active_level`: frames this far below the loudest are pauses
HUM_HARMONICS = 8
HUM_DECAY = (0.3, 0.9)  # each hum harmonic's amplitude over the one below it, uniform in this range
ENVELOPE_SPACING_S = (0.1, 1.0)  # modulated noise: knot spacing of the dB envelope, log-uniform
ENVELOPE_DEPTH_DB = (3.0, 12.0)  # modulated noise: standard deviation of the dB envelope, uniform
_SAFE_WORD = re.compile(r"[\w@%+=:./-]+")


@dataclasses.dataclass(frozen=True)
class Step:
  """One parsed degradation step: its name and its arguments (defaults filled in), and for `maybe P STEP` the
  probability P of applying it (None: always). str() gives text that parses back to the same Step."""
  name: str
  args: tuple = ()
  probability: float | None = None

  def __str__(self) -> str:
    if self.name in _LEGACY:  # unchanged text (pipeline cache keys): 6 significant digits
      text = " ".join([self.name] + [f"{a:g}" for a in self.args])
    else:
      text = " ".join([self.name] + [_token(a) for a in self.args])
    return text if self.probability is None else f"maybe {_token(self.probability)} {text}"


Chain = Union[str, Sequence[Step]]


def _token(value) -> str:
  """A word (single-quoted, shell-style, unless it is plain) or a number in its shortest exact form."""
  if isinstance(value, str):
    return value if _SAFE_WORD.fullmatch(value) else "'" + value.replace("'", "'\"'\"'") + "'"
  short = f"{value:g}"
  return short if float(short) == value else repr(float(value))


def _bad(piece: str, text: str, reason: str) -> UserError:
  return UserError(f"bad degradation step {piece!r} in chain {text!r}: {reason}; grammar: {GRAMMAR}")


def split_outside_quotes(text: str, separator: str = ",") -> list[str]:
  """`text` split at `separator` except inside quotes: a chain's steps at commas (a quoted mix FOLDER may hold one),
  named chains at semicolons."""
  pieces, current, quote = [], [], None
  for char in text:
    if quote:
      quote = None if char == quote else quote
    elif char in "'\"":
      quote = char
    elif char == separator:
      pieces.append("".join(current))
      current = []
      continue
    current.append(char)
  return pieces + ["".join(current)]


def _number(token: str, piece: str, text: str) -> float:
  try:
    value = float(token)
  except ValueError:
    raise _bad(piece, text, f"argument {token!r} is not a number") from None
  if not math.isfinite(value):
    raise _bad(piece, text, f"argument {token!r} is not a finite number")
  return value


def _is_number(token: str) -> bool:
  try:
    float(token)
  except ValueError:
    return False
  return True


def _word(token: str, choices: Sequence[str], what: str, piece: str, text: str) -> str:
  word = token.lower()
  if word not in choices:
    raise _bad(piece, text, f"unknown {what} {token!r}: use one of {', '.join(choices)}")
  return word


def _range(numbers: list[float], label: str, usage: str, piece: str, text: str, low: float = -math.inf,
           high: float = math.inf) -> tuple[float, float]:
  """(X, X_MAX) from 1 or 2 numbers (`usage` says which) in [low, high]; X_MAX defaults to X, is never below it."""
  if not 1 <= len(numbers) <= 2:
    raise _bad(piece, text, f"expected {usage}, got {len(numbers)} numbers")
  lo, hi = numbers[0], numbers[-1]
  for name, value in ((label, lo), (f"{label}_MAX", hi)):
    if not low <= value <= high:
      raise _bad(piece, text, f"{name} {value:g} must be in [{low:g}, {high:g}]")
  if hi < lo:
    raise _bad(piece, text, f"{label}_MAX {hi:g} must not be below {label} {lo:g}")
  return lo, hi


def _parse_legacy(name: str, raw: list[str], piece: str, text: str) -> Step:
  """The original steps: sample, the four noises and reverb (all-numeric arguments)."""
  args = [_number(token, piece, text) for token in raw]
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


def _parse_lowpass(raw: list[str], piece: str, text: str) -> Step:
  if not raw or _is_number(raw[0]):
    raise _bad(piece, text, f"'lowpass' needs a KIND first: one of {', '.join(FILTERS + ('random',))}")
  kind = _word(raw[0], FILTERS + ("random",), "filter kind", piece, text)
  numbers = [_number(token, piece, text) for token in raw[1:]]
  if len(numbers) == 3:
    order = numbers.pop()
    if kind not in _DEFAULT_ORDER:
      raise _bad(piece, text, f"ORDER is not an argument of 'lowpass {kind}'")
    if order != int(order) or not 1 <= order <= _MAX_ORDER[kind] or (kind == "fir" and order % 2):
      parity = " even" if kind == "fir" else ""
      raise _bad(piece, text, f"ORDER {order:g} must be an{parity} integer from {2 if parity else 1} to "
                 f"{_MAX_ORDER[kind]}")
  else:
    order = _DEFAULT_ORDER.get(kind)
  lo, hi = _range(numbers, "CUTOFF", "lowpass KIND CUTOFF [CUTOFF_MAX [ORDER]]", piece, text)
  if lo <= 0:
    raise _bad(piece, text, f"CUTOFF {lo:g} must be above 0 Hz")
  if kind in ("soxr", "random") and lo < audio_lib.MIN_RATE / 2:
    raise _bad(piece, text, f"CUTOFF {lo:g} must be at least {audio_lib.MIN_RATE / 2:g} Hz for {kind} (soxr "
               f"resamples to 2 x CUTOFF, at least {audio_lib.MIN_RATE} Hz)")
  return Step("lowpass", (kind, lo, hi) if order is None else (kind, lo, hi, int(order)))


def _parse_new(name: str, raw: list[str], piece: str, text: str) -> Step:
  """The steps added to the original grammar (a word or words, then numbers, see the module docstring)."""
  if name == "lowpass":
    return _parse_lowpass(raw, piece, text)
  if name == "telephone":
    if raw:
      raise _bad(piece, text, f"'telephone' takes no arguments, got {len(raw)}")
    return Step(name)
  if name == "codec":
    if not raw or _is_number(raw[0]):
      raise _bad(piece, text, f"'codec' needs a FORMAT first: one of {', '.join(CODECS + ('random',))}")
    codec = _word(raw[0], CODECS + ("random",), "codec", piece, text)
    lo, hi = _range([_number(t, piece, text) for t in raw[1:]], "QUALITY", "codec FORMAT QUALITY [QUALITY_MAX]",
                    piece, text, 0.0, 1.0)
    return Step(name, (codec, lo, hi))
  if name == "noise":
    if not raw or _is_number(raw[0]):
      raise _bad(piece, text, f"'noise' needs a COLOUR first: one of {', '.join(COLOURS + ('random',))}")
    colour = _word(raw[0], COLOURS + ("random",), "noise colour", piece, text)
    rest = raw[1:]
    envelope = "steady"
    if rest and not _is_number(rest[-1]):
      envelope = _word(rest.pop(), ENVELOPES + ("random",), "noise envelope", piece, text)
    lo, hi = _range([_number(t, piece, text) for t in rest], "SNR", "noise COLOUR SNR [SNR_MAX] [ENVELOPE]",
                    piece, text)
    return Step(name, (colour, lo, hi, envelope))
  if name == "mix":
    if len(raw) < 2:
      raise _bad(piece, text, "expected mix FOLDER SNR [SNR_MAX] (a folder of audio files, then numbers)")
    lo, hi = _range([_number(t, piece, text) for t in raw[1:]], "SNR", "mix FOLDER SNR [SNR_MAX]", piece, text)
    folder = raw[0] if raw[0].startswith(DATA_TOKEN) else os.path.abspath(os.path.expanduser(raw[0]))
    return Step(name, (folder, lo, hi))
  if name == "room":
    kind = "image"
    if raw and not _is_number(raw[0]):
      kind = _word(raw[0], rooms.KINDS + ("random",), "room kind", piece, text)
      raw = raw[1:]
    lo, hi = _range([_number(t, piece, text) for t in raw], "RT60", "room [KIND] RT60 [RT60_MAX]", piece, text,
                    *rooms.RT60_RANGE_S)
    return Step(name, (kind, lo, hi))
  raise AssertionError(name)  # _parse_step sends only NEW_STEPS here


def _parse_tokens(tokens: list[str], piece: str, text: str) -> Step:
  name, raw = tokens[0].lower(), tokens[1:]
  if name in _LEGACY:
    return _parse_legacy(name, raw, piece, text)
  if name in NEW_STEPS:
    return _parse_new(name, raw, piece, text)
  raise _bad(piece, text, f"unknown step {tokens[0]!r}")


def _parse_step(piece: str, text: str) -> Step:
  """Parses and validates one comma-separated piece of `text`."""
  try:
    tokens = shlex.split(piece)
  except ValueError as e:
    raise _bad(piece, text, f"{e} (quote a FOLDER with spaces or commas as \"my folder\")") from None
  if not tokens:
    raise _bad(piece, text, "empty step (stray comma?)")
  if tokens[0].lower() != "maybe":
    return _parse_tokens(tokens, piece, text)
  if len(tokens) < 3:
    raise _bad(piece, text, "expected maybe P STEP (a probability, then a step)")
  probability = _number(tokens[1], piece, text)
  if not 0.0 <= probability <= 1.0:
    raise _bad(piece, text, f"P {probability:g} must be a probability in [0, 1]")
  if tokens[2].lower() == "maybe":
    raise _bad(piece, text, "'maybe' cannot be nested")
  if tokens[2].lower() == "sample":
    raise _bad(piece, text, "'sample' sets the target rate and cannot be optional (use 'lowpass soxr' for an "
               "optional band limit)")
  return dataclasses.replace(_parse_tokens(tokens[2:], piece, text), probability=probability)


def _rate_problem(step: Step, rate: int) -> str | None:
  """Why `step` cannot run at the target `rate` (None if it can)."""
  nyquist = rate / 2
  if step.name == "lowpass":
    kind, lo, hi = step.args[:3]
    if hi >= nyquist:
      return f"CUTOFF_MAX {hi:g} Hz must be below the Nyquist frequency {nyquist:g} Hz of the {rate} Hz audio"
    if kind in ("fir", "random"):  # a short FIR cannot reach half power at a very low cut-off
      order = step.args[3] if kind == "fir" else _DEFAULT_ORDER["fir"]
      if _gain("fir", order, _LOWEST_EDGE, lo / nyquist) >= HALF_POWER:
        return (f"a {order + 1}-tap fir cannot cut off at {lo:g} Hz at {rate} Hz (its transition band is about "
                f"{3.3 * rate / (order + 1):.0f} Hz wide): raise ORDER or CUTOFF")
  if step.name == "telephone" and rate < TELEPHONE_RATE:
    return f"needs a rate of at least {TELEPHONE_RATE} Hz, the audio is at {rate} Hz"
  return None


def check_steps(steps: Sequence[Step], rate: int | None, text: str, run: bool) -> None:
  """UserErrors for steps that cannot run at `rate` (if known) and, when `run`, for what they need to run (the
  optional pyroomacoustics, libsndfile's codecs, a mix folder with audio files)."""
  for step in steps:
    problem = _rate_problem(step, rate) if rate is not None else None
    if problem:
      raise _bad(str(step), text, problem)
    if not run:
      continue
    try:
      if step.name == "room" and step.args[0] in ("image", "random"):
        rooms.require_pyroomacoustics()
      if step.name == "mix":
        _folder_files(step.args[0])
    except UserError as e:
      raise _bad(str(step), text, str(e)) from None
    if step.name == "codec":
      for codec in CODECS if step.args[0] == "random" else (step.args[0],):
        fmt, subtype, _ = _CODEC_FORMATS[codec]
        if not _codec_available(fmt, subtype):
          raise _bad(str(step), text, f"this libsndfile cannot encode {fmt} {subtype} (MP3 needs libsndfile >= "
                     "1.1): upgrade the soundfile package")


DATA_TOKEN = "{data}"  # in a mix FOLDER: the training data's root folder (`with_data_root`)


def with_data_root(chain: str, root: str) -> str:
  """`chain` with every `{data}` replaced by the folder `root` (the data root the training pipeline reads)."""
  return chain.replace(DATA_TOKEN, os.path.abspath(root))


NO_DEGRADATION = "none"  # the chain that leaves the audio as it is, as the empty chain does


def parse_chain(text: Chain) -> tuple[Step, ...]:
  """Parses a chain string into Steps (an already parsed chain is returned as a tuple). Errors: UserError."""
  if not isinstance(text, str):
    return tuple(text)
  if not text.strip() or text.strip() == NO_DEGRADATION:
    return ()
  steps = tuple(_parse_step(piece.strip(), text) for piece in split_outside_quotes(text))
  samples = [s for s in steps if s.name == "sample"]
  if len(samples) > 1:
    raise _bad(str(samples[1]), text, "at most one 'sample' step is allowed")
  if samples:
    check_steps(steps, samples[0].args[1], text, run=False)
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


# ----- lowpass, telephone -------------------------------------------------------------------------------------

_LOWEST_EDGE = 1e-6  # design edges (fractions of Nyquist) searched for the half-power point
_HIGHEST_EDGE = 1.0 - 1e-9


def _design(kind: str, order: int, edge: float) -> np.ndarray:
  """scipy's design of `kind` at `edge` (fraction of Nyquist, scipy's meaning): sos, or FIR taps for fir."""
  if kind == "butter":
    return scipy.signal.butter(order, edge, output="sos")
  if kind == "cheby1":
    return scipy.signal.cheby1(order, RIPPLE_DB, edge, output="sos")
  if kind == "cheby2":
    return scipy.signal.cheby2(order, STOP_DB, edge, output="sos")
  if kind == "ellip":
    return scipy.signal.ellip(order, RIPPLE_DB, STOP_DB, edge, output="sos")
  return scipy.signal.firwin(order + 1, edge)


def _gain(kind: str, order: int, edge: float, at: float) -> float:
  """|H| at `at` (fraction of Nyquist) of the filter designed at `edge`."""
  coefficients = _design(kind, order, edge)
  w = np.array([np.pi * at])
  if kind == "fir":
    return float(np.abs(scipy.signal.freqz(coefficients, worN=w)[1][0]))
  return float(np.abs(scipy.signal.sosfreqz(coefficients, worN=w)[1][0]))


@functools.lru_cache(maxsize=64)
def lowpass_filter(kind: str, order: int, cutoff_hz: float, rate: int) -> np.ndarray:
  """sos (IIR kinds) or taps (fir) of the `kind` lowpass whose gain at `cutoff_hz` is exactly 1/sqrt(2). Memoised
  (callers only read it): `passband_turn` asks for the filter the step's `_lowpass` has just designed.

  scipy's edge means -3.01 dB only for butter (bilinear-transformed Butterworth); cheby1's and ellip's edge is
  where the passband ripple ends, cheby2's where the stop band starts, firwin's where the gain is 1/2. For these
  the edge that puts half power at the cut-off is found by root finding (the gain at a fixed frequency grows
  with the edge through the transition band, so the root is unique).
  """
  at = cutoff_hz / (rate / 2)
  if kind == "butter":
    return _design(kind, order, at)
  excess = lambda edge: _gain(kind, order, edge, at) - HALF_POWER  # noqa: E731
  if excess(_HIGHEST_EDGE) <= 0:  # a cut-off within a hair of Nyquist: the closest design
    return _design(kind, order, _HIGHEST_EDGE)
  if excess(_LOWEST_EDGE) >= 0:  # a cut-off within a hair of 0 Hz (a short fir is refused before this)
    return _design(kind, order, _LOWEST_EDGE)
  edge = scipy.optimize.brentq(excess, _LOWEST_EDGE, _HIGHEST_EDGE, xtol=1e-13, rtol=1e-13)
  return _design(kind, order, edge)


def _lowpass_design(args: tuple, rng: np.random.Generator, rate: int) -> tuple[str, float, np.ndarray | None]:
  """(kind, cut-off, sos or taps; None for soxr) of a lowpass step, drawn from `rng`."""
  kind, lo, hi = args[:3]
  pick, u = rng.integers(len(FILTERS)), rng.uniform()  # always both, so the stream does not depend on KIND
  kind = FILTERS[pick] if kind == "random" else kind
  cutoff = lo * (hi / lo) ** u  # log-uniform: equal odds per octave
  if kind == "soxr":
    return kind, cutoff, None
  order = args[3] if len(args) > 3 else _DEFAULT_ORDER[kind]
  return kind, cutoff, lowpass_filter(kind, order, cutoff, rate)


def _lowpass(x: np.ndarray, rate: int, args: tuple, rng: np.random.Generator, upsample_method: str) -> np.ndarray:
  kind, cutoff, coefficients = _lowpass_design(args, rng, rate)
  if kind == "soxr":
    return _band_limit(x, int(round(2 * cutoff)), rate, upsample_method)
  x = np.asarray(x, dtype=np.float64)
  if kind == "fir":  # linear phase: drop the constant delay order / 2 (ORDER + 1 taps)
    delay = (len(coefficients) - 1) // 2
    return scipy.signal.oaconvolve(x, coefficients)[delay: delay + len(x)].astype(np.float32)
  return scipy.signal.sosfilt(coefficients, x).astype(np.float32)


def _telephone_band(rate: int) -> np.ndarray:
  return scipy.signal.butter(4, TELEPHONE_BAND_HZ, "bandpass", fs=rate, output="sos")


def _telephone(x: np.ndarray, rate: int, upsample_method: str) -> np.ndarray:
  y = scipy.signal.sosfilt(_telephone_band(rate), np.asarray(x, dtype=np.float64)).astype(np.float32)
  return y if rate == TELEPHONE_RATE else _band_limit(y, TELEPHONE_RATE, rate, upsample_method)


# ----- codec --------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _codec_available(fmt: str, subtype: str) -> bool:
  import soundfile as sf  # noqa: PLC0415

  return fmt in sf.available_formats() and subtype in sf.available_subtypes(fmt)


def _codec(x: np.ndarray, rate: int, args: tuple, rng: np.random.Generator) -> np.ndarray:
  import soundfile as sf  # noqa: PLC0415

  codec, lo, hi = args
  pick, u = rng.integers(len(CODECS)), rng.uniform()
  codec = CODECS[pick] if codec == "random" else codec
  quality = lo + (hi - lo) * u
  fmt, subtype, rates = _CODEC_FORMATS[codec]
  level = 1.0 - quality if codec != "mp3" else min(1.0 - quality, 0.99)  # libsndfile's MP3 refuses 1.0
  codec_rate = min([r for r in rates if r >= rate] or [max(rates)])
  y = audio_lib.resample(x, rate, codec_rate)
  buffer = io.BytesIO()
  try:
    sf.write(buffer, y, codec_rate, format=fmt, subtype=subtype, compression_level=level)
    buffer.seek(0)
    y = sf.read(buffer, dtype="float32")[0]
  except Exception as e:  # soundfile's LibsndfileError: an encoder this libsndfile lacks or refuses
    raise UserError(f"libsndfile cannot encode {codec} at {codec_rate} Hz, quality {quality:g} "
                    f"({audio_lib._reason(e)})") from None
  y = audio_lib.resample(y, codec_rate, rate)[: len(x)]
  return np.pad(y, (0, len(x) - len(y))).astype(np.float32)


# ----- noise at an SNR, mix -----------------------------------------------------------------------------------


def active_level(x: np.ndarray, rate: int) -> float:
  """The mean power of x's active part: its whole 20 ms frames (LEVEL_FRAME_S) whose power is within 40 dB
  (LEVEL_RANGE_DB) of the loudest frame's (all of x when shorter than a frame; 0 for silence)."""
  x = np.asarray(x, dtype=np.float64)
  frame = max(1, int(round(LEVEL_FRAME_S * rate)))
  count = len(x) // frame
  if count == 0:
    return float(np.mean(x**2)) if len(x) else 0.0
  powers = np.mean(x[: count * frame].reshape(count, frame) ** 2, axis=1)
  return float(np.mean(powers[powers >= powers.max() * 10.0 ** (-LEVEL_RANGE_DB / 10.0)]))


def hum(frames: int, rate: int, rng: np.random.Generator) -> np.ndarray:
  """Mains hum (frames,) float64 with RMS 1 (when not empty): 50 or 60 Hz and its harmonics below Nyquist (up to
  HUM_HARMONICS in all), each harmonic's amplitude 0.3-0.9 x the one below it, random phases."""
  fundamental = (50.0, 60.0)[rng.integers(2)]
  ratios = rng.uniform(*HUM_DECAY, size=HUM_HARMONICS - 1)
  phases = rng.uniform(0.0, 2.0 * np.pi, size=HUM_HARMONICS)
  amplitudes = np.cumprod(np.concatenate([[1.0], ratios]))
  count = min(HUM_HARMONICS, int(np.ceil(rate / 2 / fundamental)) - 1)
  t = np.arange(frames) / rate
  harmonics = np.arange(1, count + 1)[:, None]
  x = np.sum(amplitudes[:count, None] * np.sin(2 * np.pi * fundamental * harmonics * t + phases[:count, None]), axis=0)
  rms = np.sqrt(np.mean(x**2)) if frames else 0.0
  return x / rms if rms > 0 else x


def slow_envelope(frames: int, rate: int, rng: np.random.Generator) -> np.ndarray:
  """A random slowly varying gain (frames,) > 0: 10 ** (d / 20) for d a cubic spline through N(0, depth^2) dB
  values spaced log-uniformly 0.1-1 s apart, depth uniform in 3-12 dB (ENVELOPE_SPACING_S, ENVELOPE_DEPTH_DB)."""
  spacing = math.exp(rng.uniform(*np.log(ENVELOPE_SPACING_S)))
  depth = rng.uniform(*ENVELOPE_DEPTH_DB)
  knots = int(math.ceil(frames / rate / spacing)) + 4
  times = (np.arange(knots) - 1) * spacing  # one knot before the start, the rest cover the end
  db = depth * rng.standard_normal(knots)
  return 10.0 ** (scipy.interpolate.make_interp_spline(times, db, k=3)(np.arange(frames) / rate) / 20.0)


@functools.lru_cache(maxsize=None)
def _folder_files(folder: str) -> tuple[str, ...]:
  """The audio files under `folder` (listed once per process), or a UserError."""
  from sr_jax.data import datasets  # noqa: PLC0415  (absl, only for mix)

  if folder.startswith(DATA_TOKEN):
    raise UserError(f"mix folder {folder}: {DATA_TOKEN} is the training data's folder, which only training fills "
                    "in; give a chain whose mix folder is a real folder (e.g. --chain or --chains)")
  if not os.path.isdir(folder):
    raise UserError(f"mix folder {folder} {'is not a folder' if os.path.exists(folder) else 'does not exist'}")
  files = tuple(datasets.audio_files(folder))
  if not files:
    raise UserError(f"mix folder {folder} has no audio files (looked for "
                    f"{', '.join(sorted(datasets.AUDIO_EXTENSIONS)[:6])}, ...)")
  return files


@functools.lru_cache(maxsize=4096)
def _file_frames(path: str) -> tuple[int, int]:
  info = audio_lib.info(path)
  return int(info.frames), audio_lib.check_rate(info.samplerate, f"sample rate of {path}")


def excerpt(folder: str, frames: int, rate: int, rng: np.random.Generator) -> np.ndarray:
  """`frames` frames at `rate` of a random file under `folder` from a random offset (mono float64, looped when
  the file is shorter; only the excerpt is read)."""
  files = _folder_files(folder)
  path = files[rng.integers(len(files))]
  file_frames, file_rate = _file_frames(path)
  if file_frames == 0:
    raise UserError(f"{path} (in mix folder {folder}) has no audio (zero frames)")
  need = int(math.ceil(frames * file_rate / rate)) + 1
  start = int(rng.integers(max(1, file_frames - need + 1) if file_frames >= need else file_frames))
  import soundfile as sf  # noqa: PLC0415

  try:
    if file_frames >= need:
      audio = sf.read(path, start=start, frames=need, dtype="float32", always_2d=True)[0]
    else:
      audio = sf.read(path, dtype="float32", always_2d=True)[0]
      audio = audio[(start + np.arange(need)) % len(audio)]
  except Exception as e:
    raise UserError(f"cannot read {path} (in mix folder {folder}) as audio ({audio_lib._reason(e)})") from None
  out = audio_lib.resample(audio.mean(axis=1), file_rate, rate)[:frames].astype(np.float64)
  return np.pad(out, (0, frames - len(out)))


def _add_at_snr(x: np.ndarray, rate: int, added: np.ndarray, snr_db: float) -> np.ndarray:
  """x + g * added with g such that active_level(x) / active_level(g * added) = snr_db (nothing if either is 0)."""
  signal, level = active_level(x, rate), active_level(added, rate)
  gain = math.sqrt(signal / level / 10.0 ** (snr_db / 10.0)) if signal > 0 and level > 0 else 0.0
  return (np.asarray(x, dtype=np.float64) + gain * added).astype(np.float32)


def _noise_at_snr(x: np.ndarray, rate: int, args: tuple, rng: np.random.Generator) -> np.ndarray:
  colour, lo, hi, envelope = args
  pick, shape, u = rng.integers(len(COLOURS)), rng.integers(len(ENVELOPES)), rng.uniform()
  colour = COLOURS[pick] if colour == "random" else colour
  envelope = ENVELOPES[shape] if envelope == "random" else envelope
  added = hum(len(x), rate, rng) if colour == "hum" else noise(len(x), colour + "noise", rate, rng)
  if envelope == "modulated":
    added = added * slow_envelope(len(x), rate, rng)
  return _add_at_snr(x, rate, added, lo + (hi - lo) * u)


def _mix(x: np.ndarray, rate: int, args: tuple, rng: np.random.Generator) -> np.ndarray:
  folder, lo, hi = args
  snr = lo + (hi - lo) * rng.uniform()
  return _add_at_snr(x, rate, excerpt(folder, len(x), rate, rng), snr)


def _room(x: np.ndarray, rate: int, args: tuple, rng: np.random.Generator) -> np.ndarray:
  kind, lo, hi = args
  pick, u = rng.integers(len(rooms.KINDS)), rng.uniform()
  kind = rooms.KINDS[pick] if kind == "random" else kind
  wet = rooms.apply_ir(x, rooms.room_ir(kind, rate, lo + (hi - lo) * u, rng))
  before, after = active_level(x, rate), active_level(wet, rate)
  gain = math.sqrt(before / after) if before > 0 and after > 0 else 1.0
  return (np.asarray(wet, dtype=np.float64) * gain).astype(np.float32)


def apply_step(x: np.ndarray, rate: int, step: Step, rng: np.random.Generator, upsample_method: str) -> np.ndarray:
  """One step on mono float32 `x` at the target `rate` (a sample step's HIGH); returns float32, same length.

  A `maybe` step's own probability is not looked at here (see `degrade`): this applies the step.
  """
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
  if step.name in NEW_STEPS and len(x) == 0:
    return np.asarray(x, dtype=np.float32).copy()
  if step.name == "lowpass":
    return _lowpass(x, rate, step.args, rng, upsample_method)
  if step.name == "telephone":
    return _telephone(x, rate, upsample_method)
  if step.name == "codec":
    return _codec(x, rate, step.args, rng)
  if step.name == "noise":
    return _noise_at_snr(x, rate, step.args, rng)
  if step.name == "mix":
    return _mix(x, rate, step.args, rng)
  if step.name == "room":
    return _room(x, rate, step.args, rng)
  raise UserError(f"unknown degradation step {step.name!r}; grammar: {GRAMMAR}")


def step_applies(step: Step, seed: int, index: int) -> bool:
  """Whether step `index` of a chain runs for `seed`: always, or for `maybe P` when its coin (an independent
  child stream of [seed, index], never the step's own) comes up below P."""
  if step.probability is None:
    return True
  coin = np.random.default_rng(np.random.SeedSequence([int(seed), index], spawn_key=(0,)))
  return bool(coin.uniform() < step.probability)


def passband_turn(step: Step, rate: int, rng: np.random.Generator) -> np.ndarray | None:
  """The sos of the IIR filter whose phase `step` gives what it passes (lowpass butter/cheby1/cheby2/ellip, the
  telephone band-pass), drawn from the step's own stream `rng` as `apply_step` draws it; None for every other
  step (soxr and fir are linear phase with their delay removed; noise, rooms and codecs are not one filter)."""
  if step.name == "telephone":
    return _telephone_band(rate)
  if step.name == "lowpass":
    kind, _, coefficients = _lowpass_design(step.args, rng, rate)
    return None if kind in ("soxr", "fir") else coefficients
  return None


PHASE_PAD_S = 0.5  # zeros on each side before the FFT of turn_phase: the turn's response dies out well within


def turn_phase(target: np.ndarray, sos: np.ndarray, rate: int) -> np.ndarray:
  """`target` through the all-pass with the phase of the filter `sos`: its spectrum times H / |H| (1 where H = 0),
  computed on the whole signal with PHASE_PAD_S of zeros on each side (float32, same length)."""
  pad = int(PHASE_PAD_S * rate)
  n = len(target) + 2 * pad
  spectrum = np.fft.rfft(np.pad(np.asarray(target, np.float64), pad), n)
  _, h = scipy.signal.sosfreqz(sos, worN=np.fft.rfftfreq(n, 1.0 / rate), fs=rate)
  size = np.abs(h)
  unit = np.where(size > 0, h / np.where(size > 0, size, 1.0), 1.0)
  return np.fft.irfft(spectrum * unit, n)[pad:pad + len(target)].astype(np.float32)


def degrade(audio: np.ndarray, rate: int, chain: Chain, seed: int, upsample: str = "soxr",
            target_phase: bool = False) -> tuple[np.ndarray, np.ndarray, int]:
  """Degrades clean mono audio (frames,) at `rate` Hz. Returns (input, target, target_rate), both float32.

  target = the clean audio at the sample step's HIGH rate (or as is); input = target through the chain's steps
  in order (a `maybe` step only when `step_applies`), step i drawing from `np.random.default_rng([seed, i])`.
  `upsample` picks how the sample step (and lowpass soxr, telephone) comes back up (see `upsample`).
  `target_phase` (for training pairs, config.data.target_phase): the target is turned by the phase of every
  IIR filter the input went through (`passband_turn`, `turn_phase`); its magnitudes stay the clean ones. The
  input is the same either way. Why: which filter turned a passband's phase cannot be told from the input's
  magnitudes, and under a waveform loss against the unturned target the best real gain on a bin turned by more
  than 90 degrees is 0, so a network learns to cut clean passbands; evaluation keeps the clean target.
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
  check_steps(steps, target_rate, chain if isinstance(chain, str) else ",".join(map(str, steps)), run=True)
  target = audio_lib.resample(audio, rate, target_rate)
  x, turns = target, []
  for index, step in enumerate(steps):
    if step_applies(step, seed, index):
      x = apply_step(x, target_rate, step, np.random.default_rng([int(seed), index]), upsample)
      turn = passband_turn(step, target_rate, np.random.default_rng([int(seed), index])) if target_phase else None
      if turn is not None:
        turns.append(turn)
  x = x.copy() if x is target else x
  return x, (turn_phase(target, np.concatenate(turns), target_rate) if turns else target), target_rate
