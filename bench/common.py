"""Helpers shared by the bench scripts: timing, peak memory, one printed table, one JSON file.

  rows = [{"name": "depth 8", "step_s": 12.3, "samples_per_s": 1.3}, ...]
  print_table(rows, ["step_s", "samples_per_s"])
  write_json("out.json", rows)          # {"machine": ..., "date": ..., "rows": rows}
  median_s, min_s = time_fn(lambda: f(x), warmup=1, repeats=5)
  times = time_interleaved({"jax": f, "torch": g}, warmup=1, repeats=3)   # {name: (median_s, min_s)}

Nothing here imports jax or torch: a timed callable must itself wait for its result (e.g. `jax.block_until_ready`).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import resource
import statistics
import sys
import time
from typing import Any, Callable, Iterable, Sequence


def machine() -> str:
  """One line naming this machine: host, CPU count, processor, 1-minute load average."""
  cpu = platform.processor() or platform.machine()
  try:
    load = f", load {os.getloadavg()[0]:.2f}"
  except OSError:
    load = ""
  return f"{platform.node()} {os.cpu_count()} cpus {cpu}{load}"


def time_fn(fn: Callable[[], Any], warmup: int = 1, repeats: int = 3) -> tuple[float, float]:
  """Calls `fn` `warmup` times untimed, then `repeats` times timed; returns (median seconds, min seconds)."""
  if repeats < 1:
    raise ValueError(f"time_fn needs repeats >= 1, got {repeats}")
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times), min(times)


def time_interleaved(fns: dict[str, Callable[[], Any]], warmup: int = 1, repeats: int = 3
                     ) -> dict[str, tuple[float, float]]:
  """`time_fn` for several callables at once, alternating them in every round so they see the same machine load.

  Returns {name: (median seconds, min seconds)}.
  """
  if repeats < 1:
    raise ValueError(f"time_interleaved needs repeats >= 1, got {repeats}")
  for fn in fns.values():
    for _ in range(warmup):
      fn()
  times: dict[str, list[float]] = {name: [] for name in fns}
  for _ in range(repeats):
    for name, fn in fns.items():
      start = time.perf_counter()
      fn()
      times[name].append(time.perf_counter() - start)
  return {name: (statistics.median(t), min(t)) for name, t in times.items()}


def peak_rss_mb() -> float:
  """Peak resident memory of this process so far, in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return peak / (2 ** 20 if sys.platform == "darwin" else 2 ** 10)


def format_value(value: Any) -> str:
  """Numbers with a sensible precision (3 significant digits, thousands separators), None as '-'."""
  if value is None:
    return "-"
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    return str(value)
  if isinstance(value, float) and not math.isfinite(value):
    return str(value)
  if isinstance(value, int) or abs(value) >= 1000:
    return f"{value:,.0f}"
  if value == 0:
    return "0"
  digits = max(0, 2 - int(math.floor(math.log10(abs(value)))))
  return f"{value:.{digits}f}"


def format_table(rows: Sequence[dict], columns: Iterable[str]) -> str:
  """A plain-text table: a `name` column, then one right-aligned column per key (missing values read '-')."""
  columns = list(columns)
  header = ["name"] + columns
  body = [[str(r.get("name", ""))] + [format_value(r.get(c)) for c in columns] for r in rows]
  widths = [max(len(line[i]) for line in [header] + body) for i in range(len(header))]

  def line(cells):
    return "  ".join([cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]).rstrip()

  rule = "  ".join("-" * w for w in widths)
  return "\n".join([line(header), rule] + [line(cells) for cells in body])


def print_table(rows: Sequence[dict], columns: Iterable[str]) -> None:
  print(format_table(rows, columns), flush=True)


def _plain(value: Any) -> Any:
  """numpy/jax scalars -> Python numbers so json can write them; NaN/Inf -> None (JSON has neither)."""
  if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
    value = value.item()
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value


def write_json(path: str, rows: Sequence[dict], **extra: Any) -> dict:
  """Writes {"machine", "date", "rows", **extra} to `path` (rows need a "name"); returns what was written."""
  for r in rows:
    if "name" not in r:
      raise ValueError(f"every row needs a 'name', got {sorted(r)}")
  doc = {"machine": machine(), "date": datetime.datetime.now().isoformat(timespec="seconds"),
         "rows": [{k: _plain(v) for k, v in r.items()} for r in rows], **extra}
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    json.dump(doc, f, indent=1)
    f.write("\n")
  return doc


def define_evaluation_flags(data_help: str) -> None:
  """absl flags --data, --chains, --max_files, --max_seconds, --seed and --json: the clean files and named chains a
  bench scores as `sr-jax evaluate` does (the same file seeds), and where its rows also go."""
  from absl import flags  # noqa: PLC0415

  flags.DEFINE_string("data", None, data_help)
  flags.DEFINE_string("chains", None, "NAME=CHAIN;... or a file of them, as sr-jax evaluate's --chains.")
  flags.DEFINE_integer("max_files", -1, "At most this many files (sorted); -1: all.")
  flags.DEFINE_float("max_seconds", 6.0, "Crop each file to its first this many seconds (0: whole files).")
  flags.DEFINE_integer("seed", 0, "Degradation seed (as sr-jax evaluate's --seed).")
  flags.DEFINE_string("json", None, "Also write the rows to this JSON file.")
