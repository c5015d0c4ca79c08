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
   band-limited input), or rate / 2 without a sample step (then LSD-HF covers the Nyquist bin only).

Without a sample step the three upsampling methods give the same input, so "spline", "linear" and "input" are
equal. The summary of each system is the plain (unweighted) mean over the files: each file counts once, whatever
its length. A non-finite metric (a model that outputs NaN) is written as null, and a summary with one is null.

metrics.json::

  {"chain": str, "checkpoint": str, ["stride": int, "window": int (the model's hop between windows and its window,
   from launch/evaluate.py),]
   "files": [{"name": str, "seconds": float, "model": {METRICS}, ["collab": {METRICS},] "spline": {METRICS},
              "linear": {METRICS}, "input": {METRICS}}, ...],
   "summary": {"model": {METRICS}, ["collab": {METRICS},] "spline": {...}, "linear": {...}, "input": {...}}}

with METRICS = {"lsd": float, "lsd_hf": float, "lsd_lf": float, "snr": float, "si_sdr": float}.

`write_report` writes the whole report (metrics.json, index.html, per file WAVs and spectrograms, see
`sr_jax.report.html`) into a hidden temporary folder next to the report folder and renames it into place at the
end, so a failed or interrupted run leaves no half report (and an old report replaced with `overwrite` stays
whole until the new one is complete).
"""

from __future__ import annotations

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

# sr_jax.metrics (jax) and sr_jax.data.degrade (scipy) take ~1.5 s to import: they are imported where they are used,
# so that launch/evaluate.py reports a bad flag or folder at once.
if TYPE_CHECKING:
  from sr_jax.data import degrade as degrade_lib

# An enhancing system: (degraded input (frames,), rate) -> (enhanced (frames,), rate), e.g. Enhancer.enhance_array.
EnhanceFn = Callable[[np.ndarray, int], tuple[np.ndarray, int]]

ENHANCED = ("model", "collab")  # systems that run a network, in report order
BASELINES = {"spline": "cubic", "linear": "linear", "input": "soxr"}  # system -> upsampling method of degrade
SYSTEMS = ENHANCED + tuple(BASELINES)
METRICS = ("lsd", "lsd_hf", "lsd_lf", "snr", "si_sdr")  # sr_jax.metrics.METRIC_NAMES (the tests check)
LOWER_IS_BETTER = {"lsd": True, "lsd_hf": True, "lsd_lf": True, "snr": False, "si_sdr": False}
METRICS_FILE = "metrics.json"
PAGE_FILE = "index.html"


@dataclasses.dataclass
class FileResult:
  """One evaluated file: its name, length, the signals (inputs, outputs, "target") at `rate`, and the metrics."""
  name: str
  seconds: float
  rate: int
  signals: dict[str, np.ndarray]
  metrics: dict[str, dict[str, float | None]]

  def entry(self) -> dict:
    """The file's entry of metrics.json."""
    return {"name": self.name, "seconds": self.seconds, **self.metrics}


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


def score(target: np.ndarray, estimate: np.ndarray, rate: int, cutoff: float) -> dict[str, float | None]:
  """`sr_jax.metrics.all_metrics` of one system, non-finite values as None."""
  from sr_jax import metrics as metrics_lib  # noqa: PLC0415

  return {k: _finite(v) for k, v in metrics_lib.all_metrics(target, estimate, rate, cutoff).items()}


def summarize(entries: Sequence[Mapping], systems: Sequence[str]) -> dict[str, dict[str, float | None]]:
  """{system: {metric: mean over the entries}}: plain mean over files; None if any file's value is None."""
  out = {}
  for system in systems:
    out[system] = {}
    for metric in METRICS:
      values = [entry[system][metric] for entry in entries]
      out[system][metric] = None if not values or None in values else float(np.mean(values))
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


def evaluate_clean(clean: np.ndarray, rate: int, chain: degrade_lib.Chain, seed: int,
                   enhancers: Mapping[str, EnhanceFn], model_upsample: str = "soxr",
                   ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, float | None]]]:
  """Signals and metrics of one clean mono file at the target `rate` (see the module docstring).

  Returns (signals, metrics): signals has one array per system (`enhancers`' names, then "spline", "linear",
  "input"), "model_input" (what the enhancers got) and "target"; metrics has {system: {metric: value}}.
  """
  inputs, target = degraded(clean, rate, chain, seed, [model_upsample] + list(BASELINES.values()))
  signals = {"model_input": inputs[model_upsample]}
  for system, enhance in enhancers.items():
    signals[system] = _fit(*enhance(inputs[model_upsample], rate), rate, len(target), system)
  for system, method in BASELINES.items():
    signals[system] = inputs[method]
  signals["target"] = target
  cutoff = cutoff_hz(chain, rate)
  systems = list(enhancers) + list(BASELINES)
  return signals, {system: score(target, signals[system], rate, cutoff) for system in systems}


def evaluate_files(files: Sequence[str], root: str, enhancers: Mapping[str, EnhanceFn], chain: degrade_lib.Chain,
                   rate: int, seed: int = 0, model_upsample: str = "soxr", max_seconds: float | None = None,
                   silence_db: float = -60.0) -> Iterator[FileResult]:
  """Evaluates the files one by one (so only one file's signals are in memory at a time).

  Files are read as mono at `rate` (soxr); unreadable, empty or silent ones are skipped with one warning each, and
  a summary line at the end; `UserError` if none is usable.
  """
  from sr_jax.data import degrade as degrade_lib  # noqa: PLC0415

  counter = datasets.SkipCounter()
  for path in files:
    clean = datasets.load_clean(path, rate, silence_db, counter)
    if clean is None:
      continue
    if max_seconds is not None:
      clean = clean[:max(1, int(round(max_seconds * rate)))]
    name = datasets.file_key(path, root)
    start = time.time()
    signals, scores = evaluate_clean(clean, rate, chain, degrade_lib.file_seed(seed, name), enhancers,
                                     model_upsample)
    logging.info("%s: %.1f s of audio in %.1f s", name, len(clean) / rate, time.time() - start)
    yield FileResult(name, len(clean) / rate, rate, signals, scores)
  counter.log("evaluation files")
  if counter.num_skipped == counter.seen:
    raise UserError(f"no usable audio file to evaluate in {root} ({counter.summary()})")


def results(chain: str, checkpoint: str, entries: list[dict], systems: Sequence[str],
            stride: int | None = None, window: int | None = None) -> dict:
  """The metrics.json document (with "stride" and "window", the model's hop between windows and its window, when
  given)."""
  doc = {"chain": chain, "checkpoint": checkpoint}
  if stride is not None:
    doc["stride"] = int(stride)
  if window is not None:
    doc["window"] = int(window)
  return {**doc, "files": entries, "summary": summarize(entries, systems)}


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
                 window: int | None = None) -> dict:
  """Evaluates `files` and writes the report folder (metrics.json, index.html, per-file WAVs and spectrograms).
  `stride` and `window` (the enhancers' hop between windows and their window) are only recorded in metrics.json.

  Returns the metrics.json document. `progress(result)` is called after each file. See the module docstring.
  """
  from sr_jax.report import html  # noqa: PLC0415  (matplotlib: only when a report is written)

  report_dir = os.path.abspath(report_dir)
  check_report_dir(report_dir, overwrite)
  parent = os.path.dirname(report_dir)
  os.makedirs(parent, exist_ok=True)
  tmp = os.path.join(parent, f".{os.path.basename(report_dir)}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
  os.makedirs(tmp)
  try:
    entries, assets, folders = [], [], set()
    for result in evaluate_files(files, root, enhancers, chain, rate, seed, model_upsample, max_seconds,
                                 silence_db):
      entries.append(result.entry())
      assets.append(html.write_file_assets(tmp, result, folders))
      if progress is not None:
        progress(result)
    doc = results(chain, checkpoint, entries, list(enhancers) + list(BASELINES), stride, window)
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
