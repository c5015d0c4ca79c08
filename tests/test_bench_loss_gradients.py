"""bench/loss_gradients.py: the windows it takes and its gradient bookkeeping against hand-worked gradients."""

import os
import sys

import jax.numpy as jnp
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import loss_gradients  # noqa: E402
from sr_jax.data import audio as audio_lib  # noqa: E402
from sr_jax.errors import UserError  # noqa: E402

RATE = 8000


def test_windows_start_one_second_in_and_skip_short_files(tmp_path):
  rng = np.random.default_rng(0)
  clips = {"a.wav": rng.uniform(-0.5, 0.5, 2 * RATE), "b.wav": rng.uniform(-0.5, 0.5, RATE + 10),
           "c.wav": rng.uniform(-0.5, 0.5, 3 * RATE)}
  for name, clip in clips.items():
    audio_lib.write(str(tmp_path / name), clip.astype(np.float32), RATE)
  x, y = loss_gradients.batch(str(tmp_path), "none", 256, RATE, count=5, every=1)
  assert x.shape == y.shape == (2, 256, 1)  # b.wav is shorter than 1 s + a window
  for row, name in zip(y[:, :, 0], ("a.wav", "c.wav")):
    want = audio_lib.read(str(tmp_path / name), rate=RATE, mono=True)[0][RATE:RATE + 256]
    np.testing.assert_allclose(row, want, atol=1e-7)
  np.testing.assert_array_equal(x, y)  # the chain none: the input is the clean window
  with pytest.raises(UserError, match="no .wav file"):
    loss_gradients.batch(str(tmp_path), "none", 4 * RATE, RATE, count=5, every=1)


def test_term_rows_against_hand_worked_gradients():
  """f(w) = w1 * x + w2: for L1 = sum((f - t)^2) the gradient is (2 sum (f - t) x, 2 sum (f - t)); a term 3 L1 has
  3x its norm and cosine 1; -L1 cosine -1; L2 = sum(f) has gradient (sum x, n)."""
  x, t = jnp.asarray([1.0, 2.0, -1.0]), jnp.asarray([0.5, 0.0, 1.0])
  params = {"w1": jnp.asarray(0.3), "w2": jnp.asarray(-0.2)}
  apply = lambda p: p["w1"] * x + p["w2"]  # noqa: E731
  terms = {"l1": lambda f: jnp.sum((f - t) ** 2), "3l1": lambda f: 3 * jnp.sum((f - t) ** 2),
           "-l1": lambda f: -jnp.sum((f - t) ** 2), "sum": lambda f: jnp.sum(f)}
  rows = {r["name"]: r for r in loss_gradients.term_rows(apply, params, terms)}
  f = np.array([0.1, 0.4, -0.5])
  g1 = np.array([2 * np.sum((f - np.asarray(t)) * np.asarray(x)), 2 * np.sum(f - np.asarray(t))])
  assert rows["l1"]["value"] == pytest.approx(np.sum((f - np.asarray(t)) ** 2))
  assert rows["l1"]["grad_norm"] == pytest.approx(np.linalg.norm(g1), rel=1e-6)
  assert rows["3l1"]["grad_norm"] == pytest.approx(3 * np.linalg.norm(g1), rel=1e-6)
  assert rows["3l1"]["cos_with_reconstruction"] == pytest.approx(1.0)
  assert rows["-l1"]["cos_with_reconstruction"] == pytest.approx(-1.0)
  g2 = np.array([np.sum(np.asarray(x)), 3.0])
  assert rows["sum"]["cos_with_reconstruction"] == pytest.approx(g1 @ g2 / np.linalg.norm(g1) / np.linalg.norm(g2),
                                                                 rel=1e-6)


@pytest.mark.parametrize("text", ["-24,16", "-24,16,6,1", "a,16,6", "-24,1.5,6", ""])
def test_bad_corridor_settings_are_one_line(text):
  with pytest.raises(UserError, match="--corridor must be FLOOR_DB,POOL,CEILING_DB"):
    loss_gradients.corridor_settings(text)
  assert loss_gradients.corridor_settings("-24,16,6") == (-24.0, 16, 6.0)
