"""The evaluation report page: one self-contained index.html with relative links to the chosen files' assets.

Layout of a report folder (written by `sr_jax.report.evaluation.write_report`)::

  index.html        summary table, one sortable table of every file's metrics, and for the chosen files (at most
                    --max_assets, see `sr_jax.report.schema.choose_assets`): audio players and spectrograms
  metrics.json      the numbers (see sr_jax/report/schema.py)
  <file>/           one folder per chosen file (its name, '/' -> '_', made unique)
    input.wav  model.wav  [collab.wav]  target.wav    16-bit PCM at the model's rate
    spectrograms.png                                  input, model, [collab,] target, model - target

The page needs nothing but the folder: CSS and one small script inline, no fonts or other external resources,
every link relative and URL-quoted, every name HTML-escaped. The script only sorts the per-file table when a column
header is clicked (or focused and Enter pressed); without scripts the table is the same, in file order.
This module reads the report's data through `sr_jax.report.schema` only (never `evaluation`, which calls it).
"""

from __future__ import annotations

import html
import os
import re
import urllib.parse
from collections.abc import Mapping, Sequence

from sr_jax.data import audio as audio_lib
from sr_jax.report import plots
from sr_jax.report.schema import (LABELS, LOWER_IS_BETTER, METRIC_LABELS, METRICS_FILE, PAGE_FILE, REASONS,
                                  FileResult, lsd_gain, metric_names)

PLAYERS = ("model_input", "model", "collab", "target")  # signals with an audio player, in page order
PLAYER_FILES = {"model_input": "input", "model": "model", "collab": "collab", "target": "target"}
SPECTROGRAMS = "spectrograms.png"
_RESERVED = {METRICS_FILE.lower(), PAGE_FILE.lower()}

_CSS = """
body { font-family: sans-serif; margin: 1.5em; color: #222; max-width: 1100px; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; }
td.num, #files td { text-align: right; font-variant-numeric: tabular-nums; }
#files td.name { text-align: left; }
#files th, #files td { padding: 0.2em 0.4em; }
td.best { font-weight: bold; background: #d8f0d0; }
th { background: #eee; }
.wide { overflow-x: auto; max-width: 100%; }
table.sortable th[data-col] { cursor: pointer; }
table.sortable th[data-col]:hover { background: #ddd; }
th[aria-sort=ascending]::after { content: " \\25B2"; }
th[aria-sort=descending]::after { content: " \\25BC"; }
.players { display: flex; flex-wrap: wrap; gap: 1em; }
.players figure { margin: 0; }
figcaption { font-size: 0.9em; color: #555; }
img { max-width: 100%; height: auto; }
code { background: #f4f4f4; padding: 0 0.2em; }
section { margin-top: 2em; border-top: 1px solid #ccc; }
"""

# Sorts the per-file table by the clicked column: numbers as numbers (n/a last), the file column as text; the first
# click puts the best values first (data-first), the next reverses; ties keep their order.
_SCRIPT = """
(function () {
  var table = document.getElementById("files");
  if (!table || !table.tBodies.length) return;
  table.className += " sortable";
  var heads = table.querySelectorAll("th[data-col]");
  function key(row, col, text) {
    var s = row.cells[col].textContent, v = parseFloat(s);
    return text ? s : (isNaN(v) ? null : v);
  }
  function sort(th) {
    var col = +th.getAttribute("data-col"), text = th.getAttribute("data-type") === "text";
    var now = th.getAttribute("aria-sort");
    var dir = now ? (now === "ascending" ? "descending" : "ascending") : (th.getAttribute("data-first") || "ascending");
    for (var i = 0; i < heads.length; i++) heads[i].removeAttribute("aria-sort");
    th.setAttribute("aria-sort", dir);
    var sign = dir === "ascending" ? 1 : -1, body = table.tBodies[0];
    var rows = Array.prototype.map.call(body.rows, function (row, i) { return [key(row, col, text), i, row]; });
    rows.sort(function (a, b) {
      if (a[0] === null || b[0] === null) return a[0] === b[0] ? a[1] - b[1] : (a[0] === null ? 1 : -1);
      var c = text ? a[0].localeCompare(b[0], undefined, {numeric: true}) : a[0] - b[0];
      return c ? sign * c : a[1] - b[1];
    });
    var fragment = document.createDocumentFragment();
    rows.forEach(function (r) { fragment.appendChild(r[2]); });
    body.appendChild(fragment);
  }
  Array.prototype.forEach.call(heads, function (th) {
    th.tabIndex = 0;
    th.title = "sort by this column";
    th.addEventListener("click", function () { sort(th); });
    th.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(th); }
    });
  });
})();
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
  return f"{value:.3f}" if metric.startswith("lsd") or metric == "stoi" else f"{value:.2f}"


def _format_gain(gain: float | None) -> str:
  return "n/a" if gain is None else f"{100 * gain:.1f}%"


def best_systems(table: Mapping[str, Mapping[str, float | None]], metric: str) -> set[str]:
  """The systems with the best value of `metric` (lowest LSD, highest SNR/SI-SDR/PESQ/STOI); ties all count."""
  values = {s: row.get(metric) for s, row in table.items() if row.get(metric) is not None}
  if not values:
    return set()
  best = (min if LOWER_IS_BETTER[metric] else max)(values.values())
  return {s for s, v in values.items() if v == best}


def summary_table(summary: Mapping[str, Mapping[str, float | None]]) -> str:
  """One row per system, one column per metric; the best value of each column highlighted."""
  metrics = metric_names(summary)
  best = {m: best_systems(summary, m) for m in metrics}
  head = "<tr><th>system</th>" + "".join(f"<th>{_escape(METRIC_LABELS[m])}</th>" for m in metrics) + "</tr>"
  rows = []
  for system, row in summary.items():
    cells = "".join(f'<td class="{"num best" if system in best[m] else "num"}">{_format(m, row.get(m))}</td>'
                    for m in metrics)
    rows.append(f"<tr><td>{_escape(LABELS.get(system, system))}</td>{cells}</tr>")
  return f'<table id="summary">{head}{"".join(rows)}</table>'


def _first(metric: str) -> str:
  """The sort direction that puts a metric's best values first."""
  return "ascending" if LOWER_IS_BETTER[metric] else "descending"


def files_table(files: Sequence[Mapping], systems: Sequence[str], linked: Sequence[int] = ()) -> str:
  """Every file in one row: name (a link to its section for the files in `linked`), seconds, LSD gain, then per
  metric one column per system, the best system of each metric highlighted. Sortable by any column with the page's
  script; a plain table in file order without it."""
  metrics = metric_names({s: files[0][s] for s in systems}) if files else ()
  top = ('<th rowspan="2" data-col="0" data-type="text">file</th><th rowspan="2" data-col="1">seconds</th>'
         '<th rowspan="2" data-col="2" data-first="descending">LSD gain</th>'
         + "".join(f'<th colspan="{len(systems)}">{_escape(METRIC_LABELS[m])}</th>' for m in metrics))
  sub, col = [], 3
  for metric in metrics:
    for system in systems:
      sub.append(f'<th data-col="{col}" data-first="{_first(metric)}" title="{_escape(LABELS.get(system, system))}">'
                 f"{_escape(system)}</th>")
      col += 1
  linked = set(linked)
  rows = []
  for i, entry in enumerate(files):
    name = _escape(entry["name"])
    link = f'<a href="#file-{i}">{name}</a>' if i in linked else name
    cells = [f'<td class="name">{link}</td>', f"<td>{entry['seconds']:.2f}</td>",
             f"<td>{_format_gain(lsd_gain(entry))}</td>"]
    for metric in metrics:
      best = best_systems({s: entry[s] for s in systems}, metric)
      cells += [f'<td class="best">{_format(metric, entry[s].get(metric))}</td>' if s in best else
                f"<td>{_format(metric, entry[s].get(metric))}</td>" for s in systems]
    rows.append(f"<tr>{''.join(cells)}</tr>")
  return (f'<div class="wide"><table id="files"><thead><tr>{top}</tr><tr>{"".join(sub)}</tr></thead>'
          f'<tbody>{"".join(rows)}</tbody></table></div>')


def file_section(index: int, entry: Mapping, asset: Mapping) -> str:
  """A chosen file's players and spectrograms, with why it was chosen and its LSD gain."""
  folder = asset["folder"]
  players = []
  for signal, path in asset["audio"].items():
    label = "input" if signal == "model_input" else LABELS.get(signal, signal)
    players.append(f"<figure><figcaption>{_escape(label)}</figcaption>"
                   f'<audio controls preload="metadata" src="{_href(folder, path)}"></audio></figure>')
  name = _escape(entry["name"])
  why = "; ".join(REASONS.get(w, w) for w in asset.get("why", ()))
  note = f'<p class="why">Shown as {_escape(why)}. Its LSD gain: {_format_gain(lsd_gain(entry))}.</p>' if why else ""
  return (f'<section id="file-{index}"><h3>{name}</h3>{note}<div class="players">{"".join(players)}</div>'
          f'<img src="{_href(folder, asset["spectrograms"])}" alt="spectrograms of {name}" width="1000"></section>')


def page(doc: Mapping, assets: Mapping[int, Mapping], cutoff: float, rate: int) -> str:
  """The HTML text of the report page for the metrics.json document `doc` and the chosen files' `assets`
  ({index into doc["files"]: {"folder", "spectrograms", "audio", "why"}})."""
  systems = list(doc["summary"])
  n = len(doc["files"])
  files = f"{n} file{'s' if n != 1 else ''}"
  sections = "".join(file_section(i, doc["files"][i], assets[i]) for i in sorted(assets))
  speech = [METRIC_LABELS[m] for m in metric_names(doc["summary"]) if m in ("pesq", "stoi")]
  speech_note = (f" {' and '.join(speech)}: higher is better (sr_jax/report/speech.py)." if speech else "")
  gain = lsd_gain(doc["summary"])
  gain_note = (f" The model's mean LSD is {_format_gain(gain)} below the cubic spline's." if gain is not None else "")
  shown = (f"Audio and spectrograms of {len(assets)} of the {files}: the first, the best, median and worst by LSD "
           "gain, then files spread over that ranking (<code>--max_assets</code>); their names link here from the "
           "table. Spectrograms (one colour scale per file): the model's input, its output, the target and the "
           "difference model - target." if assets else
           "No audio or spectrograms in this report (<code>--max_assets=0</code>).")
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
{files} at {rate} Hz. Numbers: <a href="{_href(METRICS_FILE)}">{METRICS_FILE}</a>.</p>
<h2>Summary</h2>
<p>Plain mean over the {files} (each file counts once, whatever its length); the best
value of each column is highlighted. LSD (log-spectral distance, log10 power): lower is better; LSD-HF / LSD-LF
cover the bins at / below {cutoff:g} Hz. SNR and SI-SDR in dB: higher is better.{speech_note} Baselines:
cubic-spline and linear interpolation of the low-rate input (Kuleshov et al. 2017) and the band-limited soxr input
itself.{gain_note}</p>
{summary_table(doc["summary"])}
<h2>Per file</h2>
<p>Every file; click a column header to sort by it (best first, again to reverse). LSD gain: how much lower the
model's LSD is than the cubic spline's, as a percentage of the spline's (negative: worse than spline). Each metric's
best system in a file is highlighted.</p>
{files_table(doc["files"], systems, sorted(assets))}
<h2>Listen and look</h2>
<p>{shown}</p>
{sections}
<script>{_SCRIPT}</script>
</body>
</html>
"""


def write_page(path: str, doc: Mapping, assets: Mapping[int, Mapping], cutoff: float, rate: int) -> None:
  with open(path, "w", encoding="utf-8") as f:
    f.write(page(doc, assets, cutoff, rate))
