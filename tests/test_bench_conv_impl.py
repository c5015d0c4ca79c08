"""bench/conv_impl.py at a tiny size: xla and fft rows from the same params agree, and the stride-1 convs it finds."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import conv_impl  # noqa: E402  (bench/ is a namespace package: no __init__.py)

TINY = "depth=2,width=0.0625,window=128,data.stride=128,data.eval_stride=128"


def test_rows_compare_both_implementations_on_the_same_work():
  rows = conv_impl.measure_config("quickstart", 2, 1, TINY)
  assert [(r["pass"], r["impl"]) for r in rows] == [
      ("forward", "xla"), ("forward", "fft"), ("forward+backward", "xla"), ("forward+backward", "fft")]
  for xla, fft in (rows[:2], rows[2:]):
    assert xla["gflop"] == fft["gflop"] > 0 and xla["speedup"] == 1.0
    assert fft["max_err"] < 1e-4 and xla["max_err"] is None
  assert len(conv_impl.summary_lines(rows)) == 2


def test_stride1_convs_of_the_generator():
  layers = conv_impl.stride1_convs("quickstart", 2, TINY)
  assert [(l["name"], l["kernel"], l["shape"], l["features"]) for l in layers] == [
      ("up_1", 33, (2, 16, 16), 32), ("up_2", 65, (2, 32, 32), 16), ("final", 9, (2, 64, 16), 2)]
