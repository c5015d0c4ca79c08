"""bench/hf_coherence.py: band sums and the coherence table against hand-worked signals."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import hf_coherence  # noqa: E402
from sr_jax.errors import UserError  # noqa: E402

RATE = 8000
T = np.arange(RATE) / RATE  # 1 s: bin spacing 1 Hz, so whole-Hz sines fall on single bins


def _rows(target, estimate, edges):
  return hf_coherence.band_rows("m", hf_coherence.band_sums(target, estimate, RATE, edges), edges)


def test_coherent_inverted_and_unrelated_bands():
  x = np.sin(2 * np.pi * 500 * T) + 0.5 * np.sin(2 * np.pi * 2500 * T)
  edges = [0.0, 2000.0, 4000.0]
  same = _rows(x, x, edges)
  assert [r["rho"] for r in same] == pytest.approx([1.0, 1.0]) and [r["err"] for r in same] == pytest.approx([0, 0])
  # the high band negated: rho -1, error |2X|^2 / |X|^2 = 4; the low band untouched
  flipped = x - 2 * 0.5 * np.sin(2 * np.pi * 2500 * T)
  r_low, r_high = _rows(x, flipped, edges)
  assert r_low["rho"] == pytest.approx(1.0) and r_high["rho"] == pytest.approx(-1.0)
  assert r_high["err"] == pytest.approx(4.0) and r_high["energy"] == pytest.approx(1.0)
  # the high band replaced by a cosine at the same frequency (90 degrees off) at half the amplitude: rho 0,
  # energy 0.25, error 1 + 0.25 (the invented energy adds to the missing band), best error 1
  texture = np.sin(2 * np.pi * 500 * T) + 0.25 * np.cos(2 * np.pi * 2500 * T)
  r_high = _rows(x, texture, edges)[1]
  assert r_high["rho"] == pytest.approx(0.0, abs=1e-9) and r_high["energy"] == pytest.approx(0.25)
  assert r_high["err"] == pytest.approx(1.25) and r_high["best_err"] == pytest.approx(1.0)
  # an empty band (the band-limited input): err 1, energy 0, rho 0
  r_high = _rows(x, np.sin(2 * np.pi * 500 * T), edges)[1]
  assert r_high["err"] == pytest.approx(1.0) and r_high["energy"] == pytest.approx(0.0, abs=1e-20)


def test_partial_coherence_matches_the_formula():
  rng = np.random.default_rng(0)
  x = rng.standard_normal(RATE)
  noise = rng.standard_normal(RATE)
  y = 0.6 * x + 0.8 * noise
  (row,) = _rows(x, y, [0.0, RATE / 2])  # the last band includes Nyquist: every bin counted
  X, Y = np.fft.rfft(x), np.fft.rfft(y)
  want = np.real(np.vdot(X, Y)) / np.sqrt(np.vdot(X, X).real * np.vdot(Y, Y).real)
  assert row["rho"] == pytest.approx(want, rel=1e-12)
  assert row["rho"] == pytest.approx(0.6, abs=0.03)  # corr(x, 0.6x + 0.8n) = 0.6 for independent unit noise
  # Parseval (up to the DC and Nyquist bins, which count once in an rfft and twice elsewhere: 2 of 4001 bins)
  assert row["err"] == pytest.approx(np.sum((y - x) ** 2) / np.sum(x ** 2), rel=2e-3)


@pytest.mark.parametrize("text", ["2000", "3000,2000", "a,b", "0,9000", "-1,100"])
def test_bad_band_edges(text):
  with pytest.raises(UserError, match="--bands"):
    hf_coherence.parse_edges(text, RATE * 2)
