"""The evaluation report's data: systems, metrics and their labels, one file's result, the metrics.json document,
the summary over files and the choice of the files that get audio and spectrograms.

`sr_jax.report.evaluation` computes and writes these, `sr_jax.report.html` shows them; both import this module,
which imports numpy only.

metrics.json of one chain (`--chain`, or the model's own chain)::

  {"chain": str, "checkpoint": str, ["stride": int, "window": int (the model's hop between windows and its window,
   from launch/evaluate.py),] ["fill_gain_db": float (its spectral fill's level, for a model with one),]
   ["sources_from": str,]
   "files": [{"name": str, "seconds": float, ["source": str,] "model": {METRICS}, ["collab": {METRICS},]
              "spline": {METRICS}, "linear": {METRICS}, "input": {METRICS}}, ...],
   "summary": {"model": {METRICS}, ["collab": {METRICS},] "spline": {...}, "linear": {...}, "input": {...}},
   ["sources": [SOURCE, ...],]
   "assets": [{"name": str, "folder": str, "why": [REASON, ...]}, ...]}

with METRICS = {"lsd": float, "lsd_hf": float, "lsd_lf": float, "snr": float, "si_sdr": float, ["pesq": float,
"stoi": float]} ("pesq" and "stoi" when their packages are installed, see `sr_jax.report.speech`); a metric that is
not finite or cannot be computed is null. "files" has every evaluated file, in path order; "summary" the plain mean
over them (null where a file's value is null); "assets" the files whose audio and spectrograms were written (in the
folder "folder" of the report), in file order, each with why it was chosen (`choose_assets`).

metrics.json of named chains (`--chains`, even one): the same numbers per chain, in the order given::

  {"checkpoint": str, ["stride": int, "window": int,] ["fill_gain_db": float,] ["sources_from": str,]
   "chains": [{"name": str, "chain": str, "cutoff_hz": float, "summary": {...}, "files": [...],
               ["sources": [SOURCE, ...]]}, ...],
   "assets": [{"chain": str, "name": str, "folder": str, "why": [REASON, ...]}, ...]}

Every chain lists the same files (a file unusable for one is unusable for all); "cutoff_hz" is the LSD-HF / LSD-LF
band edge of that chain. The assets are chosen over all (chain, file) pairs at once (`choose_assets` of the chains'
files one after the other), in that order.

Test sources: when the files can be grouped (a packaged corpus's manifest.tsv, or several subfolders of the data
folder; see `sr_jax.report.evaluation.file_sources`), every file entry has its "source", "sources_from" says where
the grouping came from, and each chain has "sources": SOURCE = {"source": str, ["family": str,] "files": int,
"summary": {system: {METRICS}}}, the plain mean over that source's files, sorted by source (`group_sources`).

Ranking files: a file's *LSD gain* is how much lower the model's LSD is than the cubic-spline baseline's, as a
fraction of the latter: ``(spline LSD - model LSD) / spline LSD`` (0.59: 59% below spline; negative: worse than
spline), the figure the model cards quote. Files are ranked by it, highest first; a file whose gain is null
(a null LSD, or a spline LSD of 0) ranks below all others.
"""

from __future__ import annotations

import heapq
import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

ENHANCED = ("model", "collab")  # systems that run a network, in report order
BASELINES = {"spline": "cubic", "linear": "linear", "input": "soxr"}  # system -> upsampling method of degrade
SYSTEMS = ENHANCED + tuple(BASELINES)
METRICS = ("lsd", "lsd_hf", "lsd_lf", "snr", "si_sdr")  # sr_jax.metrics.METRIC_NAMES (the tests check)
SPEECH_METRICS = ("pesq", "stoi")  # optional (sr_jax.report.speech)
ALL_METRICS = METRICS + SPEECH_METRICS
LOWER_IS_BETTER = {"lsd": True, "lsd_hf": True, "lsd_lf": True, "snr": False, "si_sdr": False, "pesq": False,
                   "stoi": False}
LABELS = {"model": "model", "collab": "model + collaborative sampling", "spline": "cubic spline",
          "linear": "linear interpolation", "input": "input (soxr)"}
METRIC_LABELS = {"lsd": "LSD", "lsd_hf": "LSD-HF", "lsd_lf": "LSD-LF", "snr": "SNR (dB)", "si_sdr": "SI-SDR (dB)",
                 "pesq": "PESQ-wb", "stoi": "STOI"}
KEY_METRICS = ("lsd", "snr", "si_sdr")  # the compact by-degradation and by-source tables' metrics (+ speech ones)
COMPARED = "input"  # what the compact tables set the model beside: the degraded input itself
METRICS_FILE = "metrics.json"
PAGE_FILE = "index.html"
MARKDOWN_FILE = "report.md"

RANKED, RANK_BASELINE = "model", "spline"  # the LSD gain of RANKED over RANK_BASELINE ranks the files
DEFAULT_MAX_ASSETS = 8
# Why a file's audio and spectrograms are in the report, in the order they are picked.
REASONS = {"first": "the first file", "best": "the file with the highest LSD gain",
           "median": "the file with the median LSD gain", "worst": "the file with the lowest LSD gain",
           "spread": "one of the files spread over the LSD gain ranking"}


@dataclasses.dataclass
class FileResult:
  """One evaluated file under one chain: its name, length, the signals (inputs, outputs, "target") at `rate`, the
  metrics, and the chain's name."""
  name: str
  seconds: float
  rate: int
  signals: dict[str, np.ndarray]
  metrics: dict[str, dict[str, float | None]]
  chain: str | None = None  # the named chain that made the input (None: the one chain of a single-chain report)

  def entry(self) -> dict:
    """The file's entry of metrics.json."""
    return {"name": self.name, "seconds": self.seconds, **self.metrics}


def metric_names(rows: Mapping[str, Mapping[str, float | None]]) -> tuple[str, ...]:
  """The metrics of a {system: {metric: value}} table (a file's entry less its name, or the summary), in
  `ALL_METRICS` order: the five of `METRICS`, then the speech metrics that were computed."""
  present = {m for row in rows.values() if isinstance(row, Mapping) for m in row}
  return tuple(m for m in ALL_METRICS if m in present)


def summarize(entries: Sequence[Mapping], systems: Sequence[str]) -> dict[str, dict[str, float | None]]:
  """{system: {metric: mean over the entries}}: plain mean over files; None if any file's value is None."""
  metrics = metric_names({s: entries[0][s] for s in systems}) if entries else METRICS
  out = {}
  for system in systems:
    out[system] = {}
    for metric in metrics:
      values = [entry[system].get(metric) for entry in entries]
      out[system][metric] = None if not values or None in values else float(np.mean(values))
  return out


def _sources_part(entries: Sequence[Mapping], systems: Sequence[str],
                  families: Mapping[str, str] | None) -> dict:
  """{"sources": `group_sources`} when the entries have sources, else {}."""
  if not entries or "source" not in entries[0]:
    return {}
  return {"sources": group_sources(entries, systems, families)}


def document(chain: str, checkpoint: str, entries: list[dict], systems: Sequence[str],
             assets: Sequence[Mapping] = (), stride: int | None = None, window: int | None = None,
             sources_from: str | None = None, families: Mapping[str, str] | None = None,
             fill_gain_db: float | None = None) -> dict:
  """The single-chain metrics.json document (with "stride" and "window", the model's hop between windows and its
  window, and "fill_gain_db", its spectral fill's level, when given; with "sources_from" and "sources" when the
  entries have a "source", `families` giving each source's family); `assets` as {"name", "folder", "why"} in file
  order."""
  doc = {"chain": chain, "checkpoint": checkpoint}
  doc.update(_run_part(stride, window, sources_from, fill_gain_db))
  return {**doc, "files": entries, "summary": summarize(entries, systems),
          **_sources_part(entries, systems, families),
          "assets": [{"name": a["name"], "folder": a["folder"], "why": list(a["why"])} for a in assets]}


def _run_part(stride: int | None, window: int | None, sources_from: str | None,
              fill_gain_db: float | None = None) -> dict:
  out = {}
  if stride is not None:
    out["stride"] = int(stride)
  if window is not None:
    out["window"] = int(window)
  if fill_gain_db is not None:
    out["fill_gain_db"] = float(fill_gain_db)
  if sources_from is not None:
    out["sources_from"] = sources_from
  return out


def chains_document(checkpoint: str, chains: Sequence[Mapping], systems: Sequence[str],
                    assets: Sequence[Mapping] = (), stride: int | None = None, window: int | None = None,
                    sources_from: str | None = None, families: Mapping[str, str] | None = None,
                    fill_gain_db: float | None = None) -> dict:
  """The named-chains metrics.json document: `chains` as {"name", "chain", "cutoff_hz", "files"} in the order
  given (each gets its summary, and its sources when the entries have them); `assets` as {"chain", "name",
  "folder", "why"} in (chain, file) order."""
  doc = {"checkpoint": checkpoint, **_run_part(stride, window, sources_from, fill_gain_db)}
  doc["chains"] = [{"name": c["name"], "chain": c["chain"], "cutoff_hz": float(c["cutoff_hz"]),
                    "summary": summarize(c["files"], systems), "files": c["files"],
                    **_sources_part(c["files"], systems, families)} for c in chains]
  doc["assets"] = [{"chain": a["chain"], "name": a["name"], "folder": a["folder"], "why": list(a["why"])}
                   for a in assets]
  return doc


def chain_views(doc: Mapping) -> list[Mapping]:
  """A document's chains, whatever its layout: the "chains" of a named-chains document, or the one chain of a
  single-chain document as {"name": None, "chain", "summary", "files", ["sources"]}."""
  if "chains" in doc:
    return list(doc["chains"])
  view = {"name": None, "chain": doc["chain"], "summary": doc["summary"], "files": doc["files"]}
  if "sources" in doc:
    view["sources"] = doc["sources"]
  return [view]


def chain_label(view: Mapping) -> str:
  """How the tables name a chain: its name, or the chain itself for a single-chain report's unnamed one."""
  if view["name"] is not None:
    return view["name"]
  return view["chain"] or "(no degradation)"


def group_sources(entries: Sequence[Mapping], systems: Sequence[str],
                  families: Mapping[str, str] | None = None) -> list[dict]:
  """The entries grouped by their "source": [{"source", ["family"], "files", "summary"}], sorted by source (names
  in parentheses, such as "(not in manifest)", last); a source's "family" when `families` names it."""
  groups: dict[str, list[Mapping]] = {}
  for entry in entries:
    groups.setdefault(entry["source"], []).append(entry)
  out = []
  for source in sorted(groups, key=lambda s: (s.startswith("("), s)):
    row = {"source": source}
    if families and source in families:
      row["family"] = families[source]
    out.append({**row, "files": len(groups[source]), "summary": summarize(groups[source], systems)})
  return out


def improvement(model: float | None, baseline: float | None, metric: str) -> float | None:
  """How much better `model` is than `baseline` in `metric`: for LSD (lower is better) how much lower, as a
  fraction of the baseline (`lsd_gain`'s definition); for the others how much higher, in their unit (dB for SNR
  and SI-SDR). None without both values, or with a baseline LSD of 0."""
  if model is None or baseline is None:
    return None
  if LOWER_IS_BETTER[metric]:
    return (baseline - model) / baseline if baseline > 0 else None
  return model - baseline


def lsd_gain(entry: Mapping) -> float | None:
  """The file's LSD gain (see the module docstring), None without both LSDs or with a spline LSD of 0."""
  ranked, baseline = entry.get(RANKED, {}).get("lsd"), entry.get(RANK_BASELINE, {}).get("lsd")
  if ranked is None or baseline is None or baseline <= 0:
    return None
  return (baseline - ranked) / baseline


def ranking(entries: Sequence[Mapping]) -> list[int]:
  """The entries' indices by LSD gain, highest first (ties in file order), null gains last (in file order)."""
  gains = [lsd_gain(e) for e in entries]
  return sorted(range(len(entries)), key=lambda i: (gains[i] is None, -(gains[i] or 0.0), i))


def _gap(lo: int, hi: int, n: int) -> tuple[int, int, int, int] | None:
  """(-distance, rank, lo, hi) of the free ranks strictly between the taken ranks lo and hi (-1, n: none on that
  side): the free rank farthest from the taken ones (the lower on a tie) and its distance to them; None if none."""
  if hi - lo < 2:
    return None
  if lo < 0:
    return (-hi, 0, lo, hi)
  if hi >= n:
    return (-(n - 1 - lo), n - 1, lo, hi)
  r = (lo + hi) // 2
  return (-min(r - lo, hi - r), r, lo, hi)


def choose_assets(entries: Sequence[Mapping], max_assets: int = DEFAULT_MAX_ASSETS) -> dict[int, list[str]]:
  """The files that get audio and spectrograms: {entry index: reasons (`REASONS` keys)}, in file order.

  At most `max_assets` files (-1: all; 0: none), picked in this order, a file picked twice getting both reasons
  and taking one place: the first file, then by LSD gain the best, the median (rank (n - 1) // 2 from the best)
  and the worst, then "spread": repeatedly the file whose rank is farthest from the ranks already picked (the
  better one on a tie), which fills the ranking evenly. Without a model and spline in the entries (no gain at all)
  there is no best, median or worst, and "spread" goes by file order.
  """
  n = len(entries)
  limit = n if max_assets < 0 else min(max_assets, n)
  if limit == 0:
    return {}
  order = ranking(entries) if any(lsd_gain(e) is not None for e in entries) else None
  chosen: dict[int, list[str]] = {}
  candidates = [(0, "first")]
  if order is not None:
    candidates += [(order[0], "best"), (order[(n - 1) // 2], "median"), (order[-1], "worst")]
  for index, why in candidates:
    if index in chosen:
      chosen[index].append(why)
    elif len(chosen) < limit:
      chosen[index] = [why]
  order = order or list(range(n))
  rank = {index: r for r, index in enumerate(order)}
  taken = sorted(rank[i] for i in chosen)
  # The free ranks between two taken ones (or an end) form a gap; the farthest rank of the widest gap is picked.
  gaps = [g for g in (_gap(lo, hi, n) for lo, hi in zip([-1] + taken, taken + [n])) if g is not None]
  heapq.heapify(gaps)
  while len(chosen) < limit:
    _, r, lo, hi = heapq.heappop(gaps)
    chosen[order[r]] = ["spread"]
    for gap in (_gap(lo, r, n), _gap(r, hi, n)):
      if gap is not None:
        heapq.heappush(gaps, gap)
  return dict(sorted(chosen.items()))
