"""The evaluation report page: one self-contained index.html with relative links to the per-file assets.

Layout of a report folder (written by `sr_jax.report.evaluation.write_report`)::

  index.html        summary table, per-file table, and per file: audio players and spectrograms
  metrics.json      the numbers (see sr_jax/report/evaluation.py)
  <file>/           one folder per evaluated file (its name, '/' -> '_', made unique)
    input.wav  model.wav  [collab.wav]  target.wav    16-bit PCM at the model's rate
    spectrograms.png                                  input, model, [collab,] target, model - target

The page needs nothing but the folder: CSS inline, no scripts, no fonts or other external resources, every
link relative and URL-quoted, every name HTML-escaped.
"""

from __future__ import annotations

import html
import os
import re
import urllib.parse
from collections.abc import Mapping, Sequence

from sr_jax.data import audio as audio_lib
from sr_jax.report import plots
from sr_jax.report.evaluation import LOWER_IS_BETTER, METRICS, METRICS_FILE, PAGE_FILE, FileResult

LABELS = {"model": "model", "collab": "model + collaborative sampling", "spline": "cubic spline",
          "linear": "linear interpolation", "input": "input (soxr)"}
METRIC_LABELS = {"lsd": "LSD", "lsd_hf": "LSD-HF", "lsd_lf": "LSD-LF", "snr": "SNR (dB)", "si_sdr": "SI-SDR (dB)"}
PLAYERS = ("model_input", "model", "collab", "target")  # signals with an audio player, in page order
PLAYER_FILES = {"model_input": "input", "model": "model", "collab": "collab", "target": "target"}
SPECTROGRAMS = "spectrograms.png"
_RESERVED = {METRICS_FILE.lower(), PAGE_FILE.lower()}

_CSS = """
body { font-family: sans-serif; margin: 1.5em; color: #222; max-width: 1100px; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.best { font-weight: bold; background: #d8f0d0; }
th { background: #eee; }
tr.first td { border-top: 2px solid #888; }
.players { display: flex; flex-wrap: wrap; gap: 1em; }
.players figure { margin: 0; }
figcaption { font-size: 0.9em; color: #555; }
img { max-width: 100%; height: auto; }
code { background: #f4f4f4; padding: 0 0.2em; }
section { margin-top: 2em; border-top: 1px solid #ccc; }
"""


def _escape(text) -> str:
  return html.escape(str(text), quote=True)


def _href(*parts: str) -> str:
  """A relative URL to report-relative path parts, each URL-quoted (and then HTML-escaped for an attribute)."""
  return _escape("/".join(urllib.parse.quote(p, safe="") for p in parts))


def folder_name(name: str, used: set[str]) -> str:
  """A unique folder name for a file's assets: its name less the extension, path separators and control
  characters replaced by '_', never hidden, never a report file name; `used` (lower-cased) is updated."""
  stem = os.path.splitext(name)[0] if os.path.splitext(name)[1] else name
  base = re.sub(r"[\x00-\x1f\x7f/\\]", "_", stem).strip() or "file"
  base = ("_" + base[1:] if base.startswith(".") else base)[:100]
  candidate, n = base, 1
  while candidate.lower() in used or candidate.lower() in _RESERVED:
    n += 1
    candidate = f"{base}-{n}"
  used.add(candidate.lower())
  return candidate


def write_file_assets(report_dir: str, result: FileResult, used: set[str]) -> dict:
  """Writes one file's WAVs and spectrogram figure under `report_dir`; returns their report-relative paths:
  {"folder": str, "spectrograms": str, "audio": {signal: str}}."""
  folder = folder_name(result.name, used)
  audio = {}
  for signal in PLAYERS:
    if signal in result.signals:
      audio[signal] = f"{PLAYER_FILES[signal]}.wav"
      audio_lib.write(os.path.join(report_dir, folder, audio[signal]), result.signals[signal], result.rate,
                      subtype="PCM_16")
  panels = {"input": result.signals["model_input"], "model": result.signals["model"]}
  if "collab" in result.signals:
    panels["model + collaborative sampling"] = result.signals["collab"]
  panels["target"] = result.signals["target"]
  panels["difference: model - target"] = result.signals["model"] - result.signals["target"]
  plots.comparison_png(panels, result.rate, os.path.join(report_dir, folder, SPECTROGRAMS), title=result.name)
  return {"folder": folder, "spectrograms": SPECTROGRAMS, "audio": audio}


def _format(metric: str, value: float | None) -> str:
  if value is None:
    return "n/a"
  return f"{value:.3f}" if metric.startswith("lsd") else f"{value:.2f}"


def best_systems(table: Mapping[str, Mapping[str, float | None]], metric: str) -> set[str]:
  """The systems with the best value of `metric` (lowest LSD, highest SNR/SI-SDR); ties all count."""
  values = {s: row[metric] for s, row in table.items() if row[metric] is not None}
  if not values:
    return set()
  best = (min if LOWER_IS_BETTER[metric] else max)(values.values())
  return {s for s, v in values.items() if v == best}


def _metric_cells(table: Mapping[str, Mapping[str, float | None]], system: str) -> str:
  cells = []
  for metric in METRICS:
    css = "num best" if system in best_systems(table, metric) else "num"
    cells.append(f'<td class="{css}">{_format(metric, table[system][metric])}</td>')
  return "".join(cells)


def _header(first: Sequence[str]) -> str:
  names = [*first, *(METRIC_LABELS[m] for m in METRICS)]
  return "<tr>" + "".join(f"<th>{_escape(n)}</th>" for n in names) + "</tr>"


def summary_table(summary: Mapping[str, Mapping[str, float | None]]) -> str:
  rows = [f"<tr><td>{_escape(LABELS.get(s, s))}</td>{_metric_cells(summary, s)}</tr>" for s in summary]
  return f'<table id="summary">{_header(["system"])}{"".join(rows)}</table>'


def files_table(files: Sequence[Mapping], systems: Sequence[str]) -> str:
  rows = []
  for i, entry in enumerate(files):
    for j, system in enumerate(systems):
      first = ""
      if j == 0:
        first = (f'<td rowspan="{len(systems)}"><a href="#file-{i}">{_escape(entry["name"])}</a></td>'
                 f'<td rowspan="{len(systems)}" class="num">{entry["seconds"]:.2f}</td>')
      table = {s: entry[s] for s in systems}
      row_class = ' class="first"' if j == 0 else ""
      rows.append(f"<tr{row_class}>{first}<td>{_escape(LABELS.get(system, system))}</td>"
                  f"{_metric_cells(table, system)}</tr>")
  return f'<table id="files">{_header(["file", "seconds", "system"])}{"".join(rows)}</table>'


def file_section(index: int, entry: Mapping, asset: Mapping) -> str:
  folder = asset["folder"]
  players = []
  for signal, path in asset["audio"].items():
    label = "input" if signal == "model_input" else LABELS.get(signal, signal)
    players.append(f"<figure><figcaption>{_escape(label)}</figcaption>"
                   f'<audio controls preload="metadata" src="{_href(folder, path)}"></audio></figure>')
  name = _escape(entry["name"])
  return (f'<section id="file-{index}"><h3>{name}</h3><div class="players">{"".join(players)}</div>'
          f'<img src="{_href(folder, asset["spectrograms"])}" alt="spectrograms of {name}" width="1000"></section>')


def page(doc: Mapping, assets: Sequence[Mapping], cutoff: float, rate: int) -> str:
  """The HTML text of the report page for the metrics.json document `doc` and the files' `assets`."""
  systems = list(doc["summary"])
  n = len(doc["files"])
  sections = "".join(file_section(i, entry, asset) for i, (entry, asset) in enumerate(zip(doc["files"], assets)))
  return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sr_jax evaluation: {_escape(os.path.basename(doc["checkpoint"].rstrip("/")) or doc["checkpoint"])}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>sr_jax evaluation</h1>
<p>Checkpoint <code>{_escape(doc["checkpoint"])}</code>, degradation chain <code>{_escape(doc["chain"])}</code>,
{n} file{"s" if n != 1 else ""} at {rate} Hz. Numbers: <a href="{_href(METRICS_FILE)}">{METRICS_FILE}</a>.</p>
<h2>Summary</h2>
<p>Plain mean over the {n} file{"s" if n != 1 else ""} (each file counts once, whatever its length); the best
value of each column is highlighted. LSD (log-spectral distance, log10 power): lower is better; LSD-HF / LSD-LF
cover the bins at / below {cutoff:g} Hz. SNR and SI-SDR in dB: higher is better. Baselines: cubic-spline and
linear interpolation of the low-rate input (Kuleshov et al. 2017) and the band-limited soxr input itself.</p>
{summary_table(doc["summary"])}
<h2>Per file</h2>
{files_table(doc["files"], systems)}
<h2>Listen and look</h2>
<p>Spectrograms (one colour scale per file): the model's input, its output, the target and the difference
model - target.</p>
{sections}
</body>
</html>
"""


def write_page(path: str, doc: Mapping, assets: Sequence[Mapping], cutoff: float, rate: int) -> None:
  with open(path, "w", encoding="utf-8") as f:
    f.write(page(doc, assets, cutoff, rate))
