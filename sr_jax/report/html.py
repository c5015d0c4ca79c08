"""The evaluation report page, one self-contained index.html with relative links to the chosen files' assets, and
report.md, the report's compact tables in GitHub markdown (for a model card).

Layout of a report folder (written by `sr_jax.report.evaluation.write_report`)::

  index.html        summary table (one per degradation chain, with a "by degradation" table over the chains), a
                    "by source" table when the files group by test source, one sortable table of every file's
                    metrics (with a chain column for named chains), and for the chosen (chain, file) pairs (at most
                    --max_assets, see `sr_jax.report.schema.choose_assets`): audio players and spectrograms
  report.md         the by-degradation and by-source tables and each chain's summary, in GitHub markdown
  metrics.json      the numbers (see sr_jax/report/schema.py)
  <file>/           one folder per chosen pair (the file's name, after the chain's for named chains, '/' -> '_',
                    made unique)
    input.wav  model.wav  [collab.wav]  target.wav    16-bit PCM at the model's rate
    spectrograms.png                                  input, model, [collab,] target, model - target

The page needs nothing but the folder: CSS and one small script inline, no fonts or other external resources,
every link relative and URL-quoted, every name HTML-escaped. The script only sorts the per-file table when a column
header is clicked (or focused and Enter pressed); without scripts the table is the same, in file order.
The compact tables (`degradation_cells`, `source_cells`) are the same on the page and in report.md: the model's and
the input's mean LSD, SNR and SI-SDR (and PESQ / STOI when present), and for a chain the model's gain: its LSD
below the input's and the cubic spline's (a percentage of theirs) and its SNR and SI-SDR above the input's (dB).
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
from sr_jax.report.schema import (COMPARED, KEY_METRICS, LABELS, LOWER_IS_BETTER, MARKDOWN_FILE, METRIC_LABELS,
                                  METRICS_FILE, PAGE_FILE, RANK_BASELINE, RANKED, REASONS, SPEECH_METRICS,
                                  FileResult, chain_label, chain_views, improvement, lsd_gain, metric_names)

PLAYERS = ("model_input", "model", "collab", "target")  # signals with an audio player, in page order
PLAYER_FILES = {"model_input": "input", "model": "model", "collab": "collab", "target": "target"}
SPECTROGRAMS = "spectrograms.png"
_RESERVED = {METRICS_FILE.lower(), PAGE_FILE.lower(), MARKDOWN_FILE.lower()}
SHORT_LABELS = {"lsd": "LSD", "snr": "SNR", "si_sdr": "SI-SDR", "pesq": "PESQ-wb", "stoi": "STOI"}
UNITS = {"snr": " (dB)", "si_sdr": " (dB)"}

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
  """Writes one file's WAVs and spectrogram figure under `report_dir` (in a folder named after the file, after its
  chain's name for a named chain); returns their report-relative paths: {"folder": str, "spectrograms": str,
  "audio": {signal: str}}."""
  label = result.name if result.chain is None else f"{result.chain}/{result.name}"
  folder = folder_name(label, used)
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
  title = result.name if result.chain is None else f"{result.name} ({result.chain})"
  plots.comparison_png(panels, result.rate, os.path.join(report_dir, folder, SPECTROGRAMS), title=title)
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


def summary_table(summary: Mapping[str, Mapping[str, float | None]], table_id: str = "summary") -> str:
  """One row per system, one column per metric; the best value of each column highlighted."""
  metrics = metric_names(summary)
  best = {m: best_systems(summary, m) for m in metrics}
  head = "<tr><th>system</th>" + "".join(f"<th>{_escape(METRIC_LABELS[m])}</th>" for m in metrics) + "</tr>"
  rows = []
  for system, row in summary.items():
    cells = "".join(f'<td class="{"num best" if system in best[m] else "num"}">{_format(m, row.get(m))}</td>'
                    for m in metrics)
    rows.append(f"<tr><td>{_escape(LABELS.get(system, system))}</td>{cells}</tr>")
  return f'<table id="{_escape(table_id)}">{head}{"".join(rows)}</table>'


# ----- the compact tables (the page and report.md) ---------------------------------------------------------------


def key_metrics(doc: Mapping) -> tuple[str, ...]:
  """The compact tables' metrics: `KEY_METRICS`, then the speech metrics that were computed."""
  present = set()
  for view in chain_views(doc):
    present.update(metric_names(view["summary"]))
  return tuple(m for m in KEY_METRICS + SPEECH_METRICS if m in present)


def _format_improvement(metric: str, value: float | None) -> str:
  if value is None:
    return "n/a"
  if LOWER_IS_BETTER[metric]:
    return _format_gain(value)
  return f"{value:+.3f}" if metric == "stoi" else f"{value:+.2f}"


def _value(summary: Mapping, system: str, metric: str) -> float | None:
  return summary.get(system, {}).get(metric)


def degradation_cells(doc: Mapping) -> tuple[list[str], list[list[str]]]:
  """(header, rows) of the "by degradation" table: one row per chain (name and chain for named chains, else the
  chain), per key metric the model's and the input's mean, and the model's gain: for LSD how much lower than the
  input's and the cubic spline's (a percentage of theirs), for the others how much higher than the input's."""
  views, named = chain_views(doc), "chains" in doc
  metrics = key_metrics(doc)
  header = ["degradation"] + (["chain"] if named else [])
  for m in metrics:
    label, unit = SHORT_LABELS[m], UNITS.get(m, "")
    header += [f"{label} {RANKED}{unit}", f"{label} {COMPARED}{unit}"]
    if LOWER_IS_BETTER[m]:
      header += [f"{label} below {COMPARED}", f"{label} below {RANK_BASELINE}"]
    else:
      header.append(f"{label} gain{unit}")
  rows = []
  for view in views:
    summary = view["summary"]
    row = [chain_label(view)] + ([view["chain"]] if named else [])
    for m in metrics:
      model = _value(summary, RANKED, m)
      row += [_format(m, model), _format(m, _value(summary, COMPARED, m))]
      baselines = (COMPARED, RANK_BASELINE) if LOWER_IS_BETTER[m] else (COMPARED,)
      row += [_format_improvement(m, improvement(model, _value(summary, b, m), m)) for b in baselines]
    rows.append(row)
  return header, rows


def source_cells(doc: Mapping) -> tuple[list[str], list[list[str]]] | None:
  """(header, rows) of the "by source" table, or None without sources: one row per source (per source and chain
  for named chains), with its family when known, its number of files, and per key metric the model's and the
  input's mean over the source's files."""
  views, named = chain_views(doc), "chains" in doc
  if not all("sources" in view for view in views):
    return None
  metrics = key_metrics(doc)
  families = any("family" in group for view in views for group in view["sources"])
  header = ["source"] + (["family"] if families else []) + ["files"] + (["degradation"] if named else [])
  for m in metrics:
    label, unit = SHORT_LABELS[m], UNITS.get(m, "")
    header += [f"{label} {RANKED}{unit}", f"{label} {COMPARED}{unit}"]
  rows = []
  for group in views[0]["sources"]:
    for view in views:
      match = next(g for g in view["sources"] if g["source"] == group["source"])
      row = [match["source"]] + ([match.get("family", "")] if families else []) + [str(match["files"])]
      row += [chain_label(view)] if named else []
      for m in metrics:
        row += [_format(m, _value(match["summary"], RANKED, m)), _format(m, _value(match["summary"], COMPARED, m))]
      rows.append(row)
  return header, rows


def _summary_cells(summary: Mapping[str, Mapping[str, float | None]]) -> tuple[list[str], list[list[str]]]:
  metrics = metric_names(summary)
  header = ["system"] + [METRIC_LABELS[m] for m in metrics]
  return header, [[LABELS.get(system, system)] + [_format(m, row.get(m)) for m in metrics]
                  for system, row in summary.items()]


_NUMBER = re.compile(r"[+-]?([0-9.]+%?|n/a)")


def compact_table(cells: tuple[list[str], list[list[str]]], table_id: str, code_columns: Sequence[str] = ()) -> str:
  """An HTML table of `degradation_cells` or `source_cells` (numbers right-aligned; `code_columns` as code)."""
  header, rows = cells
  head = "".join(f"<th>{_escape(h)}</th>" for h in header)
  body = []
  for row in rows:
    tds = []
    for column, cell in zip(header, row):
      if column in code_columns:
        tds.append(f"<td><code>{_escape(cell)}</code></td>")
      else:
        tds.append(f'<td class="num">{_escape(cell)}</td>' if _NUMBER.fullmatch(cell) else f"<td>{_escape(cell)}</td>")
    body.append(f"<tr>{''.join(tds)}</tr>")
  return f'<div class="wide"><table id="{_escape(table_id)}"><tr>{head}</tr>{"".join(body)}</table></div>'


def _first(metric: str) -> str:
  """The sort direction that puts a metric's best values first."""
  return "ascending" if LOWER_IS_BETTER[metric] else "descending"


def files_table(files: Sequence[Mapping], systems: Sequence[str], linked: Sequence[int] = (),
                chains: Sequence[str] | None = None) -> str:
  """Every file in one row: name (a link to its section for the files in `linked`), its chain (`chains`, one label
  per row, for named chains), its source (when the entries have one), seconds, LSD gain, then per metric one column
  per system, the best system of each metric highlighted. Sortable by any column with the page's script; a plain
  table in file order without it."""
  metrics = metric_names({s: files[0][s] for s in systems}) if files else ()
  texts = ["file"] + (["chain"] if chains is not None else []) + (["source"] if files and "source" in files[0]
                                                                   else [])
  top = "".join(f'<th rowspan="2" data-col="{c}" data-type="text">{t}</th>' for c, t in enumerate(texts))
  col = len(texts)
  top += (f'<th rowspan="2" data-col="{col}">seconds</th>'
          f'<th rowspan="2" data-col="{col + 1}" data-first="descending">LSD gain</th>'
          + "".join(f'<th colspan="{len(systems)}">{_escape(METRIC_LABELS[m])}</th>' for m in metrics))
  sub, col = [], col + 2
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
    cells = [f'<td class="name">{link}</td>']
    if chains is not None:
      cells.append(f'<td class="name">{_escape(chains[i])}</td>')
    if "source" in texts:
      cells.append(f'<td class="name">{_escape(entry.get("source", ""))}</td>')
    cells += [f"<td>{entry['seconds']:.2f}</td>", f"<td>{_format_gain(lsd_gain(entry))}</td>"]
    for metric in metrics:
      best = best_systems({s: entry[s] for s in systems}, metric)
      cells += [f'<td class="best">{_format(metric, entry[s].get(metric))}</td>' if s in best else
                f"<td>{_format(metric, entry[s].get(metric))}</td>" for s in systems]
    rows.append(f"<tr>{''.join(cells)}</tr>")
  return (f'<div class="wide"><table id="files"><thead><tr>{top}</tr><tr>{"".join(sub)}</tr></thead>'
          f'<tbody>{"".join(rows)}</tbody></table></div>')


def file_section(index: int, entry: Mapping, asset: Mapping, chain: str | None = None) -> str:
  """A chosen file's players and spectrograms (under the named `chain`), with why it was chosen and its LSD gain."""
  folder = asset["folder"]
  players = []
  for signal, path in asset["audio"].items():
    label = "input" if signal == "model_input" else LABELS.get(signal, signal)
    players.append(f"<figure><figcaption>{_escape(label)}</figcaption>"
                   f'<audio controls preload="metadata" src="{_href(folder, path)}"></audio></figure>')
  name = _escape(entry["name"])
  title = name if chain is None else f"{name} <small>(degradation {_escape(chain)})</small>"
  why = "; ".join(REASONS.get(w, w) for w in asset.get("why", ()))
  note = f'<p class="why">Shown as {_escape(why)}. Its LSD gain: {_format_gain(lsd_gain(entry))}.</p>' if why else ""
  return (f'<section id="file-{index}"><h3>{title}</h3>{note}<div class="players">{"".join(players)}</div>'
          f'<img src="{_href(folder, asset["spectrograms"])}" alt="spectrograms of {name}" width="1000"></section>')


def _gain_note(summary: Mapping) -> str:
  gain = lsd_gain(summary)
  return f" The model's mean LSD is {_format_gain(gain)} below the cubic spline's." if gain is not None else ""


def _summaries(doc: Mapping, files: str, cutoff: float | None, speech_note: str) -> str:
  """The page's summary part: one table (a single chain), or the by-degradation table and one table per chain."""
  intro = (f"Plain mean over the {files} (each file counts once, whatever its length); the best value of each "
           "column is highlighted. LSD (log-spectral distance, log10 power): lower is better; LSD-HF / LSD-LF "
           + (f"cover the bins at / below {cutoff:g} Hz." if cutoff is not None else
              "cover the bins at / below each chain's cut-off (its LOW / 2, or the Nyquist frequency without a "
              "sample step).")
           + f" SNR and SI-SDR in dB: higher is better.{speech_note} Baselines: cubic-spline and linear "
           "interpolation of the low-rate input (Kuleshov et al. 2017) and the band-limited soxr input itself.")
  if "chains" not in doc:
    return f"<h2>Summary</h2>\n<p>{intro}{_gain_note(doc['summary'])}</p>\n{summary_table(doc['summary'])}"
  parts = [f"<h2>By degradation</h2>\n<p>Each degradation chain applied to the same {files} (the same seed per "
           "file); the model's and the input's means, and the model's gain: its LSD below the input's and the cubic "
           "spline's (a percentage of theirs), its SNR and SI-SDR above the input's (dB).</p>",
           compact_table(degradation_cells(doc), "chains", ("chain",)),
           f"<h2>Summary per degradation</h2>\n<p>{intro}</p>"]
  for i, view in enumerate(doc["chains"]):
    parts.append(f'<h3 id="chain-{i}">{_escape(view["name"])}</h3>\n<p>Chain <code>{_escape(view["chain"])}</code>, '
                 f'cut-off {view["cutoff_hz"]:g} Hz.{_gain_note(view["summary"])}</p>\n'
                 f"{summary_table(view['summary'], f'summary-{i}')}")
  return "\n".join(parts)


def _sources_part(doc: Mapping) -> str:
  cells = source_cells(doc)
  if cells is None:
    return ""
  origin = doc.get("sources_from", "")
  how = ("the subfolders of the data folder" if origin == "subfolders" else
         f"the <code>source</code> column of <code>{_escape(origin)}</code>")
  return (f"<h2>By source</h2>\n<p>The files grouped by test source ({how}): the model's and the input's mean over "
          f"each source's files.</p>\n{compact_table(cells, 'sources')}\n")


def page(doc: Mapping, assets: Mapping[int, Mapping], cutoff: float | None, rate: int) -> str:
  """The HTML text of the report page for the metrics.json document `doc` (either layout) and the chosen pairs'
  `assets` ({index into the chains' files one after the other: {"folder", "spectrograms", "audio", "why"}});
  `cutoff`: the single chain's LSD-HF band edge (named chains carry theirs)."""
  views, named = chain_views(doc), "chains" in doc
  systems = list(views[0]["summary"])
  pairs = [(view, entry) for view in views for entry in view["files"]]
  n = len(views[0]["files"])
  files = f"{n} file{'s' if n != 1 else ''}"
  sections = "".join(file_section(i, pairs[i][1], assets[i], pairs[i][0]["name"]) for i in sorted(assets))
  speech = [METRIC_LABELS[m] for m in metric_names(views[0]["summary"]) if m in SPEECH_METRICS]
  speech_note = (f" {' and '.join(speech)}: higher is better (sr_jax/report/speech.py)." if speech else "")
  what = (f"{len(views)} degradation chain{'s' if len(views) != 1 else ''} (named below)" if named else
          f"degradation chain <code>{_escape(doc['chain'])}</code>")
  pool = f"(chain, file) pairs ({len(pairs)})" if named else files
  shown = (f"Audio and spectrograms of {len(assets)} of the {pool}: the first, the best, median and worst by LSD "
           "gain, then files spread over that ranking (<code>--max_assets</code>); their names link here from the "
           "table. Spectrograms (one colour scale per file): the model's input, its output, the target and the "
           "difference model - target." if assets else
           "No audio or spectrograms in this report (<code>--max_assets=0</code>).")
  chains = [view["name"] for view, _ in pairs] if named else None
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
<p>Checkpoint <code>{_escape(doc["checkpoint"])}</code>, {what},
{files} at {rate} Hz. Numbers: <a href="{_href(METRICS_FILE)}">{METRICS_FILE}</a>; the compact tables in
markdown: <a href="{_href(MARKDOWN_FILE)}">{MARKDOWN_FILE}</a>.</p>
{_summaries(doc, files, cutoff, speech_note)}
{_sources_part(doc)}<h2>Per file</h2>
<p>Every file{" under every chain" if named else ""}; click a column header to sort by it (best first, again to
reverse). LSD gain: how much lower the model's LSD is than the cubic spline's, as a percentage of the spline's
(negative: worse than spline). Each metric's best system in a file is highlighted.</p>
{files_table([entry for _, entry in pairs], systems, sorted(assets), chains)}
<h2>Listen and look</h2>
<p>{shown}</p>
{sections}
<script>{_SCRIPT}</script>
</body>
</html>
"""


def write_page(path: str, doc: Mapping, assets: Mapping[int, Mapping], cutoff: float | None, rate: int) -> None:
  with open(path, "w", encoding="utf-8") as f:
    f.write(page(doc, assets, cutoff, rate))


# ----- report.md -------------------------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#<>])")


def md_escape(text: str) -> str:
  """Text for a GitHub markdown table cell: markdown's special characters backslash-escaped ('|' ends a cell, '<'
  starts HTML), '&' as an entity, line breaks as spaces."""
  text = str(text).replace("&", "&amp;").replace("\n", " ").replace("\r", " ")
  return _MD_SPECIAL.sub(r"\\\1", text)


def md_table(cells: tuple[list[str], list[list[str]]], code_columns: Sequence[str] = ()) -> str:
  """A GitHub markdown table: numbers right-aligned (by the first row), text left; `code_columns` as code spans."""
  header, rows = cells

  def cell(column: str, text: str) -> str:
    if column in code_columns and text:
      return "`" + text.replace("`", "'").replace("|", "\\|") + "`"
    return md_escape(text)

  numeric = [bool(rows) and all(_NUMBER.fullmatch(row[c]) for row in rows) for c in range(len(header))]
  lines = ["| " + " | ".join(md_escape(h) for h in header) + " |",
           "|" + "|".join("---:" if num else ":---" for num in numeric) + "|"]
  lines += ["| " + " | ".join(cell(c, t) for c, t in zip(header, row)) + " |" for row in rows]
  return "\n".join(lines)


def markdown(doc: Mapping, rate: int) -> str:
  """report.md: the by-degradation table, the by-source table (when the files group by source) and each chain's
  summary table, in GitHub markdown, with a few lines saying what the numbers are."""
  views, named = chain_views(doc), "chains" in doc
  n = len(views[0]["files"])
  chains = f"{len(views)} degradation chain{'s' if len(views) != 1 else ''}"
  parts = [f"# sr_jax evaluation: `{doc['checkpoint']}`",
           f"{n} file{'s' if n != 1 else ''} at {rate} Hz, {chains}. Every number is the plain mean over the files "
           "(each file counts once). LSD (log-spectral distance): lower is better; SNR and SI-SDR in dB: higher is "
           "better. Gains: the model's mean LSD below the input's and the cubic spline's, as a percentage of theirs; "
           "its SNR and SI-SDR above the input's, in dB. "
           f"Written by `sr-jax evaluate` with {METRICS_FILE} and {PAGE_FILE}.",
           "## By degradation", md_table(degradation_cells(doc), ("chain",) if named else ("degradation",))]
  cells = source_cells(doc)
  if cells is not None:
    origin = doc.get("sources_from", "")
    how = "the data folder's subfolders" if origin == "subfolders" else f"the source column of `{origin}`"
    parts += ["## By source", f"The files grouped by test source ({how}).", md_table(cells)]
  parts.append("## Summary per degradation" if named else "## Summary")
  for view in views:
    if named:
      parts.append(f"### {md_escape(view['name'])}\n\nChain `{view['chain']}`, cut-off {view['cutoff_hz']:g} Hz.")
    parts.append(md_table(_summary_cells(view["summary"])))
  return "\n\n".join(parts) + "\n"


def write_markdown(path: str, doc: Mapping, rate: int) -> None:
  with open(path, "w", encoding="utf-8") as f:
    f.write(markdown(doc, rate))
