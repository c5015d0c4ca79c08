"""Audio file I/O and resampling: soundfile for reading/writing, soxr for band-limited resampling.

Conventions used across sr_jax: audio is float32 numpy, shape (frames,) for mono or (frames, channels);
sample rates are ints in Hz. Writes are atomic (a temp file in the same folder, then `os.replace`), so a failed
run never leaves a partial output file.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import soundfile as sf
import soxr

from sr_jax.errors import UserError

MIN_RATE = 1000
MAX_RATE = 384000


def info(path: str) -> sf._SoundFileInfo:
  """soundfile's info for `path`; a missing or unreadable file is a `UserError`."""
  if not os.path.exists(path):
    raise UserError(f"audio file not found: {path}")
  if os.path.isdir(path):
    raise UserError(f"expected an audio file, got a folder: {path}")
  try:
    return sf.info(path)
  except Exception as e:  # soundfile raises LibsndfileError / RuntimeError / TypeError
    raise UserError(f"cannot read {path} as audio ({_reason(e)})") from None


def read(path: str, rate: int | None = None, mono: bool = False) -> tuple[np.ndarray, int]:
  """Reads `path` as float32. Returns (audio, rate).

  audio has shape (frames, channels), or (frames,) when `mono` (channels averaged). If `rate` is given the
  audio is resampled to it with soxr. Missing, corrupt, empty files and absurd sample rates raise `UserError`.
  """
  file_info = info(path)
  check_rate(file_info.samplerate, f"sample rate of {path}")
  try:
    audio, sr_in = sf.read(path, dtype="float32", always_2d=True)
  except Exception as e:
    raise UserError(f"cannot read {path} as audio ({_reason(e)})") from None
  if audio.shape[0] == 0:
    raise UserError(f"{path} has no audio (zero frames)")
  if mono:
    audio = audio.mean(axis=1)
  if rate is not None and rate != sr_in:
    audio = resample(audio, sr_in, rate)
    sr_in = rate
  return np.ascontiguousarray(audio, dtype=np.float32), int(sr_in)


def write(path: str, audio: np.ndarray, rate: int, subtype: str | None = None) -> None:
  """Writes float audio (frames,) or (frames, channels) atomically; the format follows the file extension."""
  check_rate(rate, "output sample rate")
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  ext = os.path.splitext(path)[1]
  fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=ext, dir=folder)
  os.close(fd)
  try:
    fmt = sf.available_formats()
    kind = ext.lstrip(".").upper()
    if kind not in fmt:
      raise UserError(f"cannot write {path}: unknown audio format {ext!r} (use .wav, .flac or .ogg)")
    sf.write(tmp, np.asarray(audio, dtype=np.float32), int(rate), subtype=subtype, format=kind)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the permissions a plain open() would
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def resample(audio: np.ndarray, rate_in: int, rate_out: int, quality: str = "VHQ") -> np.ndarray:
  """Band-limited (anti-aliased) resampling with soxr; (frames,) or (frames, channels) float32."""
  check_rate(rate_in, "input sample rate")
  check_rate(rate_out, "output sample rate")
  audio = np.asarray(audio, dtype=np.float32)
  if rate_in == rate_out:
    return audio.copy()
  return soxr.resample(audio, rate_in, rate_out, quality=quality).astype(np.float32, copy=False)


def resampled_length(frames: int, rate_in: int, rate_out: int) -> int:
  """The number of frames soxr returns for `frames` input frames (it rounds to the nearest frame)."""
  return int(round(frames * rate_out / rate_in))


def check_rate(rate, what: str = "sample rate") -> int:
  """A sample rate must be an int between 1 kHz and 384 kHz; anything else is a `UserError`."""
  if not isinstance(rate, (int, np.integer)) or not MIN_RATE <= int(rate) <= MAX_RATE:
    raise UserError(f"{what} {rate!r} Hz is out of range: it must be an integer from {MIN_RATE} to {MAX_RATE} Hz")
  return int(rate)


def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


def _reason(e: Exception) -> str:
  text = str(e).strip().splitlines()
  return text[-1] if text else type(e).__name__
