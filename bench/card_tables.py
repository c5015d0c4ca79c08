"""Model-card tables from `sr-jax evaluate` reports (metrics.json): per degradation, the model beside doing nothing
(the degraded input) and cubic spline; per test source; and several reports (stages, runs) side by side.

  python3 bench/card_tables.py degradations REPORT            # one row per chain: model, input, spline
  python3 bench/card_tables.py sources REPORT [--chain=NAME]  # one row per test source and chain
  python3 bench/card_tables.py compare NAME=REPORT ...        # the model of each report, per chain
  python3 bench/card_tables.py paired A B [--metric=si_sdr] [--worse=1]   # B against A, file by file

Columns: LSD, SNR and SI-SDR (dB), and PESQ-wb and STOI where the report has them; means over files. paired: two
runs' reports on the same files and chains (a variant against its baseline); per chain, over the files in both, the
mean and median of B - A, how many files B makes worse by more than --worse (for LSD, higher), and the worst one: a
mean moved by a few files shows as a median near 0.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

METRICS = (("lsd", "LSD", "{:.2f}"), ("snr", "SNR", "{:.2f}"), ("si_sdr", "SI-SDR", "{:.2f}"),
           ("pesq", "PESQ", "{:.2f}"), ("stoi", "STOI", "{:.3f}"))


def load(report: str) -> dict:
  path = os.path.join(report, "metrics.json")
  if not os.path.isfile(path):
    raise SystemExit(f"error: {report} holds no metrics.json (give the folder an `sr-jax evaluate --report` wrote)")
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def _flags(args: list[str]) -> dict[str, str]:
  """--name=value arguments as {name: value}."""
  return dict(a[2:].split("=", 1) for a in args if a.startswith("--") and "=" in a)


def _present(chains) -> list[tuple[str, str, str]]:
  """The metrics with a value somewhere in these chains' model summaries."""
  return [m for m in METRICS if any(c["summary"]["model"].get(m[0]) is not None for c in chains)]


def _cell(value, fmt: str) -> str:
  return "n/a" if value is None else fmt.format(value)


def _pair(summary, key, fmt, systems=("model", "input", "spline")) -> str:
  return " / ".join(_cell(summary[s].get(key), fmt) for s in systems)


def degradations(report: str) -> str:
  doc = load(report)
  cols = _present(doc["chains"])
  head = "| degradation | files | " + " | ".join(f"{label} model / input / spline" for _, label, _ in cols) + " |"
  lines = [head, "|" + "---|" * (2 + len(cols))]
  for c in doc["chains"]:
    lines.append(f"| {c['name']} | {len(c['files'])} | " + " | ".join(_pair(c["summary"], k, f) for k, _, f in cols)
                 + " |")
  return "\n".join(lines)


def sources(report: str, chain: str | None = None) -> str:
  doc = load(report)
  chains = [c for c in doc["chains"] if chain in (None, c["name"])]
  cols = _present(chains)
  head = "| degradation | source | files | " + " | ".join(f"{label} model / input" for _, label, _ in cols) + " |"
  lines = [head, "|" + "---|" * (3 + len(cols))]
  for c in chains:
    for s in c.get("sources", []):
      lines.append(f"| {c['name']} | {s['source']} | {s['files']} | "
                   + " | ".join(_pair(s["summary"], k, f, ("model", "input")) for k, _, f in cols) + " |")
  return "\n".join(lines)


def compare(named: list[tuple[str, str]]) -> str:
  docs = [(name, load(path)) for name, path in named]
  chains = [c["name"] for c in docs[0][1]["chains"]]
  cols = _present(docs[0][1]["chains"])
  head = "| degradation | " + " | ".join(f"{label}: input / " + " / ".join(n for n, _ in docs)
                                          for _, label, _ in cols) + " |"
  lines = [head, "|" + "---|" * (1 + len(cols))]
  for name in chains:
    row = []
    for key, _, fmt in cols:
      values = [_cell(next(c for c in docs[0][1]["chains"] if c["name"] == name)["summary"]["input"].get(key), fmt)]
      for _, doc in docs:
        found = [c for c in doc["chains"] if c["name"] == name]
        values.append(_cell(found[0]["summary"]["model"].get(key), fmt) if found else "-")
      row.append(" / ".join(values))
    lines.append(f"| {name} | " + " | ".join(row) + " |")
  return "\n".join(lines)


def paired(a: str, b: str, metric: str = "si_sdr", worse: float = 1.0) -> str:
  key, label, fmt = next((m for m in METRICS if m[0] == metric), (None, None, None))
  if key is None:
    raise SystemExit(f"error: --metric must be one of {', '.join(m[0] for m in METRICS)}, got {metric!r}")
  sign = -1.0 if key == "lsd" else 1.0  # a loss is B - A below -worse (above +worse for LSD)
  chains_b = {c["name"]: c for c in load(b)["chains"]}
  lines = [f"| degradation | files | {label} A / B | B - A: mean / median | files B - A worse than {worse:g} | "
           "worst file (B - A) |", "|" + "---|" * 6]
  for c in load(a)["chains"]:
    if c["name"] not in chains_b:
      continue
    got = {f["name"]: f["model"].get(key) for f in chains_b[c["name"]]["files"]}
    pairs = [(f["name"], f["model"].get(key), got[f["name"]]) for f in c["files"]
             if f["name"] in got and f["model"].get(key) is not None and got[f["name"]] is not None]
    if not pairs:
      continue
    va, vb = (np.array([p[i] for p in pairs], np.float64) for i in (1, 2))
    d = vb - va
    w = int(np.argmin(sign * d))
    lines.append(f"| {c['name']} | {len(pairs)} | {fmt.format(va.mean())} / {fmt.format(vb.mean())} | "
                 f"{d.mean():+.2f} / {np.median(d):+.2f} | {int(np.sum(sign * d < -worse))} | "
                 f"{pairs[w][0]} ({d[w]:+.2f}) |")
  return "\n".join(lines)


def main(argv: list[str]) -> int:
  if len(argv) < 2 or argv[0] not in ("degradations", "sources", "compare", "paired") or (
      argv[0] == "paired" and len(argv) < 3):
    print(__doc__.strip(), file=sys.stderr)
    return 2
  if argv[0] == "degradations":
    print(degradations(argv[1]))
  elif argv[0] == "sources":
    print(sources(argv[1], _flags(argv[2:]).get("chain")))
  elif argv[0] == "paired":
    flags = _flags(argv[3:])
    try:
      worse = float(flags.get("worse", 1.0))
    except ValueError:
      raise SystemExit(f"error: --worse must be a number, got {flags['worse']!r}") from None
    print(paired(argv[1], argv[2], flags.get("metric", "si_sdr"), worse))
  else:
    print(compare([tuple(a.split("=", 1)) for a in argv[1:]]))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
