"""Objective evaluation of a model on clean files: metrics per file and over the set, metrics.json and a page.

For each clean reference file (read as mono at the model's rate, optionally cropped to `max_seconds`) and each
degradation chain (one, or several named ones: `parse_chains`):

1. degrade it with the chain and the seed `degrade.file_seed(seed, name)` (name: the path relative to the data
   folder, '/' separators; the same seed for every chain, so a chain gives the same numbers alone or beside
   others), once per upsampling method: "soxr" (the degraded *input* itself, what enhancing a real low-rate file
   starts from), "cubic" (the cubic-spline baseline of Kuleshov et al. 2017) and "linear"; the noise and reverb
   steps draw the same numbers for all three (same seed), only the upsampling differs;
2. enhance the input the model was trained on (`degrade(..., upsample=config.data.upsample)`) with each enhancing
   system: "model" and, if asked, "collab" (the model with collaborative sampling); the same enhancers serve every
   chain (the model is loaded once);
3. score every system against the clean target with `sr_jax.metrics.all_metrics(target, estimate, rate, cutoff)`:
   LSD, LSD-HF, LSD-LF, SNR and SI-SDR, with the cut-off at the chain's LOW / 2 (the Nyquist frequency of the
   band-limited input), or rate / 2 without a sample step (then LSD-HF covers the Nyquist bin only); and with
   wideband PESQ and STOI where their packages are installed (`sr_jax.report.speech`).

Without a sample step the three upsampling methods give the same input, so "spline", "linear" and "input" are
equal. The summary of each system is the plain (unweighted) mean over the files: each file counts once, whatever
its length. A non-finite metric (a model that outputs NaN) is written as null, and a summary with one is null.
The files are also grouped by test source where they can be (`file_sources`: a packaged corpus's manifest.tsv,
else several subfolders of the data folder), with a summary per source. The layout of metrics.json, and how files
are ranked: `sr_jax.report.schema`.

`write_report` writes the whole report into a hidden temporary folder next to the report folder and renames it
into place at the end, so a failed or interrupted run leaves no half report (and an old report replaced with
`overwrite` stays whole until the new one is complete): metrics.json with every file, index.html
(`sr_jax.report.html`) with every file's metrics in one table, report.md (the by-degradation and by-source tables
in GitHub markdown, for a model card), and audio (WAVs) and spectrograms for at most `max_assets` (chain, file)
pairs (`schema.choose_assets`: the first, the best, median and worst by LSD gain, more spread over the ranking), so
that a set of thousands of files gives a report of the same size as one of ten. The chosen files are known once all
are scored: the signals those need are kept in memory meanwhile, up to `ASSET_CACHE_BYTES`; a chosen file beyond
that is read, degraded and enhanced again at the end (the model is deterministic: the same output).
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
from sr_jax.data.chains import CHAIN_NAME, check_chain, eval_rate, parse_chains  # noqa: F401 (evaluate's names)
from sr_jax.errors import UserError
# Re-exported: bench/ and the tests read these names from here too.
from sr_jax.report.schema import (BASELINES, DEFAULT_MAX_ASSETS, ENHANCED, LOWER_IS_BETTER,  # noqa: F401
                                  MARKDOWN_FILE, METRICS, METRICS_FILE, PAGE_FILE, SYSTEMS, FileResult,
                                  chains_document, choose_assets, document)

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
MANIFEST = "manifest.tsv"  # a corpus's manifest (sr_jax.data.corpus.MANIFEST; the tests check)
UNLISTED = "(not in manifest)"  # the source of a file that the manifest does not list
TOP_LEVEL = "(top level)"  # the source of a file directly in the data folder when its subfolders are the sources


# ----- inputs ----------------------------------------------------------------------------------------------------


TELEPHONE_EDGE_HZ = 3400.0  # the telephone step's upper band edge


def cutoff_hz(chain: degrade_lib.Chain, rate: int) -> float:
  """The LSD-HF/LF band edge: the lowest edge the chain's band limits leave, a sample step's LOW / 2 (Nyquist of the
  band-limited input), a lowpass step's CUTOFF (of a range, CUTOFF_MAX: above it no file keeps anything), the
  telephone band's 3400 Hz; rate / 2 without a band limit (then `score` reports no LSD-HF/LF)."""
  from sr_jax.data import degrade as degrade_lib  # noqa: PLC0415

  edges = [rate / 2]
  for step in degrade_lib.parse_chain(chain):
    if step.name == "sample":
      edges.append(step.args[0] / 2)
    elif step.name == "lowpass" and step.probability is None:
      edges.append(float(step.args[2]))
    elif step.name == "telephone" and step.probability is None:
      edges.append(TELEPHONE_EDGE_HZ)
  return min(edges)


def _manifest_sources(path: str) -> tuple[dict[str, str], dict[str, str]] | None:
  """({corpus-relative path less its extension: source}, {source: family}) of a manifest with "source" and
  "family" columns (`sr_jax.data.packaged.write_manifest`: a segment's file is SPLIT/SEGMENT.wav), else None."""
  try:
    with open(path, encoding="utf-8") as f:
      lines = f.read().splitlines()
  except (OSError, UnicodeDecodeError) as e:
    logging.warning("ignoring %s: %s", path, e)
    return None
  if not lines:
    return None
  columns = lines[0].split("\t")
  if "source" not in columns or "family" not in columns:
    return None
  key = columns.index("segment") if "segment" in columns else 0
  split = columns.index("split") if "split" in columns else None
  source, family = columns.index("source"), columns.index("family")
  keys, families = {}, {}
  for line in lines[1:]:
    row = line.split("\t")
    if len(row) != len(columns) or not row[source]:
      continue
    stem, ext = os.path.splitext(row[key])
    name = stem if ext.lower() in datasets.AUDIO_EXTENSIONS else row[key]
    keys[name if split is None else f"{row[split]}/{name}"] = row[source]
    if row[family]:
      families.setdefault(row[source], set()).add(row[family])
  return keys, {s: ", ".join(sorted(f)) for s, f in families.items()}


def file_sources(files: Sequence[str], root: str) -> tuple[str, dict[str, str], dict[str, str]] | None:
  """How the files group by test source: (where from, {file name: source}, {source: family}), or None.

  A manifest.tsv in the data folder `root` or its parent with "source" and "family" columns (a packaged corpus,
  `sr_jax.data.packaged`; `root` is then usually one of its split folders) gives each file the source of its row,
  matched by the file's path relative to the manifest's folder ("test/SEGMENT.wav"); a file it does not list gets
  `UNLISTED`. (A piano corpus's manifest has no "family": its "source" is each piece's own score, so it is not used.)
  Else, when the files lie in several first-level subfolders of `root`, each subfolder is a source (files directly
  in `root` get `TOP_LEVEL`). Else None: no grouping. File names are `datasets.file_key(path, root)`.
  """
  names = [datasets.file_key(path, root) for path in files]
  root = os.path.abspath(root)
  for folder in dict.fromkeys((root, os.path.dirname(root))):
    manifest = os.path.join(folder, MANIFEST)
    found = _manifest_sources(manifest) if os.path.isfile(manifest) else None
    if found is None:
      continue
    keys, families = found
    sources = {}
    for path, name in zip(files, names):
      rel = os.path.relpath(os.path.abspath(path), folder).replace(os.sep, "/")
      sources[name] = keys.get(os.path.splitext(rel)[0], UNLISTED)
    if any(s != UNLISTED for s in sources.values()):
      return manifest, sources, {s: f for s, f in families.items() if s in sources.values()}
    logging.warning("ignoring %s: it lists none of the evaluated files", manifest)
  folders = {name: name.split("/", 1)[0] if "/" in name else TOP_LEVEL for name in names}
  if len(set(folders.values()) - {TOP_LEVEL}) >= 2:
    return "subfolders", folders, {}
  return None


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
  None; so is LSD-HF/LF when `cutoff` is the Nyquist frequency (no band is missing: the high band would be one
  bin)."""
  from sr_jax import metrics as metrics_lib  # noqa: PLC0415

  out = {k: _finite(v) for k, v in metrics_lib.all_metrics(target, estimate, rate, cutoff).items()}
  if cutoff >= rate / 2:
    out["lsd_hf"] = out["lsd_lf"] = None
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


def _read(path: str, rate: int, max_seconds: float | None, silence_db: float,
          counter: datasets.SkipCounter | None = None) -> np.ndarray | None:
  """A clean file read as mono at `rate` and cropped to `max_seconds`; None if it is skipped (unusable)."""
  clean = datasets.load_clean(path, rate, silence_db, counter)
  if clean is not None and max_seconds is not None:
    clean = clean[:max(1, int(round(max_seconds * rate)))]
  return clean


def _degrade_clean(clean: np.ndarray, name: str, chain: degrade_lib.Chain, rate: int, seed: int,
                   model_upsample: str) -> _Prepared:
  """A read file degraded with the chain and its file seed (see the module docstring)."""
  from sr_jax.data import degrade as degrade_lib  # noqa: PLC0415

  inputs, target = degraded(clean, rate, chain, degrade_lib.file_seed(seed, name),
                            [model_upsample] + list(BASELINES.values()))
  return _Prepared(name, len(clean) / rate, inputs, target)


def _prepare(path: str, root: str, chain: degrade_lib.Chain, rate: int, seed: int, model_upsample: str,
             max_seconds: float | None, silence_db: float,
             counter: datasets.SkipCounter | None = None) -> _Prepared | None:
  """A file read as mono at `rate`, cropped and degraded (see the module docstring); None if it is skipped."""
  clean = _read(path, rate, max_seconds, silence_db, counter)
  if clean is None:
    return None
  return _degrade_clean(clean, datasets.file_key(path, root), chain, rate, seed, model_upsample)


def evaluate_files(files: Sequence[str], root: str, enhancers: Mapping[str, EnhanceFn], chain: degrade_lib.Chain,
                   rate: int, seed: int = 0, model_upsample: str = "soxr", max_seconds: float | None = None,
                   silence_db: float = -60.0, speech: Mapping[str, SpeechFn] | None = None,
                   ) -> Iterator[FileResult]:
  """Evaluates the files in order under one chain, yielding one `FileResult` per usable file: `evaluate_chains`
  with the one unnamed chain (the results' chain is None)."""
  return evaluate_chains(files, root, enhancers, {None: chain}, rate, seed, model_upsample, max_seconds,
                         silence_db, speech)


def evaluate_chains(files: Sequence[str], root: str, enhancers: Mapping[str, EnhanceFn],
                    chains: Mapping[str | None, degrade_lib.Chain], rate: int, seed: int = 0,
                    model_upsample: str = "soxr", max_seconds: float | None = None, silence_db: float = -60.0,
                    speech: Mapping[str, SpeechFn] | None = None) -> Iterator[FileResult]:
  """Evaluates the files in order, each under every chain of `chains` ({name: chain}) in turn, yielding one
  `FileResult` (its `chain` the chain's name) per usable file and chain.

  Files are read once (as mono at `rate`, soxr) for all chains; unreadable, empty or silent ones are skipped with
  one warning each, and a summary line at the end; `UserError` if none is usable. Every chain degrades a file with
  the same seed (`degrade.file_seed(seed, name)`), so a chain's results do not depend on the other chains.
  `speech`: the speech metrics to add ({name: fn}, e.g. `sr_jax.report.speech.scorers()`); default: none.

  The enhancers run in the calling thread; one worker thread meanwhile reads and degrades the next (file, chain)
  and scores the previous one, so that this work hides behind the model's (a model on the CPU leaves a core to it,
  one on an accelerator the CPU). At most three (file, chain) pairs' signals and one clean file are in memory at a
  time.
  """
  speech = speech or {}
  counter = datasets.SkipCounter()
  systems = list(enhancers) + list(BASELINES)
  cutoffs = {name: cutoff_hz(chain, rate) for name, chain in chains.items()}
  items = [(i, name) for i in range(len(files)) for name in chains]
  read = {}  # the worker's last clean file: {file index: audio or None}, so each file is read (and counted) once

  def prepare(k: int) -> tuple[str | None, _Prepared | None]:
    i, name = items[k]
    if i not in read:
      read.clear()
      read[i] = _read(files[i], rate, max_seconds, silence_db, counter)
    if read[i] is None:
      return name, None
    return name, _degrade_clean(read[i], datasets.file_key(files[i], root), chains[name], rate, seed,
                                model_upsample)

  def result(scored) -> FileResult:
    name, prepared, signals, metrics = scored
    return FileResult(prepared.name, prepared.seconds, rate, signals, metrics.result(), name)

  with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="sr_jax-evaluate") as worker:
    upcoming = worker.submit(prepare, 0) if items else None
    scoring = None  # (chain name, prepared, signals, future metrics) of the pair before
    for k in range(len(items)):
      name, prepared = upcoming.result()
      upcoming = worker.submit(prepare, k + 1) if k + 1 < len(items) else None
      if prepared is None:
        continue
      start = time.time()
      signals = _enhance(prepared.inputs, prepared.target, rate, enhancers, model_upsample)
      logging.info("%s%s: %.1f s of audio enhanced in %.1f s", prepared.name, "" if name is None else f" [{name}]",
                   prepared.seconds, time.time() - start)
      if scoring is not None:
        yield result(scoring)
      scoring = (name, prepared, signals, worker.submit(_score_all, signals, systems, rate, cutoffs[name], speech))
    if scoring is not None:
      yield result(scoring)
  counter.log("evaluation files")
  if counter.num_skipped == counter.seen:
    raise UserError(f"no usable audio file to evaluate in {root} ({counter.summary()})")


def _signals_again(path: str, root: str, enhancers: Mapping[str, EnhanceFn], chain: degrade_lib.Chain, rate: int,
                   seed: int, model_upsample: str, max_seconds: float | None, silence_db: float,
                   chain_name: str | None = None) -> FileResult:
  """A file's signals under one chain computed again (as `evaluate_chains` did; the metrics left empty)."""
  prepared = _prepare(path, root, chain, rate, seed, model_upsample, max_seconds, silence_db)
  if prepared is None:
    raise UserError(f"{path} changed during the evaluation: it is no longer usable")
  signals = _enhance(prepared.inputs, prepared.target, rate, enhancers, model_upsample)
  return FileResult(prepared.name, prepared.seconds, rate, signals, {}, chain_name)


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


def write_report(report_dir: str, files: Sequence[str], root: str, enhancers: Mapping[str, EnhanceFn],
                 chain: str | Mapping[str, str], checkpoint: str, rate: int, seed: int = 0,
                 model_upsample: str = "soxr", max_seconds: float | None = None, silence_db: float = -60.0,
                 overwrite: bool = False, progress: Callable[[FileResult], None] | None = None,
                 stride: int | None = None, window: int | None = None, max_assets: int = DEFAULT_MAX_ASSETS,
                 speech: Mapping[str, SpeechFn] | None = None, cache_bytes: int = ASSET_CACHE_BYTES,
                 sources: bool = True, fill_gain_db: float | None = None) -> dict:
  """Evaluates `files` and writes the report folder: metrics.json, index.html, report.md, and WAVs and
  spectrograms of at most `max_assets` (chain, file) pairs (-1: all, 0: none).

  `chain`: one chain (the single-chain layout of metrics.json) or {name: chain} (the named-chains layout, even for one;
  names as `parse_chains` allows). `stride` and `window` (the enhancers' hop between windows and their window) and
  `fill_gain_db` (the model's spectral fill level, for a model with one) are only recorded in metrics.json. `speech`:
  the speech metrics ({name: fn}); default: those installed (`sr_jax.report.speech.scorers`), {} for none.
  `cache_bytes`: how much of the chosen files' signals may be kept in memory instead of being recomputed. `sources`:
  group the files by test source (`file_sources`) where possible.

  Returns the metrics.json document. `progress(result)` is called after each (file, chain). See the module
  docstring.
  """
  from sr_jax.report import html  # noqa: PLC0415  (PIL, matplotlib's colormaps: only when a report is written)

  named = not isinstance(chain, str)
  chains = dict(chain) if named else {None: chain}
  if not chains:
    raise ValueError("write_report needs at least one chain")
  report_dir = os.path.abspath(report_dir)
  check_report_dir(report_dir, overwrite)
  if speech is None:
    from sr_jax.report import speech as speech_lib  # noqa: PLC0415

    speech = speech_lib.scorers()
  grouping = file_sources(files, root) if sources else None
  sources_from, file_source, families = grouping if grouping is not None else (None, {}, {})
  systems = list(enhancers) + list(BASELINES)
  parent = os.path.dirname(report_dir)
  os.makedirs(parent, exist_ok=True)
  tmp = os.path.join(parent, f".{os.path.basename(report_dir)}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
  os.makedirs(tmp)
  try:
    entries = {name: [] for name in chains}
    kept, kept_bytes = {}, 0  # {(chain name, index into its entries): result with the asset signals}
    for result in evaluate_chains(files, root, enhancers, chains, rate, seed, model_upsample, max_seconds,
                                  silence_db, speech):
      entry = result.entry()
      if grouping is not None:
        entry["source"] = file_source[result.name]
      entries[result.chain].append(entry)
      if max_assets != 0:
        signals = {k: result.signals[k] for k in ASSET_SIGNALS if k in result.signals}
        size = sum(v.nbytes for v in signals.values())
        if kept_bytes + size <= cache_bytes:
          kept[(result.chain, len(entries[result.chain]) - 1)] = dataclasses.replace(result, signals=signals)
          kept_bytes += size
      if progress is not None:
        progress(result)
    # The assets are chosen over all (chain, file) pairs: the chains' entries one after the other.
    pairs = [(name, i) for name in chains for i in range(len(entries[name]))]
    paths = {datasets.file_key(path, root): path for path in files}
    assets, folders = {}, set()
    for index, why in choose_assets([entries[name][i] for name, i in pairs], max_assets).items():
      name, i = pairs[index]
      result = kept.pop((name, i), None)
      if result is None:  # beyond the cache: the same file read, degraded and enhanced again
        result = _signals_again(paths[entries[name][i]["name"]], root, enhancers, chains[name], rate, seed,
                                model_upsample, max_seconds, silence_db, name)
      assets[index] = {**html.write_file_assets(tmp, result, folders), "why": why}
    kept.clear()
    chosen = [{"chain": pairs[i][0], "name": entries[pairs[i][0]][pairs[i][1]]["name"], **asset}
              for i, asset in assets.items()]
    if named:
      doc = chains_document(checkpoint, [{"name": name, "chain": text, "cutoff_hz": cutoff_hz(text, rate),
                                          "files": entries[name]} for name, text in chains.items()],
                            systems, chosen, stride, window, sources_from, families, fill_gain_db)
    else:
      doc = document(chain, checkpoint, entries[None], systems, chosen, stride, window, sources_from, families,
                     fill_gain_db)
    with open(os.path.join(tmp, METRICS_FILE), "w", encoding="utf-8") as f:
      json.dump(doc, f, indent=1, allow_nan=False)
      f.write("\n")
    html.write_page(os.path.join(tmp, PAGE_FILE), doc, assets, None if named else cutoff_hz(chain, rate), rate)
    html.write_markdown(os.path.join(tmp, MARKDOWN_FILE), doc, rate)
    check_report_dir(report_dir, overwrite)  # nobody made it meanwhile
    _commit(tmp, report_dir)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return doc
