"""A small piano-like additive synthesiser in numpy (no soundfont, no binary, no download).

Each note is a sum of damped partials of a stiff string:

  f_n = n f0 sqrt(1 + B n^2)          (inharmonicity B grows towards the treble)
  a_n(t) = A_n exp(-d_n t)            (d_n = d_1 (1 + (f_n / F_DAMP)^2): higher partials decay faster;
                                       d_1 grows with pitch: low notes ring longer)

plus a short low-passed hammer-noise burst at the onset. Velocity sets the level and the brightness (the
spectral slope of A_n). When the key is released the sound decays with a damper time constant. Partials at
or above Nyquist are dropped, so nothing aliases. Rendering is vectorised per note over partials x samples.

A note list is a float array of shape (notes, 4): onset seconds, duration seconds, MIDI pitch, MIDI velocity.
`render_fluidsynth` renders the same note list with a General MIDI soundfont through Debian's `fluidsynth`.
Note lists come from music21 scores (`score_notes`: tempo from the metronome marks, dynamics, ties, a little
velocity humanisation) or from `random_notes` (random melodies over triads, for the tiny corpus).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
import warnings

import numpy as np
import soundfile as sf

from sr_jax.data import audio as audio_lib
from sr_jax.errors import UserError

MAX_PARTIALS = 40
F_DAMP = 2000.0  # Hz; partial n decays (1 + (f_n / F_DAMP)^2) times faster than the fundamental
RELEASE_TAU = 0.06  # s; damper time constant after the key is released
ATTACK = 0.002  # s; linear onset ramp of the partials
HAMMER_TAU = 0.004  # s; decay of the hammer-noise burst
HAMMER_LEVEL = 0.12  # hammer-noise peak relative to the note's partial sum at full velocity
FLOOR_DB = -60.0  # a note is cut once its envelope falls this far below its start
PEAK_DBFS = -1.0
_BLOCK = 64  # frames per block in damped_sines
_ROWS = 40  # blocks per matrix product (keeps each product under OpenBLAS's multithreading threshold)


def midi_to_hz(pitch) -> np.ndarray:
  """Equal temperament, A4 = MIDI 69 = 440 Hz."""
  return 440.0 * 2.0 ** ((np.asarray(pitch, dtype=np.float64) - 69.0) / 12.0)


def inharmonicity(pitch: float) -> float:
  """Stiffness coefficient B: about 1e-4 at A0, rising to about 3e-3 at C8."""
  return 1e-4 * 10.0 ** (1.5 * (float(pitch) - 21.0) / 87.0)


def fundamental_tau(pitch: float) -> float:
  """Decay time constant (s) of the fundamental: about 4 s at A0, 1 s at A4, 0.3 s at C8."""
  return 4.0 * 2.0 ** (-(float(pitch) - 21.0) / 24.0)


def level(velocity: float) -> float:
  """Linear gain of a note for a MIDI velocity (1..127): roughly 40 dB of dynamic range."""
  v = np.clip(float(velocity), 1.0, 127.0) / 127.0
  return float(v ** 2)


def partials(pitch: float, velocity: float, rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(frequencies Hz, amplitudes, decay rates 1/s) of the partials of one note below Nyquist.

  Amplitudes fall as n^-slope, with a smaller slope (a brighter tone) for a harder strike; they sum to
  `level(velocity)`.
  """
  f0 = float(midi_to_hz(pitch))
  n = np.arange(1, MAX_PARTIALS + 1, dtype=np.float64)
  freqs = n * f0 * np.sqrt(1.0 + inharmonicity(pitch) * n ** 2)
  keep = freqs < rate / 2.0
  n, freqs = n[keep], freqs[keep]
  brightness = np.clip(float(velocity), 1.0, 127.0) / 127.0
  amps = n ** -(2.2 - 1.2 * brightness)
  amps *= level(velocity) / amps.sum()
  decays = (1.0 + (freqs / F_DAMP) ** 2) / fundamental_tau(pitch)
  return freqs, amps, decays


def note_length(pitch: float, duration: float) -> float:
  """Seconds a note sounds: its duration plus the damper release, at most until it has decayed by FLOOR_DB."""
  ln_floor = -FLOOR_DB / 20.0 * np.log(10.0)
  natural = ln_floor * fundamental_tau(pitch)
  return float(min(max(duration, 0.0) + ln_floor * RELEASE_TAU, natural))


def hammer(velocity: float, rate: int, rng: np.random.Generator) -> np.ndarray:
  """The hammer-noise burst: white noise, low-passed (brighter for harder strikes), decaying in ~HAMMER_TAU."""
  frames = max(int(round(6 * HAMMER_TAU * rate)), 1)
  noise = rng.standard_normal(frames)
  noise = np.convolve(noise, _hammer_kernel(int(round(np.clip(velocity, 1, 127))), rate))[:frames]
  noise *= np.exp(-np.arange(frames) / (HAMMER_TAU * rate))
  noise *= HAMMER_LEVEL * level(velocity) / max(np.abs(noise).max(), 1e-9)
  return noise


def damped_sines(freqs: np.ndarray, amps: np.ndarray, decays: np.ndarray, frames: int, rate: int) -> np.ndarray:
  """sum_n amps[n] exp(-decays[n] t) sin(2 pi freqs[n] t) for t = arange(frames) / rate, in float64.

  With z_n = exp((-d_n + i w_n) / rate) the sum is Im sum_n A_n z_n^(jK + k): splitting the frame index into
  blocks of K makes it Im(S^T B) = Im(S)^T Re(B) + Re(S)^T Im(B) with S[n, j] = A_n z_n^(jK) and
  B[n, k] = z_n^k, one real matrix product; exp is evaluated only N (J + K) times instead of N x frames.
  """
  blocks = -(-frames // _BLOCK)
  s = (-decays + 2j * np.pi * freqs)[:, None] / rate
  inner = np.exp(s * np.arange(_BLOCK)[None, :])
  outer = amps[:, None] * np.exp(s * (_BLOCK * np.arange(blocks))[None, :])
  lhs = np.concatenate([outer.imag, outer.real], axis=0).T.copy()  # (blocks, 2N)
  rhs = np.concatenate([inner.real, inner.imag], axis=0)  # (2N, block)
  out = np.empty((blocks, _BLOCK))
  for i in range(0, blocks, _ROWS):  # small products: a multithreaded BLAS stays on one thread (much faster here)
    np.matmul(lhs[i:i + _ROWS], rhs, out=out[i:i + _ROWS])
  return out.reshape(-1)[:frames]


@functools.lru_cache(maxsize=1024)
def _hammer_kernel(velocity: int, rate: int, taps: int = 31) -> np.ndarray:
  """Windowed-sinc low-pass FIR for the hammer noise; its cut-off rises with velocity (a brighter knock)."""
  cutoff = min(1000.0 + 6000.0 * velocity / 127.0, 0.45 * rate) / rate
  k = np.arange(taps) - (taps - 1) / 2.0
  h = 2.0 * cutoff * np.sinc(2.0 * cutoff * k) * np.hanning(taps)
  return h / h.sum()


def render_note(pitch: float, velocity: float, duration: float, rate: int,
                rng: np.random.Generator | None = None, hammer_noise: bool = True) -> np.ndarray:
  """One note (float64, unnormalised), `note_length` seconds long: partials x envelope + hammer noise."""
  frames = max(int(np.ceil(note_length(pitch, duration) * rate)), 1)
  freqs, amps, decays = partials(pitch, velocity, rate)
  if len(freqs) == 0:
    return np.zeros(frames)
  tone = damped_sines(freqs, amps, decays, frames, rate)
  ramp = min(int(ATTACK * rate), frames)
  tone[:ramp] *= np.arange(ramp) / max(ramp, 1)
  off = int(round(max(duration, 0.0) * rate))
  if off < frames:
    tone[off:] *= np.exp(-np.arange(frames - off) / (RELEASE_TAU * rate))
  if hammer_noise:
    burst = hammer(velocity, rate, rng if rng is not None else np.random.default_rng(0))
    tone[:len(burst)] += burst[:frames]
  return tone


def render_notes(notes: np.ndarray, rate: int, seed: int = 0, tail: float = 0.25) -> np.ndarray:
  """Mixes a note list (onset s, duration s, pitch, velocity) into mono float32, peak-normalised to -1 dBFS.

  The output lasts until the last note has died away plus `tail` seconds. Deterministic for a given seed.
  """
  notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
  if len(notes) == 0:
    return np.zeros(max(int(tail * rate), 1), dtype=np.float32)
  notes = notes[np.lexsort((notes[:, 2], notes[:, 0]))]
  ends = [on + note_length(p, d) for on, d, p, _ in notes]
  out = np.zeros(int(np.ceil((max(ends) + tail) * rate)) + 1)
  rng = np.random.default_rng(seed)
  for on, dur, pitch, vel in notes:
    x = render_note(pitch, vel, dur, rate, rng)
    start = int(round(on * rate))
    out[start:start + len(x)] += x
  return normalize_peak(out)


def normalize_peak(audio: np.ndarray, dbfs: float = PEAK_DBFS) -> np.ndarray:
  """Scales float audio so its absolute peak is `dbfs` (silence stays silence); returns float32."""
  audio = np.asarray(audio, dtype=np.float64)
  peak = np.abs(audio).max() if audio.size else 0.0
  if peak > 0:
    audio = audio * (10.0 ** (dbfs / 20.0) / peak)
  return audio.astype(np.float32)


def render(notes: np.ndarray, rate: int, renderer: str = "synth", soundfont: str | None = None,
           seed: int = 0) -> np.ndarray:
  """A note list as mono float32 at `rate`, peak -1 dBFS, with renderer "synth" or "fluidsynth"."""
  if renderer == "fluidsynth":
    return render_fluidsynth(notes, rate, soundfont)
  return render_notes(notes, rate, seed=seed)


DEFAULT_SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
FLUIDSYNTH_RATE = 44100
_INSTALL_HINT = "install them with `apt-get install fluidsynth fluid-soundfont-gm` (or pass --soundfont=PATH)"


def find_soundfont(soundfont: str | None = None) -> str:
  """Checks that the `fluidsynth` binary and the soundfont exist; returns the soundfont's absolute path."""
  path = os.path.abspath(os.path.expanduser(soundfont or DEFAULT_SOUNDFONT))
  missing = []
  if shutil.which("fluidsynth") is None:
    missing.append("the `fluidsynth` program is not on PATH")
  if not os.path.isfile(path):
    missing.append(f"soundfont {path} not found")
  if missing:
    raise UserError(f"the fluidsynth renderer needs fluidsynth and a soundfont: {'; '.join(missing)}; "
                    + _INSTALL_HINT)
  return path


def midi_bytes(notes: np.ndarray, ticks_per_quarter: int = 480) -> bytes:
  """A format-0 Standard MIDI File (120 bpm, piano program 0) playing a note list."""
  ticks_per_second = 2 * ticks_per_quarter  # 120 bpm
  events = []  # (tick, 0 = note off / 1 = note on, message bytes)
  for on, dur, pitch, vel in np.asarray(notes, dtype=np.float64).reshape(-1, 4):
    key = int(np.clip(round(pitch), 0, 127))
    start = int(round(on * ticks_per_second))
    end = max(int(round((on + dur) * ticks_per_second)), start + 1)
    events.append((start, 1, bytes([0x90, key, int(np.clip(round(vel), 1, 127))])))
    events.append((end, 0, bytes([0x80, key, 0])))
  track = bytearray(b"\x00\xff\x51\x03\x07\xa1\x20" + b"\x00\xc0\x00")  # tempo 500000 us/quarter; piano
  last = 0
  for tick, _, msg in sorted(events):
    track += _varlen(tick - last) + msg
    last = tick
  track += b"\x00\xff\x2f\x00"
  header = b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big")
  header += ticks_per_quarter.to_bytes(2, "big")
  return header + b"MTrk" + len(track).to_bytes(4, "big") + bytes(track)


def _varlen(value: int) -> bytes:
  out = [value & 0x7F]
  value >>= 7
  while value:
    out.append(0x80 | (value & 0x7F))
    value >>= 7
  return bytes(reversed(out))


def render_fluidsynth(notes: np.ndarray, rate: int, soundfont: str | None = None, gain: float = 0.5,
                      tail: float = 0.25, midi: bytes | None = None) -> np.ndarray:
  """Renders a note list with fluidsynth (a MIDI file in a temp folder), mono float32 peak -1 dBFS at `rate`;
  `midi` is the MIDI file to render (default: `midi_bytes(notes)`, the piano), trimmed by the notes' sound."""
  soundfont = find_soundfont(soundfont)
  with tempfile.TemporaryDirectory(prefix="sr_jax-fluidsynth-") as tmp:
    mid, wav = os.path.join(tmp, "in.mid"), os.path.join(tmp, "out.wav")
    with open(mid, "wb") as f:
      f.write(midi_bytes(notes) if midi is None else midi)
    cmd = ["fluidsynth", "-ni", "-q", "-F", wav, "-T", "wav", "-O", "float", "-r", str(FLUIDSYNTH_RATE),
           "-g", str(gain), soundfont, mid]
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0 or not os.path.exists(wav):
      raise RuntimeError(f"fluidsynth failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    out, sr_out = sf.read(wav, dtype="float32", always_2d=True)
  out = out.mean(axis=1)
  loud = np.flatnonzero(np.abs(out) > 1e-4)
  out = out[:loud[-1] + 1 + int(tail * sr_out)] if len(loud) else out[:int(tail * sr_out) + 1]
  return normalize_peak(audio_lib.resample(out, sr_out, rate))


# ----------------------------------------------------------------------------------------------------------
# Where note lists come from: music21 scores, random melodies.

MAX_PIECE_SECONDS = 180.0
DEFAULT_BPM = 100.0
DEFAULT_VELOCITY = 80
VELOCITY_JITTER = 6.0
DYNAMICS = {"ppp": 30, "pp": 42, "p": 55, "mp": 68, "mf": 80, "f": 95, "ff": 108, "fff": 120}


def score_notes(path: str, seed: int, max_seconds: float = MAX_PIECE_SECONDS) -> np.ndarray:
  """Parses a score with music21; returns its notes (onset s, duration s, pitch, velocity), tied notes merged,
  tempo from the metronome marks, velocity from the dynamics plus a seeded jitter, cut at `max_seconds`."""
  from music21 import chord, converter, dynamics, note, stream, tempo  # pylint: disable=import-outside-toplevel

  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    score = converter.parse(path, forceSource=True)
  if isinstance(score, stream.Opus):
    score = score.scores[0]
  marks, events = {}, []
  for part in list(score.parts) or [score]:
    flat = part.flatten()
    for mark in flat.getElementsByClass(tempo.MetronomeMark):
      bpm = mark.getQuarterBPM()
      if bpm and (float(mark.offset) not in marks or mark.number is not None):
        marks[float(mark.offset)] = float(np.clip(bpm, 40.0, 200.0))
    velocity, tied = DEFAULT_VELOCITY, {}
    for el in flat.getElementsByClass((note.Note, chord.Chord, dynamics.Dynamic)):
      if isinstance(el, dynamics.Dynamic):
        velocity = DYNAMICS.get(str(el.value), velocity)
        continue
      start, length = float(el.offset), float(el.duration.quarterLength)
      if length <= 0:  # grace notes
        continue
      for n in (el.notes if isinstance(el, chord.Chord) else [el]):
        pitch, tie = n.pitch.midi, n.tie or el.tie
        if tie is not None and tie.type in ("stop", "continue") and pitch in tied:
          events[tied[pitch]][1] = start + length
        else:
          events.append([start, start + length, pitch, velocity])
          tied.pop(pitch, None)
          if tie is not None and tie.type == "start":
            tied[pitch] = len(events) - 1
        if tie is not None and tie.type == "stop":
          tied.pop(pitch, None)
  if not events:
    raise ValueError("no notes")
  ev = np.asarray(events, dtype=np.float64)
  onset, end = quarters_to_seconds(ev[:, 0], marks), quarters_to_seconds(ev[:, 1], marks)
  onset, end = onset - onset.min(), end - onset.min()
  keep = onset < max_seconds
  rng = np.random.default_rng(seed)
  velocity = np.clip(np.round(ev[:, 3] + rng.normal(0.0, VELOCITY_JITTER, len(ev))), 20, 120)
  notes = np.stack([onset, np.minimum(end, max_seconds) - onset, ev[:, 2], velocity], axis=1)[keep]
  return notes[np.lexsort((notes[:, 2], notes[:, 0]))]


def quarters_to_seconds(quarters: np.ndarray, marks: dict[float, float]) -> np.ndarray:
  """Offsets in quarter notes -> seconds, for tempo marks {offset: quarter bpm} (DEFAULT_BPM before the first)."""
  knots = sorted(marks.items())
  if not knots or knots[0][0] > 0:
    knots.insert(0, (0.0, DEFAULT_BPM))
  q = np.array([k for k, _ in knots])
  spb = 60.0 / np.array([b for _, b in knots])  # seconds per quarter
  at = np.concatenate([[0.0], np.cumsum(np.diff(q) * spb[:-1])])
  i = np.clip(np.searchsorted(q, quarters, side="right") - 1, 0, len(q) - 1)
  return at[i] + (quarters - q[i]) * spb[i]


def random_notes(rng: np.random.Generator, seconds: float) -> np.ndarray:
  """A random melody over triads in a random major or minor key, starting within `seconds`."""
  tonic = 48 + int(rng.integers(0, 12))
  scale = np.array([0, 2, 4, 5, 7, 9, 11] if rng.random() < 0.5 else [0, 2, 3, 5, 7, 8, 10])
  beat = rng.uniform(0.3, 0.6)

  def pitch(degree):
    return tonic + 12 * (degree // 7) + scale[degree % 7]

  notes, t = [], 0.0
  while t < seconds:
    root = int(rng.integers(0, 7))
    notes += [[t, 1.9 * beat, pitch(root + d), rng.integers(45, 75)] for d in (0, 2, 4)]
    t += 2 * beat
  t, degree = 0.0, int(rng.integers(9, 14))
  while t < seconds:
    dur = beat * rng.choice([0.5, 0.5, 1.0, 1.0, 1.5, 2.0])
    degree = int(np.clip(degree + rng.integers(-2, 3), 7, 20))
    notes.append([t, 0.9 * dur, pitch(degree), rng.integers(60, 110)])
    t += dur
  return np.asarray(notes, dtype=np.float64)


def fit_length(audio: np.ndarray, frames: int, rate: int, fade: float = 0.02) -> np.ndarray:
  """Cuts or zero-pads audio to `frames`, fades out the last `fade` seconds, renormalises to -1 dBFS."""
  out = np.zeros(frames)
  out[:min(frames, len(audio))] = audio[:frames]
  n = min(int(fade * rate), frames)
  out[frames - n:] *= np.linspace(1.0, 0.0, n)
  return normalize_peak(out)
