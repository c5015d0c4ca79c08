"""bench/common.py: the table layout, the JSON document, the timer and the memory probe."""

import json
import os
import sys
import time

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # noqa: E402  (bench/ is a namespace package: no __init__.py)


ROWS = [{"name": "depth 8", "step_s": 12.3456, "samples_per_s": 10617.9, "speedup": None},
        {"name": "quickstart", "step_s": 0.01234, "samples_per_s": 2_655_000.0, "flops": 123456789}]


def test_format_value():
  assert common.format_value(12.3456) == "12.3"
  assert common.format_value(0.01234) == "0.0123"
  assert common.format_value(0.5) == "0.500"
  assert common.format_value(2_655_000.0) == "2,655,000"
  assert common.format_value(7) == "7"
  assert common.format_value(None) == "-"
  assert common.format_value(0.0) == "0"
  assert common.format_value("cpu") == "cpu"
  assert common.format_value(float("nan")) == "nan"


def test_table_layout(capsys):
  common.print_table(ROWS, ["step_s", "samples_per_s", "flops"])
  lines = capsys.readouterr().out.rstrip("\n").split("\n")
  assert len(lines) == 4  # header, rule, two rows
  assert lines[0].split() == ["name", "step_s", "samples_per_s", "flops"]
  assert set(lines[1].replace(" ", "")) == {"-"}
  assert lines[2].split() == ["depth", "8", "12.3", "10,618", "-"]
  assert lines[3].split() == ["quickstart", "0.0123", "2,655,000", "123,456,789"]
  # Columns are right-aligned: every value of a column ends where its header ends.
  ends = [lines[0].index(h) + len(h) for h in ("step_s", "samples_per_s", "flops")]
  for line, values in ((lines[2], ("12.3", "10,618", "-")), (lines[3], ("0.0123", "2,655,000", "123,456,789"))):
    assert [line.index(v, 11) + len(v) for v in values] == ends


def test_write_json(tmp_path):
  rows = ROWS + [{"name": "numpy", "ratio": np.float32(1.5), "count": np.int64(3), "bad": float("inf")}]
  path = tmp_path / "sub" / "out.json"
  returned = common.write_json(str(path), rows, note="x")
  doc = json.loads(path.read_text())
  assert doc == returned
  assert set(doc) == {"machine", "date", "rows", "note"}
  assert isinstance(doc["machine"], str) and f"{os.cpu_count()} cpus" in doc["machine"]
  assert doc["date"][:4].isdigit() and doc["date"][4] == "-"
  assert [r["name"] for r in doc["rows"]] == ["depth 8", "quickstart", "numpy"]
  assert doc["rows"][0] == ROWS[0]
  assert doc["rows"][2] == {"name": "numpy", "ratio": 1.5, "count": 3, "bad": None}
  with pytest.raises(ValueError, match="name"):
    common.write_json(str(path), [{"step_s": 1.0}])


def test_time_fn_counts_calls_and_measures():
  calls = []

  def sleepy():
    calls.append(1)
    time.sleep(0.02 if len(calls) > 1 else 0.0)

  median, best = common.time_fn(sleepy, warmup=1, repeats=3)
  assert len(calls) == 4
  assert 0.02 <= best <= median < 0.5
  with pytest.raises(ValueError):
    common.time_fn(sleepy, repeats=0)


def test_time_interleaved_alternates():
  order = []
  fns = {"a": lambda: order.append("a"), "b": lambda: (order.append("b"), time.sleep(0.01))}
  times = common.time_interleaved(fns, warmup=1, repeats=2)
  assert order == ["a", "b", "a", "b", "a", "b"]
  assert set(times) == {"a", "b"}
  assert times["a"][0] < 0.01 <= times["b"][1] <= times["b"][0]


def test_peak_rss_grows_with_a_big_allocation():
  before = common.peak_rss_mb()
  block = np.ones(64 * 2 ** 20 // 8)  # 64 MiB, touched
  after = common.peak_rss_mb()
  assert before > 1.0
  assert after >= before and after >= block.nbytes / 2 ** 20
