"""Figures for reports and TensorBoard: log-magnitude spectrograms, side-by-side comparisons, loss curves.

Spectrogram figures are rasterised directly (numpy and PIL, with matplotlib's colormaps and font); loss curves are
drawn on `matplotlib.figure.Figure` objects with the Agg canvas. `matplotlib.pyplot` is never imported, so no
window opens and the global matplotlib backend (e.g. a notebook's) is left alone.

  png = spectrogram_png(audio, 16000, title="input")                 # PNG bytes (and a file if `path` is given)
  image = spectrogram_image(audio, 16000)                            # (bins, frames, 3) uint8 for write_images
  comparison_png({"input": x, "model": y, "target": t, "difference": y - t}, 16000, "cmp.png")
  loss_curves_png(writer.read_history(workdir), "loss.png")

Levels are dB relative to a full-scale sine: a sine of amplitude 1 peaks at 0 dB (Hann window, `sr_jax.spectral`).
"""

from __future__ import annotations

import functools
import io
import math
import os
from collections.abc import Callable, Mapping
from typing import Any

import matplotlib
import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont

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
  return _write(buffer.getvalue(), path)


def _write(data: bytes, path: str | os.PathLike | None) -> bytes:
  """`data`, also written to `path` (folders created) if given."""
  if path is not None:
    folder = os.path.dirname(os.fspath(path))
    if folder:
      os.makedirs(folder, exist_ok=True)
    with open(path, "wb") as f:
      f.write(data)
  return data


# ----- spectrogram figures: drawn straight into pixels (numpy + PIL) -------------------------------------------
# A matplotlib figure of five spectrogram panels takes ~0.5 s to lay out, draw and encode, most of it in tick and
# text bookkeeping; an evaluation report draws one per chosen file. These figures are rasterised directly instead,
# as palette images (one byte per pixel: 200 colormap levels, 55 greys of anti-aliased ink, white paper; ~50 ms):
# the same size as before (10 x (0.5 + 2.6 n) inches at 100 dpi), with panels, axes, ticks, a colour bar and
# matplotlib's font.

_FIGURE_WIDTH = 1000
_PANEL_HEIGHT = 260  # pixels per panel; the figure adds 50 for the title and the time axis
_LEFT, _RIGHT = 62, 868  # the panels' horizontal extent
_BAR_LEFT, _BAR_WIDTH = 884, 14  # the colour bar
_TOP, _BOTTOM = 34, 44  # room for the title / the time axis
_PANEL_TITLE, _PANEL_GAP = 20, 12  # a panel's title line above it, the space below it
_LEVELS, _GREYS = 200, 55  # palette: colormap levels 0..199, ink greys 200..254 (darkest first), 255 paper
_INK, _LINE = 255, 215  # ink coverage of text and of frame and tick lines (a lighter grey)
_FONT_FILE = os.path.join("fonts", "ttf", "DejaVuSans.ttf")  # matplotlib's default font, shipped with it


@functools.lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
  path = os.path.join(matplotlib.get_data_path(), _FONT_FILE)
  return ImageFont.truetype(path, size) if os.path.exists(path) else ImageFont.load_default(size)


@functools.lru_cache(maxsize=8)
def _palette(cmap: str) -> list[int]:
  """The figure's 256 RGB palette entries, flattened: the colormap, the greys from ink (34) to near white, white."""
  levels = colormaps[cmap](np.linspace(0.0, 1.0, _LEVELS), bytes=True)[:, :3].astype(int)
  greys = np.round(34 + (255 - 34) * np.arange(_GREYS) / _GREYS).astype(int)
  return [*levels.ravel(), *np.repeat(greys, 3), 255, 255, 255]


def nice_ticks(lo: float, hi: float, count: int = 6) -> np.ndarray:
  """About `count` round tick values in [lo, hi]: steps of 1, 2, 2.5 or 5 times a power of ten."""
  if not hi > lo:
    return np.array([lo])
  raw = (hi - lo) / max(count, 1)
  magnitude = 10.0 ** math.floor(math.log10(raw))
  step = next(m * magnitude for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * magnitude >= raw * (1 - 1e-9))
  first = math.ceil(lo / step - 1e-9) * step
  ticks = first + step * np.arange(int(math.floor((hi - first) / step + 1e-9)) + 1)
  return np.round(ticks, 10) + 0.0  # no "-0"


def _label(value: float) -> str:
  return f"{value:g}"


def _rotated_text(ink: Image.Image, text: str, center: tuple[float, float], size: int) -> None:
  """Draws `text` on the ink layer turned 90 degrees counter-clockwise (reading upwards), centred on `center`."""
  font = _font(size)
  left, top, right, bottom = font.getbbox(text)
  strip = Image.new("L", (right - left + 2, bottom - top + 2), 0)
  ImageDraw.Draw(strip).text((1 - left, 1 - top), text, fill=_INK, font=font)
  strip = strip.rotate(90, expand=True)
  ink.paste(strip, (int(center[0] - strip.width / 2), int(center[1] - strip.height / 2)), strip)


def _panel_levels(levels: np.ndarray, lo: float, hi: float, width: int, height: int) -> np.ndarray:
  """(height, width) palette indices of dB levels (bins, frames): 0 Hz at the bottom, nearest-neighbour scaled."""
  bins, frames = levels.shape
  index = np.clip(np.round((levels - lo) / max(hi - lo, 1e-9) * (_LEVELS - 1)), 0, _LEVELS - 1).astype(np.uint8)
  rows = np.minimum(((height - 0.5 - np.arange(height)) / height * bins).astype(int), bins - 1)
  columns = np.minimum(((np.arange(width) + 0.5) / width * frames).astype(int), frames - 1)
  return index[rows][:, columns]


def _draw_spectrograms(signals: Mapping[str, Any], rate: float, n_fft: int, hop: int, vmax: float | None,
                       top_db: float, title: str | None, cmap: str) -> Image.Image:
  """The figure of `comparison_png` as a palette image: one panel per signal, top to bottom, one colour scale.

  Text, frames and ticks are drawn as coverage on an ink layer, turned into greys; the spectrograms, which nothing
  overlaps, are palette indices written over it.
  """
  if not signals:
    raise ValueError("no signals to draw")
  spectrograms = {name: spectrogram_db(audio, rate, n_fft, hop) for name, audio in signals.items()}
  lo, hi = _db_limits([db for _, _, db in spectrograms.values()], vmax, top_db)
  n = len(spectrograms)
  ink = Image.new("L", (_FIGURE_WIDTH, 50 + _PANEL_HEIGHT * n), 0)
  draw = ImageDraw.Draw(ink)
  if title:
    draw.text((_FIGURE_WIDTH / 2, _TOP / 2), title, fill=_INK, font=_font(16), anchor="mm")
  slot = (ink.height - _TOP - _BOTTOM) / n
  width = _RIGHT - _LEFT
  height = int(slot - _PANEL_TITLE - _PANEL_GAP)
  small = _font(12)
  duration = max(db.shape[1] for _, _, db in spectrograms.values()) * hop / rate
  time_ticks = nice_ticks(0.0, duration, 8)
  top_khz = rate / 2000.0
  khz_ticks = nice_ticks(0.0, top_khz, 4)
  images = []  # (top, left, palette indices)
  for i, (name, (_, _, db)) in enumerate(spectrograms.items()):
    top = int(_TOP + i * slot + _PANEL_TITLE)
    draw.text((_LEFT, top - 4), name, fill=_INK, font=_font(13), anchor="ls")
    shown = db.shape[1] * hop / rate / duration  # a shorter signal's panel ends before the shared time axis does
    images.append((top, _LEFT, _panel_levels(db, lo, hi, max(1, int(round(width * shown))), height)))
    draw.rectangle((_LEFT - 1, top - 1, _RIGHT, top + height), outline=_LINE)
    for khz in khz_ticks:
      y = top + height - khz / top_khz * height
      draw.line((_LEFT - 5, y, _LEFT - 1, y), fill=_LINE)
      draw.text((_LEFT - 8, y), _label(khz), fill=_INK, font=small, anchor="rm")
    for seconds in time_ticks:
      x = _LEFT + seconds / duration * width
      draw.line((x, top + height, x, top + height + 4), fill=_LINE)
    _rotated_text(ink, "kHz", (16, top + height / 2), 12)
  bar_top, bottom = images[0][0], images[-1][0] + height
  for seconds in time_ticks:
    draw.text((_LEFT + seconds / duration * width, bottom + 7), _label(seconds), fill=_INK, font=small, anchor="mt")
  draw.text(((_LEFT + _RIGHT) / 2, bottom + 24), "time (s)", fill=_INK, font=_font(12), anchor="mt")
  # The colour bar spans the panels, the loudest colour at the top.
  gradient = np.linspace(lo, hi, bottom - bar_top)[:, None]
  images.append((bar_top, _BAR_LEFT, _panel_levels(gradient, lo, hi, _BAR_WIDTH, bottom - bar_top)))
  draw.rectangle((_BAR_LEFT - 1, bar_top - 1, _BAR_LEFT + _BAR_WIDTH, bottom), outline=_LINE)
  for level in nice_ticks(lo, hi, 8):
    y = bottom - (level - lo) / max(hi - lo, 1e-9) * (bottom - bar_top)
    draw.line((_BAR_LEFT + _BAR_WIDTH, y, _BAR_LEFT + _BAR_WIDTH + 4, y), fill=_LINE)
    draw.text((_BAR_LEFT + _BAR_WIDTH + 7, y), _label(level), fill=_INK, font=small, anchor="lm")
  _rotated_text(ink, "dB (full-scale sine = 0)", (_FIGURE_WIDTH - 18, (bar_top + bottom) / 2), 12)
  coverage = np.asarray(ink).astype(np.int32)
  pixels = np.where(coverage > 0, _LEVELS + ((255 - coverage) * (_GREYS - 1) + 127) // 255, 255).astype(np.uint8)
  for top, left, indices in images:
    pixels[top:top + indices.shape[0], left:left + indices.shape[1]] = indices
  figure = Image.fromarray(pixels, mode="L")
  figure.putpalette(_palette(cmap))
  return figure


def _save_image(image: Image.Image, path: str | os.PathLike | None) -> bytes:
  """PNG bytes of `image` (a fast zlib level: spectrograms compress little); also written to `path` if given."""
  buffer = io.BytesIO()
  image.save(buffer, format="png", compress_level=1)
  return _write(buffer.getvalue(), path)


def spectrogram_png(audio: Any, rate: float, path: str | os.PathLike | None = None, title: str | None = None,
                    n_fft: int = DEFAULT_N_FFT, hop: int = DEFAULT_HOP, vmax: float | None = None,
                    top_db: float = DEFAULT_TOP_DB, cmap: str = "magma") -> bytes:
  """A labelled dB spectrogram figure as PNG bytes, also written to `path` if given."""
  return _save_image(_draw_spectrograms({title or "": audio}, rate, n_fft, hop, vmax, top_db, None, cmap), path)


def comparison_png(signals: Mapping[str, Any], rate: float, path: str | os.PathLike | None = None,
                   title: str | None = None, n_fft: int = DEFAULT_N_FFT, hop: int = DEFAULT_HOP,
                   vmax: float | None = None, top_db: float = DEFAULT_TOP_DB, cmap: str = "magma") -> bytes:
  """Spectrograms of several signals stacked top to bottom (e.g. input / model / target / difference).

  All panels share the time and frequency axes and one colour scale, [vmax - top_db, vmax] dB with vmax the
  loudest bin of all signals by default, so levels can be compared across panels. Returns PNG bytes, 1000 pixels
  wide and 50 + 260 per panel high, also written to `path` if given.
  """
  return _save_image(_draw_spectrograms(signals, rate, n_fft, hop, vmax, top_db, title, cmap), path)


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
