"""Objective evaluation of a model on clean files: metrics per file and over the set, metrics.json and a page.

For each clean reference file (read as mono at the model's rate, optionally cropped to `max_seconds`):

1. degrade it with the chain and the seed `degrade.file_seed(seed, name)` (name: the path relative to the data
   folder, '/' separators), once per upsampling method: "soxr" (the degraded *input* itself, what enhancing a
   real low-rate file starts from), "cubic" (the cubic-spline baseline of Kuleshov et al. 2017) and "linear";
   the noise and reverb steps draw the same numbers for all three (same seed), only the upsampling differs;
2. enhance the input the model was trained on (`degrade(..., upsample=config.data.upsample)`) with each enhancing
   system: "model" and, if asked, "collab" (the model with collaborative sampling);
3. score every system against the clean target with `sr_jax.metrics.all_metrics(target, estimate, rate, cutoff)`:
   LSD, LSD-HF, LSD-LF, SNR and SI-SDR, with the cut-off at the chain's LOW / 2 (the Nyquist frequency of the
   band-limited input), or rate / 2 without a sample step (then LSD-HF covers the Nyquist bin only); and with
   wideband PESQ and STOI where their packages are installed (`sr_jax.report.speech`).

Without a sample step the three upsampling methods give the same input, so "spline", "linear" and "input" are
equal. The summary of each system is the plain (unweighted) mean over the files: each file counts once, whatever
its length. A non-finite metric (a model that outputs NaN) is written as null, and a summary with one is null.
The layout of metrics.json, and how files are ranked: `sr_jax.report.schema`.

`write_report` writes the whole report into a hidden temporary folder next to the report folder and renames it
into place at the end, so a failed or interrupted run leaves no half report (and an old report replaced with
`overwrite` stays whole until the new one is complete): metrics.json with every file, index.html
(`sr_jax.report.html`) with every file's metrics in one table, and audio (WAVs) and spectrograms for at most
`max_assets` files (`schema.choose_assets`: the first, the best, median and worst by LSD gain, more spread over the
ranking), so that a set of thousands of files gives a report of the same size as one of ten. The chosen files are
known once all are scored: the signals those need are kept in memory meanwhile, up to `ASSET_CACHE_BYTES`; a chosen
file beyond that is read, degraded and enhanced again at the end (the model is deterministic: the same output).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import math
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
from absl import logging

from sr_jax.data import datasets
from sr_jax.errors import UserError
# Re-exported: bench/ and the tests read these names from here too.
from sr_jax.report.schema import (BASELINES, DEFAULT_MAX_ASSETS, ENHANCED, LOWER_IS_BETTER,  # noqa: F401
                                  METRICS, METRICS_FILE, PAGE_FILE, SYSTEMS, FileResult, choose_assets, document)

# sr_jax.metrics (jax) and sr_jax.data.degrade (scipy) take ~1.5 s to import: they are imported where they are used,
# so that launch/evaluate.py reports a bad flag or folder at once.
if TYPE_CHECKING:
  from sr_jax.data import degrade as degrade_lib

# An enhancing system: (degraded input (frames,), rate) -> (enhanced (frames,), rate), e.g. Enhancer.enhance_array.
EnhanceFn = Callable[[np.ndarray, int], tuple[np.ndarray, int]]
# A speech metric: (target, estimate, rate) -> value or None (sr_jax.report.speech.scorers).
SpeechFn = Callable[[np.ndarray, np.ndarray, int], "float | None"]

ASSET_SIGNALS = ("model_input", "model", "collab", "target")  # what a file's audio and spectrograms are made of
ASSET_CACHE_BYTES = 512 * 2**20  # signals kept for the files that may get assets; past this they are recomputed


# ----- inputs ----------------------------------------------------------------------------------------------------


def cutoff_hz(chain: degrade_lib.Chain, rate: int) -> float:
  """The LSD-HF/LF band edge: the chain's LOW / 2 (Nyquist of the band-limited input), or rate / 2 without one."""
  from sr_jax.data import degrade as degrade_lib  # noqa: PLC0415

  low, _ = degrade_lib.chain_rates(chain)
  return low / 2 if low is not None else rate / 2


def eval_rate(config, chain: degrade_lib.Chain) -> int:
  """The rate the model makes (config.data.rate), which a sample step's HIGH must equal (else `UserError`)."""
  from sr_jax.data import degrade as degrade_lib  # noqa: PLC0415

  rate = int(config.data.rate)
  high = degrade_lib.chain_rates(chain)[1]
  if high is not None and high != rate:
    raise UserError(f"the chain {chain!r} makes {high} Hz targets but the model makes {rate} Hz audio: use a "
                    f"sample step 'sample LOW {rate}'")
  return rate


def clean_files(folder: str, max_files: int = -1, exclude: str | None = None) -> list[str]:
  """The audio files under `folder` (recursively, sorted), at most `max_files` (-1: all), none under `exclude`.

  A missing folder, a folder without audio files and a corpus root (train/valid/test subfolders: evaluating
  its training files would be meaningless) are `UserError`s.
  """
  if not os.path.isdir(folder):
    what = "does not exist" if not os.path.exists(folder) else "is not a folder"
    raise UserError(f"data folder {folder} {what}: give --data=a folder of clean audio files")
  if os.path.isdir(os.path.join(folder, "train")) and os.path.isdir(os.path.join(folder, "test")):
    raise UserError(f"{folder} holds train/valid/test splits: evaluate one of them, e.g. "
                    f"--data={os.path.join(folder, 'test')}")
  files = datasets.audio_files(folder)
  if exclude is not None:
    exclude = os.path.abspath(exclude) + os.sep
    files = [f for f in files if not f.startswith(exclude)]
  if not files:
    raise UserError(f"no audio files in {folder} (looked for {', '.join(sorted(datasets.AUDIO_EXTENSIONS)[:6])}, "
                    "...)")
  if max_files is not None and max_files >= 0:
    files = files[:max_files]
  return files


def degraded(clean: np.ndarray, rate: int, chain: degrade_lib.Chain, seed: int,
             methods: Sequence[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
  """({upsampling method: degraded input}, target) of clean mono audio at the target `rate`."""
  from sr_jax.data import degrade as degrade_lib  # noqa: PLC0415

  inputs, target = {}, None
  for method in dict.fromkeys(methods):
    inputs[method], target, _ = degrade_lib.degrade(clean, rate, chain, seed, upsample=method)
  return inputs, target


# ----- metrics ---------------------------------------------------------------------------------------------------


def _finite(value: float) -> float | None:
  return float(value) if math.isfinite(value) else None


def score(target: np.ndarray, estimate: np.ndarray, rate: int, cutoff: float,
          speech: Mapping[str, SpeechFn] | None = None) -> dict[str, float | None]:
  """`sr_jax.metrics.all_metrics` of one system, then the `speech` metrics ({name: fn}), non-finite values as
  None."""
  from sr_jax import metrics as metrics_lib  # noqa: PLC0415

  out = {k: _finite(v) for k, v in metrics_lib.all_metrics(target, estimate, rate, cutoff).items()}
  for name, fn in (speech or {}).items():
    value = fn(target, estimate, rate)
    out[name] = None if value is None else _finite(value)
  return out


def _fit(out: np.ndarray, out_rate: int, rate: int, length: int, system: str) -> np.ndarray:
  """An enhancer's output as mono float32 of exactly the target's rate and length."""
  out = np.asarray(out, dtype=np.float32)
  if out.ndim == 2 and out.shape[1] == 1:
    out = out[:, 0]
  if out.ndim != 1:
    raise ValueError(f"{system}: the enhancer returned shape {out.shape}, expected mono (frames,)")
  if out_rate != rate:
    raise ValueError(f"{system}: the enhancer returned {out_rate} Hz audio for a {rate} Hz target")
  if len(out) != length:
    raise ValueError(f"{system}: the enhancer returned {len(out)} frames for a {length}-frame input")
  return out


def _enhance(inputs: Mapping[str, np.ndarray], target: np.ndarray, rate: int, enhancers: Mapping[str, EnhanceFn],
             model_upsample: str) -> dict[str, np.ndarray]:
  """The signals of one file (see `evaluate_clean`): the enhancers run on the input upsampled with
  `model_upsample`."""
  signals = {"model_input": inputs[model_upsample]}
  for system, enhance in enhancers.items():
    signals[system] = _fit(*enhance(inputs[model_upsample], rate), rate, len(target), system)
  for system, method in BASELINES.items():
    signals[system] = inputs[method]
  signals["target"] = target
  return signals


def _score_all(signals: Mapping[str, np.ndarray], systems: Sequence[str], rate: int, cutoff: float,
               speech: Mapping[str, SpeechFn] | None) -> dict[str, dict[str, float | None]]:
  return {system: score(signals["target"], signals[system], rate, cutoff, speech) for system in systems}


def evaluate_clean(clean: np.ndarray, rate: int, chain: degrade_lib.Chain, seed: int,
                   enhancers: Mapping[str, EnhanceFn], model_upsample: str = "soxr",
                   speech: Mapping[str, SpeechFn] | None = None,
                   ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, float | None]]]:
  """Signals and metrics of one clean mono file at the target `rate` (see the module docstring).

  Returns (signals, metrics): signals has one array per system (`enhancers`' names, then "spline", "linear",
  "input"), "model_input" (what the enhancers got) and "target"; metrics has {system: {metric: value}}, with the
  `speech` metrics ({name: fn}, see `sr_jax.report.speech.scorers`) after the five of `METRICS`.
  """
  inputs, target = degraded(clean, rate, chain, seed, [model_upsample] + list(BASELINES.values()))
  signals = _enhance(inputs, target, rate, enhancers, model_upsample)
  return signals, _score_all(signals, list(enhancers) + list(BASELINES), rate, cutoff_hz(chain, rate), speech)


@dataclasses.dataclass
class _Prepared:
  """A file read and degraded, ready for the enhancers."""
  name: str
  seconds: float
  inputs: dict[str, np.ndarray]
  target: np.ndarray


def _prepare(path: str, root: str, chain: degrade_lib.Chain, rate: int, seed: int, model_upsample: str,
             max_seconds: float | None, silence_db: float,
             counter: datasets.SkipCounter | None = None) -> _Prepared | None:
  """A file read as mono at `rate`, cropped and degraded (see the module docstring); None if it is skipped."""
  from sr_jax.data import degrade as degrade_lib  # noqa: PLC0415

  clean = datasets.load_clean(path, rate, silence_db, counter)
  if clean is None:
    return None
  if max_seconds is not None:
    clean = clean[:max(1, int(round(max_seconds * rate)))]
  name = datasets.file_key(path, root)
  inputs, target = degraded(clean, rate, chain, degrade_lib.file_seed(seed, name),
                            [model_upsample] + list(BASELINES.values()))
  return _Prepared(name, len(clean) / rate, inputs, target)


def evaluate_files(files: Sequence[str], root: str, enhancers: Mapping[str, EnhanceFn], chain: degrade_lib.Chain,
                   rate: int, seed: int = 0, model_upsample: str = "soxr", max_seconds: float | None = None,
                   silence_db: float = -60.0, speech: Mapping[str, SpeechFn] | None = None,
                   ) -> Iterator[FileResult]:
  """Evaluates the files in order, yielding one `FileResult` per usable file.

  Files are read as mono at `rate` (soxr); unreadable, empty or silent ones are skipped with one warning each, and
  a summary line at the end; `UserError` if none is usable. `speech`: the speech metrics to add ({name: fn}, e.g.
  `sr_jax.report.speech.scorers()`); default: none.

  The enhancers run in the calling thread; one worker thread meanwhile reads and degrades the next file and scores
  the previous one, so that this work hides behind the model's (a model on the CPU leaves a core to it, one on an
  accelerator the CPU). At most three files' signals are in memory at a time.
  """
  speech = speech or {}
  counter = datasets.SkipCounter()
  cutoff, systems = cutoff_hz(chain, rate), list(enhancers) + list(BASELINES)

  def prepare(i: int):
    return _prepare(files[i], root, chain, rate, seed, model_upsample, max_seconds, silence_db, counter)

  with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="sr_jax-evaluate") as worker:
    upcoming = worker.submit(prepare, 0) if files else None
    scoring = None  # (prepared, signals, future metrics) of the file before
    for i in range(len(files)):
      prepared = upcoming.result()
      upcoming = worker.submit(prepare, i + 1) if i + 1 < len(files) else None
      if prepared is None:
        continue
      start = time.time()
      signals = _enhance(prepared.inputs, prepared.target, rate, enhancers, model_upsample)
      logging.info("%s: %.1f s of audio enhanced in %.1f s", prepared.name, prepared.seconds, time.time() - start)
      if scoring is not None:
        yield FileResult(scoring[0].name, scoring[0].seconds, rate, scoring[1], scoring[2].result())
      scoring = (prepared, signals, worker.submit(_score_all, signals, systems, rate, cutoff, speech))
    if scoring is not None:
      yield FileResult(scoring[0].name, scoring[0].seconds, rate, scoring[1], scoring[2].result())
  counter.log("evaluation files")
  if counter.num_skipped == counter.seen:
    raise UserError(f"no usable audio file to evaluate in {root} ({counter.summary()})")


def _signals_again(path: str, root: str, enhancers: Mapping[str, EnhanceFn], chain: degrade_lib.Chain, rate: int,
                   seed: int, model_upsample: str, max_seconds: float | None, silence_db: float) -> FileResult:
  """A file's signals computed again (as `evaluate_files` did; the metrics left empty)."""
  prepared = _prepare(path, root, chain, rate, seed, model_upsample, max_seconds, silence_db)
  if prepared is None:
    raise UserError(f"{path} changed during the evaluation: it is no longer usable")
  signals = _enhance(prepared.inputs, prepared.target, rate, enhancers, model_upsample)
  return FileResult(prepared.name, prepared.seconds, rate, signals, {})


# ----- the report folder -----------------------------------------------------------------------------------------


def check_report_dir(report_dir: str, overwrite: bool) -> None:
  """`UserError` unless `report_dir` is new (or an empty folder), or an existing report and `overwrite` is set.

  With `overwrite`, only a folder holding a metrics.json or an index.html is replaced: a typo such as
  --report=$HOME must not delete a home folder.
  """
  if not os.path.lexists(report_dir):
    return
  if not os.path.isdir(report_dir) or os.path.islink(report_dir):
    raise UserError(f"report path {report_dir} exists and is not a folder: pick another --report")
  contents = os.listdir(report_dir)
  if not contents:
    return
  if not overwrite:
    raise UserError(f"report folder {report_dir} already exists; pass --overwrite to replace it")
  if not {METRICS_FILE, PAGE_FILE} & set(contents):
    raise UserError(f"--report={report_dir} is not empty and holds no {METRICS_FILE} or {PAGE_FILE}: refusing to "
                    "replace a folder that is not a report")


def _commit(tmp: str, report_dir: str) -> None:
  """Moves the finished temporary folder to `report_dir`, replacing an old report only once the new one is whole."""
  old = None
  if os.path.lexists(report_dir):
    old = tempfile.mkdtemp(prefix=f".{os.path.basename(report_dir)}.old-", dir=os.path.dirname(report_dir))
    os.rename(report_dir, os.path.join(old, "report"))
  os.rename(tmp, report_dir)
  if old is not None:
    shutil.rmtree(old, ignore_errors=True)


def write_report(report_dir: str, files: Sequence[str], root: str, enhancers: Mapping[str, EnhanceFn], chain: str,
                 checkpoint: str, rate: int, seed: int = 0, model_upsample: str = "soxr",
                 max_seconds: float | None = None, silence_db: float = -60.0, overwrite: bool = False,
                 progress: Callable[[FileResult], None] | None = None, stride: int | None = None,
                 window: int | None = None, max_assets: int = DEFAULT_MAX_ASSETS,
                 speech: Mapping[str, SpeechFn] | None = None, cache_bytes: int = ASSET_CACHE_BYTES) -> dict:
  """Evaluates `files` and writes the report folder: metrics.json, index.html, and WAVs and spectrograms of at most
  `max_assets` files (-1: all, 0: none). `stride` and `window` (the enhancers' hop between windows and their
  window) are only recorded in metrics.json. `speech`: the speech metrics ({name: fn}); default: those installed
  (`sr_jax.report.speech.scorers`), {} for none. `cache_bytes`: how much of the chosen files' signals may be kept in
  memory instead of being recomputed.

  Returns the metrics.json document. `progress(result)` is called after each file. See the module docstring.
  """
  from sr_jax.report import html  # noqa: PLC0415  (PIL, matplotlib's colormaps: only when a report is written)

  report_dir = os.path.abspath(report_dir)
  check_report_dir(report_dir, overwrite)
  if speech is None:
    from sr_jax.report import speech as speech_lib  # noqa: PLC0415

    speech = speech_lib.scorers()
  parent = os.path.dirname(report_dir)
  os.makedirs(parent, exist_ok=True)
  tmp = os.path.join(parent, f".{os.path.basename(report_dir)}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
  os.makedirs(tmp)
  try:
    entries, kept, kept_bytes = [], {}, 0
    for result in evaluate_files(files, root, enhancers, chain, rate, seed, model_upsample, max_seconds,
                                 silence_db, speech):
      entries.append(result.entry())
      if max_assets != 0:
        signals = {k: result.signals[k] for k in ASSET_SIGNALS if k in result.signals}
        size = sum(v.nbytes for v in signals.values())
        if kept_bytes + size <= cache_bytes:
          kept[len(entries) - 1], kept_bytes = dataclasses.replace(result, signals=signals), kept_bytes + size
      if progress is not None:
        progress(result)
    paths = {datasets.file_key(path, root): path for path in files}
    assets, folders = {}, set()
    for index, why in choose_assets(entries, max_assets).items():
      result = kept.pop(index, None)
      if result is None:  # beyond the cache: the same file read, degraded and enhanced again
        result = _signals_again(paths[entries[index]["name"]], root, enhancers, chain, rate, seed, model_upsample,
                                max_seconds, silence_db)
      assets[index] = {**html.write_file_assets(tmp, result, folders), "why": why}
    kept.clear()
    doc = document(chain, checkpoint, entries, list(enhancers) + list(BASELINES),
                   [{"name": entries[i]["name"], **asset} for i, asset in assets.items()], stride, window)
    with open(os.path.join(tmp, METRICS_FILE), "w", encoding="utf-8") as f:
      json.dump(doc, f, indent=1, allow_nan=False)
      f.write("\n")
    html.write_page(os.path.join(tmp, PAGE_FILE), doc, assets, cutoff_hz(chain, rate), rate)
    check_report_dir(report_dir, overwrite)  # nobody made it meanwhile
    _commit(tmp, report_dir)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return doc
