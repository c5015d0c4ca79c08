"""bench/oracle_masks.py: the oracle gains against brute force and hand-worked signals, its rows against evaluate's
degradation."""

import os
import sys

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import oracle_masks  # noqa: E402
from sr_jax import metrics  # noqa: E402
from sr_jax.data import datasets, degrade  # noqa: E402
from sr_jax.errors import UserError  # noqa: E402

RATE = 16000


def _complex(rng, shape):
  return rng.normal(size=shape) + 1j * rng.normal(size=shape)


def test_gains_are_one_without_noise_and_bounded():
  rng = np.random.default_rng(0)
  s = _complex(rng, (33, 20))
  for kind in oracle_masks.GAINS:
    np.testing.assert_allclose(oracle_masks.oracle_gain(kind, s, s), 1.0, rtol=1e-12)
    g = oracle_masks.oracle_gain(kind, s, s + _complex(rng, s.shape))
    assert np.all(g >= 0) and np.all(g <= 1)


def test_psm_is_the_best_real_gain_in_unit_interval_per_bin():
  rng = np.random.default_rng(1)
  s, x = _complex(rng, (200,)), _complex(rng, (200,))
  psm = oracle_masks.oracle_gain("psm", s, x)
  grid = np.linspace(0.0, 1.0, 2001)  # brute force: every gain on a fine grid, per bin
  errors = np.abs(s[:, None] - grid[None, :] * x[:, None]) ** 2
  best = grid[np.argmin(errors, axis=1)]
  np.testing.assert_allclose(psm, best, atol=1e-3)
  for kind in ("irm", "wiener"):
    other = oracle_masks.oracle_gain(kind, s, x)
    assert np.all(np.abs(s - psm * x) ** 2 <= np.abs(s - other * x) ** 2 + 1e-12)


def test_wiener_and_irm_hand_worked():
  s, x = np.array([3.0 + 0j]), np.array([3.0 + 4j])  # |S|^2 = 9, |N|^2 = 16
  assert oracle_masks.oracle_gain("wiener", s, x)[0] == pytest.approx(9 / 25)
  assert oracle_masks.oracle_gain("irm", s, x)[0] == pytest.approx(3 / 5)
  assert oracle_masks.oracle_gain("psm", s, x)[0] == pytest.approx(9 / 25)  # Re(S X*) / |X|^2 = 9 / 25


def test_masks_separate_tones_in_disjoint_bins():
  t = np.arange(RATE) / RATE
  clean, hum = np.sin(2 * np.pi * 1000 * t), np.sin(2 * np.pi * 5000 * t)
  noisy = clean + hum
  assert metrics.si_sdr(clean, noisy) == pytest.approx(0.0, abs=0.01)
  outs = oracle_masks.masked(clean, noisy, 512)
  assert set(outs) == set(oracle_masks.GAINS)
  for kind, out in outs.items():
    assert out.shape == noisy.shape
    assert metrics.si_sdr(clean[1024:-1024], out[1024:-1024]) > 30.0


def test_rows_degrade_as_evaluate_does(tmp_path):
  rng = np.random.default_rng(2)
  for i in range(2):
    sf.write(tmp_path / f"f{i}.wav", 0.1 * rng.normal(size=RATE).astype(np.float32), RATE)
  files = sorted(str(p) for p in tmp_path.glob("*.wav"))
  rows = oracle_masks.oracle_rows(files, str(tmp_path), {"n": "noise white 5"}, RATE, [256], max_seconds=0.5)
  by = {(r["system"], r["fft"]): r for r in rows}
  assert set(by) == {("input", "")} | {(k, 256) for k in oracle_masks.GAINS}
  expected = []
  for path in files:  # evaluate's seeds, computed here from the file names
    clean = datasets.load_clean(path, RATE)[:RATE // 2]
    x, y, _ = degrade.degrade(clean, RATE, "noise white 5", degrade.file_seed(0, os.path.basename(path)))
    expected.append(metrics.si_sdr(y.astype(np.float64), x.astype(np.float64)))
  assert by[("input", "")]["files"] == 2
  assert by[("input", "")]["si_sdr"] == pytest.approx(np.mean(expected), abs=1e-6)
  assert by[("input", "")]["si_sdr"] == pytest.approx(5.0, abs=0.3)  # white noise on white noise: SI-SDR ~ SNR
  assert by[("psm", 256)]["si_sdr"] > by[("wiener", 256)]["si_sdr"] > by[("input", "")]["si_sdr"]


@pytest.mark.parametrize("text", ["", "512,x", "510", "8"])
def test_bad_ffts(text):
  with pytest.raises(UserError):
    oracle_masks.parse_ffts(text)
