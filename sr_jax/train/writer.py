"""Metric writers: TensorBoard event files (tensorboardX, no TensorFlow), absl logging and a scalar history file.

clu's `MetricWriter` interface is used as is, but clu's own TensorBoard writer (`clu.metric_writers.SummaryWriter`)
needs TensorFlow, and `clu/metric_writers/__init__.py` imports it unconditionally. `_clu_writers()` therefore imports
the three TensorFlow-free modules of that package (`interface`, `logging_writer`, `multi_writer`) without running the
package `__init__` when TensorFlow is missing; with TensorFlow installed the ordinary import is used.

  writer = create_writer(workdir)            # process 0: logging + TensorBoard + workdir/metrics.jsonl; others: no-op
  writer.write_scalars(step, {"train/loss": loss})
  writer.write_audios(step, {"eval/model": audio}, sample_rate=16000)
  writer.close()
  history = read_history(workdir)            # {"train/loss": (steps, values), ...} for plots.loss_curves_png
"""

from __future__ import annotations

import importlib
import io
import json
import os
import sys
import time
import types
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from absl import logging
from etils import epath


def _clu_writers() -> tuple[types.ModuleType, types.ModuleType, types.ModuleType]:
  """Returns clu's (interface, logging_writer, multi_writer) modules, without importing TensorFlow."""
  names = ("interface", "logging_writer", "multi_writer")
  try:
    return tuple(importlib.import_module(f"clu.metric_writers.{n}") for n in names)
  except ImportError as e:
    if e.name != "tensorflow" and not (e.name or "").startswith("tensorflow."):
      raise
  # The package __init__ failed on `import tensorflow`; stand in for it with a bare package object whose
  # __path__ is the real folder, import the submodules, then take the stand-in out again so that a later
  # `import clu.metric_writers` fails (or succeeds) exactly as it would have.
  import clu  # pylint: disable=import-outside-toplevel

  package = "clu.metric_writers"
  stand_in = types.ModuleType(package)
  stand_in.__path__ = [os.path.join(os.path.dirname(clu.__file__), "metric_writers")]
  sys.modules[package] = stand_in
  try:
    return tuple(importlib.import_module(f"{package}.{n}") for n in names)
  finally:
    if sys.modules.get(package) is stand_in:
      del sys.modules[package]


interface, _logging_writer, _multi_writer = _clu_writers()
MetricWriter = interface.MetricWriter
LoggingWriter = _logging_writer.LoggingWriter
MultiWriter = _multi_writer.MultiWriter

HISTORY_FILE = "metrics.jsonl"


def _item_tags(name: str, n: int) -> list[str]:
  """Tags for `n` items (images, clips) logged under one key: the key itself for one item, else `key/i`."""
  return [name] if n == 1 else [f"{name}/{i}" for i in range(n)]


def _to_uint8_images(value: Any) -> np.ndarray:
  """(H, W), (H, W, C) or (N, H, W, C), uint8 or float in [0, 1] -> (N, H, W, C) uint8 with C in {1, 3, 4}."""
  x = np.asarray(value)
  if x.ndim == 2:
    x = x[..., None]
  if x.ndim == 3:
    x = x[None]
  if x.ndim != 4 or x.shape[-1] not in (1, 3, 4):
    raise ValueError(f"images must be (H, W), (H, W, C) or (N, H, W, C) with C in 1, 3, 4; got {np.shape(value)}")
  if x.dtype != np.uint8:
    x = np.round(np.clip(np.nan_to_num(x.astype(np.float32)), 0.0, 1.0) * 255.0).astype(np.uint8)
  return x


def _to_clips(value: Any) -> np.ndarray:
  """(T,), (T, C) or (N, T, C) float audio -> (N, T, C) float32 clipped to [-1, 1]."""
  x = np.asarray(value, dtype=np.float32)
  if x.ndim == 1:
    x = x[:, None]
  if x.ndim == 2:
    x = x[None]
  if x.ndim != 3 or x.shape[-1] not in (1, 2):
    raise ValueError(f"audio must be (T,), (T, C) or (N, T, C) with C in 1, 2; got {np.shape(value)}")
  if not np.all(np.abs(np.nan_to_num(x)) <= 1.0):
    logging.log_first_n(logging.WARNING, "audio outside [-1, 1] is clipped before it is logged", 1)
  return np.clip(np.nan_to_num(x), -1.0, 1.0)


def _flat_hparams(hparams: Mapping[str, Any], prefix: str = "") -> dict[str, bool | int | float | str]:
  """Flattens nested mappings (e.g. a ConfigDict's to_dict()) with '.'; values that are not bool/number/str -> str."""
  flat = {}
  for key, value in hparams.items():
    name = f"{prefix}{key}"
    if isinstance(value, Mapping):
      flat.update(_flat_hparams(value, prefix=f"{name}."))
    elif isinstance(value, (bool, int, float, str)):
      flat[name] = value
    elif isinstance(value, np.generic):
      flat[name] = value.item()
    else:
      flat[name] = str(value)
  return flat


class NullWriter(MetricWriter):
  """A writer that drops everything (processes other than 0, disabled logging); base of partial writers."""

  def write_summaries(self, step: int, values: Mapping[str, Any], metadata: Mapping[str, Any] | None = None):
    pass

  def write_scalars(self, step: int, scalars: Mapping[str, Any]):
    pass

  def write_images(self, step: int, images: Mapping[str, Any]):
    pass

  def write_videos(self, step: int, videos: Mapping[str, Any]):
    pass

  def write_audios(self, step: int, audios: Mapping[str, Any], *, sample_rate: int):
    pass

  def write_texts(self, step: int, texts: Mapping[str, str]):
    pass

  def write_histograms(self, step: int, arrays: Mapping[str, Any], num_buckets: Mapping[str, int] | None = None):
    pass

  def write_hparams(self, hparams: Mapping[str, Any]):
    pass

  def flush(self):
    pass

  def close(self):
    pass


class TensorBoardXWriter(MetricWriter):
  """Writes TensorBoard event files into `logdir` with tensorboardX (no TensorFlow needed).

  Images: (H, W), (H, W, C) or (N, H, W, C), uint8 or float in [0, 1]. Audio: (T,), (T, C) or (N, T, C), float in
  [-1, 1], 1 or 2 channels, stored as 16-bit WAV. N items under one key are logged as `key/0` ... `key/N-1`.
  Videos and raw summaries are not supported (a warning is logged once). Local paths work out of the box; `gs://`
  needs the google-cloud-storage package (tensorboardX's GCS writer).
  """

  def __init__(self, logdir: str, flush_secs: int = 30):
    import tensorboardX  # pylint: disable=import-outside-toplevel

    self._writer = tensorboardX.SummaryWriter(logdir=str(logdir), flush_secs=flush_secs)

  @property
  def logdir(self) -> str:
    return self._writer.logdir

  def write_summaries(self, step: int, values: Mapping[str, Any], metadata: Mapping[str, Any] | None = None):
    logging.log_first_n(logging.WARNING, "TensorBoardXWriter does not write raw summaries", 1)

  def write_scalars(self, step: int, scalars: Mapping[str, Any]):
    for name, value in scalars.items():
      self._writer.add_scalar(name, float(np.asarray(value).item()), global_step=int(step))

  def write_images(self, step: int, images: Mapping[str, Any]):
    for name, value in images.items():
      batch = _to_uint8_images(value)
      for tag, image in zip(_item_tags(name, len(batch)), batch):
        self._writer.add_image(tag, image, global_step=int(step), dataformats="HWC")

  def write_videos(self, step: int, videos: Mapping[str, Any]):
    logging.log_first_n(logging.WARNING, "TensorBoardXWriter does not write videos", 1)

  def write_audios(self, step: int, audios: Mapping[str, Any], *, sample_rate: int):
    from tensorboardX import summary  # pylint: disable=import-outside-toplevel

    for name, value in audios.items():
      clips = _to_clips(value)
      for tag, clip in zip(_item_tags(name, len(clips)), clips):
        self._writer.file_writer.add_summary(summary.audio(tag, clip, sample_rate=int(sample_rate)), int(step))

  def write_texts(self, step: int, texts: Mapping[str, str]):
    for name, text in texts.items():
      self._writer.add_text(name, str(text), global_step=int(step))

  def write_histograms(self, step: int, arrays: Mapping[str, Any], num_buckets: Mapping[str, int] | None = None):
    for name, value in arrays.items():
      bins = (num_buckets or {}).get(name)
      self._writer.add_histogram(name, np.asarray(value, dtype=np.float64).ravel(), global_step=int(step),
                                 bins="tensorflow" if bins is None else int(bins))

  def write_hparams(self, hparams: Mapping[str, Any]):
    """Writes the hparams plugin's experiment and session-start records into this run (nested keys joined by '.')."""
    from tensorboardX import summary  # pylint: disable=import-outside-toplevel

    experiment, session_start, _ = summary.hparams(_flat_hparams(hparams), {})
    self._writer.file_writer.add_summary(experiment)
    self._writer.file_writer.add_summary(session_start)

  def flush(self):
    self._writer.flush()

  def close(self):
    self._writer.close()


class ScalarHistoryWriter(NullWriter):
  """Keeps every scalar in memory and in `path` (JSON lines `{"step", "time", "scalars"}`), for plots at the end.

  An existing file is read first, so a resumed run keeps the history of the runs before it. The file is rewritten
  whole (through a temporary file and a rename) on every `flush`/`close`, which also works where appending does not
  (object stores). Only scalars are kept; everything else is ignored.
  """

  def __init__(self, path: str | os.PathLike):
    self._path = epath.Path(path)
    self._records: list[dict[str, Any]] = []
    self._dirty = False
    if self._path.exists():
      self._records = _read_records(self._path)

  @property
  def path(self) -> epath.Path:
    return self._path

  def write_scalars(self, step: int, scalars: Mapping[str, Any]):
    values = {name: float(np.asarray(value).item()) for name, value in scalars.items()}
    self._records.append({"step": int(step), "time": time.time(), "scalars": values})
    self._dirty = True

  def history(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{name: (steps, values)}, sorted by step; a step logged twice (resumed run) keeps its last value."""
    return _history_from_records(self._records)

  def flush(self):
    if not self._dirty:
      return
    self._path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r) + "\n" for r in self._records)
    tmp = self._path.parent / f".{self._path.name}.tmp"
    tmp.write_text(text)
    tmp.replace(self._path)
    self._dirty = False

  def close(self):
    self.flush()


def _read_records(path: epath.Path) -> list[dict[str, Any]]:
  records = []
  for line in io.StringIO(path.read_text()):
    if line.strip():
      records.append(json.loads(line))
  return records


def _history_from_records(records: list[dict[str, Any]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  by_name: dict[str, dict[int, float]] = {}
  for record in records:
    for name, value in record["scalars"].items():
      by_name.setdefault(name, {})[int(record["step"])] = float(value)
  history = {}
  for name, points in by_name.items():
    steps = np.array(sorted(points), dtype=np.int64)
    history[name] = (steps, np.array([points[s] for s in steps], dtype=np.float64))
  return history


def read_history(workdir: str | os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Reads `workdir/metrics.jsonl` (or the file itself if a file is given) as {name: (steps, values)}."""
  path = epath.Path(workdir)
  if path.is_dir():
    path = path / HISTORY_FILE
  if not path.exists():
    return {}
  return _history_from_records(_read_records(path))


def create_writer(workdir: str | os.PathLike | None, enabled: bool = True, just_logging: bool = False,
                  process_index: int | None = None) -> MetricWriter:
  """The training loop's writer.

  Process 0 gets absl logging + TensorBoard events in `workdir` + `workdir/metrics.jsonl` (only logging if
  `just_logging` or `workdir` is None); every other process, and every process when `enabled` is False, gets a
  `NullWriter`. `process_index` defaults to `jax.process_index()`.
  """
  if process_index is None:
    process_index = jax.process_index()
  if not enabled or process_index != 0:
    return NullWriter()
  if just_logging or workdir is None:
    return LoggingWriter()
  return MultiWriter([
      LoggingWriter(),
      TensorBoardXWriter(str(workdir)),
      ScalarHistoryWriter(epath.Path(workdir) / HISTORY_FILE),
  ])
