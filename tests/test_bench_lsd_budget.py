"""bench/lsd_budget.py: the LSD budget by band and its bounds against sr_jax.metrics and hand-worked spectra."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import lsd_budget  # noqa: E402
from sr_jax import metrics  # noqa: E402

RATE = 16000
EDGES = [0.0, 2000.0, 4000.0, 8000.0]


def _noise(seed, n=RATE):
  return np.random.default_rng(seed).standard_normal(n)


def _high_passed(x, cutoff=2000.0, gain=1.0):
  """x with its bins from `cutoff` up multiplied by `gain` (one FFT of the whole signal)."""
  spec = np.fft.rfft(x)
  spec[np.fft.rfftfreq(len(x), 1 / RATE) >= cutoff] *= gain
  return np.fft.irfft(spec, len(x))


def test_masks_cover_every_bin_once():
  masks = lsd_budget.band_masks(RATE, EDGES)
  assert np.array_equal(np.sum(masks, axis=0), np.ones(1025))  # Nyquist (8000 Hz) in the last band
  assert [int(m.sum()) for m in masks] == [256, 256, 513]  # 7.8125 Hz bins: 0..255, 256..511, 512..1024


def test_a_gain_is_all_level_and_the_lsd_is_the_metric():
  x = _noise(0)
  ref, est = lsd_budget.log_power(x), lsd_budget.log_power(0.1 * x)  # -20 dB everywhere: X^ - X = -2 bels
  masks = lsd_budget.band_masks(RATE, EDGES)
  rows = lsd_budget.band_rows("m", lsd_budget.band_sums(ref, est, masks), EDGES)
  for row, m in zip(rows, masks):
    assert row["d2"] == pytest.approx(4.0, rel=1e-6) and row["level"] == pytest.approx(4.0, rel=1e-6)
    assert row["detail"] == pytest.approx(0.0, abs=1e-5) and row["share"] == pytest.approx(m.sum() / 1025)
  b = lsd_budget.bounds(ref, est, masks, np.ones(1025, bool))
  assert b["lsd"] == pytest.approx(metrics.lsd(x, 0.1 * x), rel=1e-6) and b["lsd"] == pytest.approx(2.0, rel=1e-6)
  assert b["oracle"] < 0.6  # band means of the reference: only the noise's own detail is left


def test_level_and_detail_split_a_hand_worked_spectrum():
  # 2 frames x 4 bins, one band of all 4: differences (1, 1, 3, 3) and (0, 0, 0, 4)
  ref = np.zeros((2, 4))
  est = np.array([[1.0, 1, 3, 3], [0, 0, 0, 4]])
  (row,) = lsd_budget.band_rows("m", lsd_budget.band_sums(ref, est, [np.ones(4, bool)]), [0.0, 1.0])
  # d2: (1 + 1 + 9 + 9 + 16) / 8 = 4.5; level: band means 2 and 1 -> (4 + 1) / 2 = 2.5; detail 2.0
  assert (row["d2"], row["level"], row["detail"], row["share"]) == pytest.approx((4.5, 2.5, 2.0, 1.0))
  # the bounds replace bins 2 and 3 (the `above` ones) by band means over those bins only
  b = lsd_budget.bounds(ref, est, [np.ones(4, bool)], np.array([False, False, True, True]))
  rms = lambda *d: np.sqrt(np.mean(np.square(d)))  # noqa: E731
  assert b["lsd"] == pytest.approx((rms(1, 1, 3, 3) + rms(0, 0, 0, 4)) / 2)
  assert b["smooth"] == pytest.approx((rms(1, 1, 3, 3) + rms(0, 0, 2, 2)) / 2)  # est's own means: 3 and 2
  assert b["oracle"] == pytest.approx((rms(1, 1, 0, 0) + rms(0, 0, 0, 0)) / 2)  # the reference's: 0


def test_bounds_of_an_empty_high_band():
  # the band-limited input: nothing above 2 kHz. Its LSD comes from the high bands; the oracle restores their
  # level, leaving the reference's own detail there (white noise: the log of an exponential variable, std ~0.56
  # bels); the input's own smoothing keeps it empty (the 1e-8 floor)
  x = _noise(1, 4 * RATE)
  low = _high_passed(x, gain=0.0)
  ref, est = lsd_budget.log_power(x), lsd_budget.log_power(low)
  masks = lsd_budget.band_masks(RATE, EDGES)
  above = np.arange(1025) * RATE / 2048 >= 2000
  b = lsd_budget.bounds(ref, est, masks, above)
  assert b["lsd"] == pytest.approx(metrics.lsd(x, low), rel=1e-6) and b["lsd"] > 5
  assert b["smooth"] > 5 and 0.4 < b["oracle"] < 0.6
  rows = lsd_budget.band_rows("input", lsd_budget.band_sums(ref, est, masks), EDGES)
  assert rows[0]["d2"] < 0.05 * rows[1]["d2"] and rows[1]["share"] + rows[2]["share"] > 0.95


def test_the_script_on_a_model_matches_evaluate(tmp_path):
  import json  # noqa: PLC0415
  import subprocess  # noqa: PLC0415

  import soundfile as sf  # noqa: PLC0415

  from bench.enhance import make_checkpoint  # noqa: PLC0415
  from sr_jax.enhance import Enhancer  # noqa: PLC0415
  from sr_jax.report import evaluation  # noqa: PLC0415

  checkpoint = make_checkpoint(str(tmp_path / "run"), "depth=1,width=0.0625,window=256,data.stride=128,data.eval_stride=256")
  data = tmp_path / "clean"
  data.mkdir()
  t = np.arange(2 * RATE) / RATE
  for i, f0 in enumerate((220.0, 330.0)):
    x = sum(0.3 / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 20) if k * f0 < 7900)
    sf.write(str(data / f"piece{i}.wav"), (x + 0.01 * _noise(i, len(t))).astype(np.float32), RATE)
  out = tmp_path / "budget.json"
  script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench", "lsd_budget.py")
  proc = subprocess.run([sys.executable, script, f"--checkpoint={checkpoint}", f"--data={data}", "--max_seconds=0",
                         "--bands=0,1000,4000,8000", f"--json={out}"], capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  rows = {r["name"]: r for r in json.loads(out.read_text())["rows"]}
  for system in ("model", "spline", "input"):
    bands = [rows[f"{system} {lo}-{hi} Hz"] for lo, hi in (("0", "1000"), ("1000", "4000"), ("4000", "8000"))]
    assert sum(b["share"] for b in bands) == pytest.approx(1.0)
    assert all(b["d2"] == pytest.approx(b["level"] + b["detail"]) for b in bands)
  # the LSD column is launch/evaluate.py's (sr_jax.metrics in float32 there, numpy float64 here)
  enhancer = Enhancer(checkpoint)
  chain = enhancer.config.data.chain
  results = list(evaluation.evaluate_files(evaluation.clean_files(str(data), -1), str(data),
                                           {"model": enhancer.enhance_array}, chain,
                                           evaluation.eval_rate(enhancer.config, chain)))
  for system in ("model", "spline", "input"):
    want = np.mean([r.metrics[system]["lsd"] for r in results])
    assert rows[system]["lsd"] == pytest.approx(want, rel=1e-4)
    assert rows[system]["oracle"] <= rows[system]["lsd"] + 1e-9
  missing = subprocess.run([sys.executable, script, f"--data={data}"], capture_output=True, text=True, timeout=120)
  assert missing.returncode != 0 and "--checkpoint and --data are required" in missing.stderr
  assert "Traceback" not in missing.stderr
