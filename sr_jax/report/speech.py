"""Optional speech metrics of the evaluation report: wideband PESQ and STOI, when their packages are installed.

* "pesq": PESQ, ITU-T P.862.2 wideband mode (PyPI `pesq`), MOS-LQO from about 1.0 (bad) to 4.64 (the score of a
  signal against itself). P.862.2 is defined at 16 kHz: audio at another rate is resampled to 16 kHz (soxr) first.
* "stoi": STOI, short-time objective intelligibility (Taal et al. 2011; PyPI `pystoi`), 0 to 1 (1: identical);
  pystoi resamples to its own 10 kHz itself.

Both are higher-is-better and meant for speech: PESQ finds no utterance in some music or in near silence, and STOI
needs at least 30 frames (~0.4 s) that are not silent; a file where a metric cannot be computed gets None (null in
metrics.json) for it. Install both with `pip install -e ".[speech]"`. A metric whose package is missing is skipped
silently: its key is absent from metrics.json and its column from the page (one info line in the log says which).
"""

from __future__ import annotations

import importlib
import math
import warnings
from collections.abc import Callable

import numpy as np
from absl import logging

from sr_jax.data import audio as audio_lib

PESQ_RATE = 16000  # P.862.2 (wideband PESQ) is defined at 16 kHz
# P.862 is defined for stimuli of about 8-30 s, and the pesq package's C code crashes the process (a segmentation
# fault, nothing Python can catch) on files of a few minutes: longer files are scored in equal consecutive segments
# of at most this length, and their scores averaged, weighted by length.
PESQ_MAX_SECONDS = 30.0
PACKAGES = {"pesq": "pesq", "stoi": "pystoi"}  # metric -> the module that computes it

# metric name -> score(reference, estimate, rate) -> float | None
Scorer = Callable[[np.ndarray, np.ndarray, int], float | None]


def _import(module: str):
  """The module, or None when it is not installed (or cannot be imported)."""
  try:
    return importlib.import_module(module)
  except ImportError:
    return None


def _usable(reference: np.ndarray, estimate: np.ndarray) -> bool:
  """Both finite (a model that outputs NaN gets no score) and not all zeros (PESQ divides by the peak)."""
  return bool(np.all(np.isfinite(reference)) and np.all(np.isfinite(estimate)) and np.any(reference)
              and np.any(estimate))


def pesq_wb(module, reference: np.ndarray, estimate: np.ndarray, rate: int) -> float | None:
  """Wideband PESQ of `estimate` against `reference` (mono, same length, at `rate`), or None where the pesq
  package reports an error (no utterance found, too short) in every segment (see PESQ_MAX_SECONDS)."""
  if not _usable(reference, estimate):
    return None
  reference, estimate = np.asarray(reference, np.float64), np.asarray(estimate, np.float64)
  if rate != PESQ_RATE:
    reference = audio_lib.resample(reference, rate, PESQ_RATE)
    estimate = audio_lib.resample(estimate, rate, PESQ_RATE)
  limit = int(PESQ_MAX_SECONDS * PESQ_RATE)
  count = -(-len(reference) // limit)
  scores, weights = [], []
  for ref, est in zip(np.array_split(reference, count), np.array_split(estimate, count)):
    value = module.pesq(PESQ_RATE, ref, est, "wb", on_error=module.PesqError.RETURN_VALUES)
    # On an error the package returns a negative error code instead of a score (scores are >= ~1.0).
    if isinstance(value, float) and math.isfinite(value) and value >= 0:
      scores.append(value)
      weights.append(len(ref))
  return float(np.average(scores, weights=weights)) if scores else None


def stoi(module, reference: np.ndarray, estimate: np.ndarray, rate: int) -> float | None:
  """STOI of `estimate` against `reference` (mono, same length, at `rate`), or None where pystoi cannot compute it
  (it then warns and returns 1e-5)."""
  if not _usable(reference, estimate):
    return None
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    value = float(module.stoi(np.asarray(reference, np.float64), np.asarray(estimate, np.float64), rate,
                              extended=False))
  if any("Not enough STFT frames" in str(w.message) for w in caught) or not math.isfinite(value):
    return None
  return value


_SCORERS = {"pesq": pesq_wb, "stoi": stoi}


def scorers() -> dict[str, Scorer]:
  """{metric: score function} of the speech metrics whose package imports here, in report order ("pesq",
  "stoi"); the others are left out (logged once per call at info level)."""
  out, missing = {}, []
  for name, module_name in PACKAGES.items():
    module = _import(module_name)
    if module is None:
      missing.append(f"{name} (pip install {module_name})")
    else:
      out[name] = lambda ref, est, rate, fn=_SCORERS[name], module=module: fn(module, ref, est, rate)
  if missing:
    logging.info("speech metrics not computed, package missing: %s", ", ".join(missing))
  return out
