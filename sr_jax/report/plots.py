"""Figures for reports and TensorBoard: log-magnitude spectrograms, side-by-side comparisons, loss curves.

Everything is drawn on `matplotlib.figure.Figure` objects with the Agg canvas; `matplotlib.pyplot` is never
imported, so no window opens and the global matplotlib backend (e.g. a notebook's) is left alone.

  png = spectrogram_png(audio, 16000, title="input")                 # PNG bytes (and a file if `path` is given)
  image = spectrogram_image(audio, 16000)                            # (bins, frames, 3) uint8 for write_images
  comparison_png({"input": x, "model": y, "target": t, "difference": y - t}, 16000, "cmp.png")
  loss_curves_png(writer.read_history(workdir), "loss.png")

Levels are dB relative to a full-scale sine: a sine of amplitude 1 peaks at 0 dB (Hann window, `sr_jax.spectral`).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sr_jax import spectral

DEFAULT_N_FFT = 1024
DEFAULT_HOP = 256
DEFAULT_TOP_DB = 80.0
_FLOOR_DB = -200.0  # level of digital silence


def _mono(audio: Any) -> np.ndarray:
  """(T,) or (T, C) audio -> (T,) float64, channels averaged."""
  x = np.asarray(audio, dtype=np.float64)
  if x.ndim == 2:
    x = x.mean(axis=1)
  if x.ndim != 1 or x.size == 0:
    raise ValueError(f"audio must be (T,) or (T, C) with T > 0, got shape {np.shape(audio)}")
  return x


def spectrogram_db(audio: Any, rate: float, n_fft: int = DEFAULT_N_FFT,
                   hop: int = DEFAULT_HOP) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(frequencies in Hz (bins,), frame times in s (frames,), levels in dB (bins, frames)) of mono-mixed `audio`."""
  spectrum = spectral.stft(_mono(audio), n_fft=n_fft, hop=hop)  # (frames, bins)
  full_scale = (np.sum(spectral.hann_window(n_fft)) / 2.0) ** 2  # power of a unit sine's peak bin
  db = 10.0 * np.log10(np.maximum(spectral.power(spectrum).T / full_scale, 10.0 ** (_FLOOR_DB / 10.0)))
  times = np.arange(db.shape[1]) * (hop / rate)
  return spectral.bin_frequencies(n_fft, rate), times, db


def _db_limits(dbs: list[np.ndarray], vmax: float | None, top_db: float) -> tuple[float, float]:
  """Shared colour scale: [vmax - top_db, vmax], vmax defaulting to the loudest bin of all spectrograms."""
  if vmax is None:
    vmax = max(float(np.max(db)) for db in dbs)
  return vmax - top_db, vmax


def spectrogram_image(audio: Any, rate: float, n_fft: int = DEFAULT_N_FFT, hop: int = DEFAULT_HOP,
                      vmax: float | None = None, top_db: float = DEFAULT_TOP_DB, cmap: str = "magma") -> np.ndarray:
  """The dB spectrogram as an (n_fft//2 + 1, frames, 3) uint8 RGB image, one pixel per bin and frame.

  Row 0 is the highest frequency (the top of the picture), the last row 0 Hz; colours span [vmax - top_db, vmax]
  dB (vmax: the loudest bin by default; pass e.g. 0.0 to compare images across steps).
  """
  _, _, db = spectrogram_db(audio, rate, n_fft, hop)
  lo, hi = _db_limits([db], vmax, top_db)
  scaled = np.clip((db[::-1] - lo) / max(hi - lo, 1e-9), 0.0, 1.0)
  return colormaps[cmap](scaled, bytes=True)[..., :3]


def _new_figure(width: float, height: float) -> Figure:
  figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
  FigureCanvasAgg(figure)
  return figure


def _save(figure: Figure, path: str | os.PathLike | None) -> bytes:
  """PNG bytes of `figure`; also written to `path` (folders created) if given."""
  buffer = io.BytesIO()
  figure.savefig(buffer, format="png")
  data = buffer.getvalue()
  if path is not None:
    folder = os.path.dirname(os.fspath(path))
    if folder:
      os.makedirs(folder, exist_ok=True)
    with open(path, "wb") as f:
      f.write(data)
  return data


def _draw_spectrograms(signals: Mapping[str, Any], rate: float, n_fft: int, hop: int, vmax: float | None,
                       top_db: float, title: str | None, cmap: str) -> Figure:
  if not signals:
    raise ValueError("no signals to draw")
  spectrograms = {name: spectrogram_db(audio, rate, n_fft, hop) for name, audio in signals.items()}
  lo, hi = _db_limits([db for _, _, db in spectrograms.values()], vmax, top_db)
  figure = _new_figure(10.0, 0.5 + 2.6 * len(spectrograms))
  axes = figure.subplots(len(spectrograms), 1, sharex=True, sharey=True, squeeze=False)[:, 0]
  for ax, (name, (freqs, times, db)) in zip(axes, spectrograms.items()):
    extent = (0.0, times[-1] + hop / rate, 0.0, freqs[-1] / 1000.0)
    mesh = ax.imshow(db, origin="lower", aspect="auto", extent=extent, vmin=lo, vmax=hi, cmap=cmap,
                     interpolation="nearest")
    ax.set_ylabel("kHz")
    ax.set_title(name, loc="left", fontsize="medium")
  axes[-1].set_xlabel("time (s)")
  figure.colorbar(mesh, ax=list(axes), label="dB (full-scale sine = 0)", shrink=0.9)
  if title:
    figure.suptitle(title)
  return figure


def spectrogram_png(audio: Any, rate: float, path: str | os.PathLike | None = None, title: str | None = None,
                    n_fft: int = DEFAULT_N_FFT, hop: int = DEFAULT_HOP, vmax: float | None = None,
                    top_db: float = DEFAULT_TOP_DB, cmap: str = "magma") -> bytes:
  """A labelled dB spectrogram figure as PNG bytes, also written to `path` if given."""
  figure = _draw_spectrograms({title or "": audio}, rate, n_fft, hop, vmax, top_db, None, cmap)
  return _save(figure, path)


def comparison_png(signals: Mapping[str, Any], rate: float, path: str | os.PathLike | None = None,
                   title: str | None = None, n_fft: int = DEFAULT_N_FFT, hop: int = DEFAULT_HOP,
                   vmax: float | None = None, top_db: float = DEFAULT_TOP_DB, cmap: str = "magma") -> bytes:
  """Spectrograms of several signals stacked top to bottom (e.g. input / model / target / difference).

  All panels share the time and frequency axes and one colour scale, [vmax - top_db, vmax] dB with vmax the
  loudest bin of all signals by default, so levels can be compared across panels. Returns PNG bytes, also written
  to `path` if given.
  """
  return _save(_draw_spectrograms(signals, rate, n_fft, hop, vmax, top_db, title, cmap), path)


def _metric_group(name: str) -> str:
  """Default grouping of loss curves: the last path component, so `train/loss` and `eval/loss` share a panel."""
  return name.rsplit("/", 1)[-1]


def loss_curves_png(history: Mapping[str, tuple[Any, Any]], path: str | os.PathLike | None = None,
                    title: str | None = None, group: Callable[[str], str] = _metric_group,
                    columns: int = 3) -> bytes:
  """Curves of `history` ({name: (steps, values)}, e.g. `sr_jax.train.writer.read_history`), one panel per group.

  Names with the same `group(name)` (default: the last '/' component) share a panel, in first-seen order. A panel
  gets a log y axis when all its finite values are positive. Non-finite values are left out. Returns PNG bytes,
  also written to `path` if given.
  """
  if not history:
    raise ValueError("empty history: no curves to draw")
  groups: dict[str, list[str]] = {}
  for name in history:
    groups.setdefault(group(name), []).append(name)
  columns = max(1, min(columns, len(groups)))
  rows = math.ceil(len(groups) / columns)
  figure = _new_figure(4.2 * columns, 0.4 + 3.0 * rows)
  axes = figure.subplots(rows, columns, squeeze=False).ravel()
  for ax, (group_name, names) in zip(axes, groups.items()):
    finite_values = []
    for name in names:
      steps, values = (np.asarray(a, dtype=np.float64).ravel() for a in history[name])
      if steps.shape != values.shape:
        raise ValueError(f"{name}: {steps.size} steps but {values.size} values")
      keep = np.isfinite(values)
      ax.plot(steps[keep], values[keep], label=name, linewidth=1.2)
      finite_values.append(values[keep])
    finite = np.concatenate(finite_values)
    if finite.size and np.all(finite > 0):
      ax.set_yscale("log")
    ax.set_title(group_name, fontsize="medium")
    ax.set_xlabel("step")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
  for ax in axes[len(groups):]:
    ax.set_visible(False)
  if title:
    figure.suptitle(title)
  return _save(figure, path)
