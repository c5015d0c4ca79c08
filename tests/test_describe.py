import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def describe(*args):
  return subprocess.run([sys.executable, "launch/describe.py", *args], capture_output=True, text=True, cwd=ROOT,
                        timeout=300)


def test_original_size_counts_without_allocating():
  out = describe("--config=configs/default.py:depth=8,window=8192")
  assert out.returncode == 0, out.stderr
  lines = out.stdout.splitlines()
  assert "generator params: 103,603,458" in lines  # 103.6M as the original PyTorch networks
  assert "discriminator params: 15,141,121" in lines  # 15.1M
  assert "autoencoder params: 189,731,586" in lines  # 189.7M


def test_depth4_table_rows():
  out = describe("--config=configs/default.py:depth=4,window=1024")
  rows = {l.split()[0]: l for l in out.stdout.split("discriminator:")[0].splitlines() if l[:1].isalpha()}
  assert "(512, 128)" in rows["down_1"] and "8,448" in rows["down_1"]
  assert "(32, 512)" in rows["bottleneck"] and "(512, 256)" in rows["up_4"] and "(1024, 1)" in rows["output"]


def test_bad_window_is_one_line():
  out = describe("--config=configs/default.py:depth=4,window=1000")
  assert out.returncode == 2 and "Traceback" not in out.stderr
  assert out.stderr.strip().splitlines()[-1] == (
      "error: window 1000 does not fit a depth-4 network: it must be a multiple of 2**(depth+1) = 32 "
      "(nearest valid windows: 992 or 1024)")
