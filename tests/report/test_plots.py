"""Tests for sr_jax/report/plots.py: PNG validity and size, spectrogram levels and peak positions, no display."""

import io
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.signal
from PIL import Image

from sr_jax.report import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RATE = 16000


def _sine(freq, seconds=0.5, amplitude=1.0, rate=RATE):
  return amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate)


def _png_size(data):
  assert data[:8] == PNG_MAGIC
  image = Image.open(io.BytesIO(data))
  image.verify()
  return image.size


def test_spectrogram_db_levels_match_scipy():
  # 1 kHz is bin 64 exactly for n_fft = 1024 at 16 kHz; a full-scale sine peaks at 0 dB, half scale at -6.02 dB.
  for amplitude, expected_db in ((1.0, 0.0), (0.5, 20 * np.log10(0.5))):
    freqs, times, db = plots.spectrogram_db(_sine(1000.0, amplitude=amplitude), RATE)
    assert db.shape == (513, 1 + 8000 // 256) and times.shape == (db.shape[1],)
    assert freqs[64] == 1000.0
    middle = db[:, db.shape[1] // 2]
    assert np.argmax(middle) == 64
    assert middle[64] == pytest.approx(expected_db, abs=0.01)

  # Same magnitudes as scipy's STFT (which divides by the window sum; zero padding there vs reflection here:
  # compare frames away from the edges).
  rng = np.random.default_rng(0)
  noise = rng.standard_normal(4096) * 0.1
  _, _, db = plots.spectrogram_db(noise, RATE)
  _, _, reference = scipy.signal.stft(noise, fs=RATE, window="hann", nperseg=1024, noverlap=768, boundary="even")
  reference_db = 20 * np.log10(np.abs(reference) * 2)  # |S| / (sum(w) / 2) with scipy's S = S_raw / sum(w)
  np.testing.assert_allclose(db[:, 4:-4], reference_db[:, 4:db.shape[1] - 4], atol=1e-6)


@pytest.mark.parametrize("freq", [440.0, 1000.0, 3150.0, 7000.0])
def test_spectrogram_image_peaks_at_the_sine_row(freq):
  image = plots.spectrogram_image(_sine(freq), RATE)
  assert image.dtype == np.uint8 and image.shape == (513, 32, 3)
  # magma grows brighter with the level: the brightest row of a middle column is the sine's bin, counted from
  # the bottom row (0 Hz).
  brightness = image[:, 16].astype(float).sum(axis=1)
  row = int(np.argmax(brightness))
  expected_row = 512 - freq * 1024 / RATE
  assert abs(row - expected_row) <= 1


def test_spectrogram_image_of_stereo_and_silence():
  stereo = np.stack([_sine(2000.0), np.zeros(8000)], axis=1)
  image = plots.spectrogram_image(stereo, RATE, n_fft=512, hop=128)
  assert image.shape == (257, 1 + 8000 // 128, 3)
  assert abs(int(np.argmax(image[:, 30].astype(float).sum(axis=1))) - (256 - 64)) <= 1
  silent = plots.spectrogram_image(np.zeros(2048), RATE)
  assert np.all(silent == silent[0, 0])  # one colour, no NaN artefacts
  with pytest.raises(ValueError, match="audio must be"):
    plots.spectrogram_image(np.zeros((2, 3, 4)), RATE)


def test_spectrogram_and_comparison_png(tmp_path):
  data = plots.spectrogram_png(_sine(440.0), RATE, title="sine")
  assert _png_size(data) == (1000, 310)

  target = _sine(440.0) + 0.1 * _sine(3000.0)
  model = _sine(440.0)
  path = tmp_path / "sub" / "cmp.png"
  written = plots.comparison_png({"input": model[::2].repeat(2), "model": model, "target": target,
                                  "difference": model - target}, RATE, path, title="step 100")
  assert path.read_bytes() == written
  assert _png_size(written) == (1000, int((0.5 + 2.6 * 4) * 100))
  rgb = np.asarray(Image.open(path).convert("RGB"))
  assert rgb.std() > 20  # something was drawn
  with pytest.raises(ValueError, match="no signals"):
    plots.comparison_png({}, RATE)


def test_loss_curves_png(tmp_path):
  steps = np.arange(1, 101)
  history = {
      "train/loss": (steps, 1.0 / steps),
      "eval/loss": (steps[::10], 1.2 / steps[::10]),
      "train/snr": (steps, np.where(steps == 50, np.nan, np.log(steps) - 2.0)),  # negative values, one NaN
      "train/lr": (steps, np.full(100, 1e-3)),
  }
  data = plots.loss_curves_png(history, tmp_path / "loss.png", title="run")
  assert (tmp_path / "loss.png").read_bytes() == data
  assert _png_size(data) == (int(4.2 * 3 * 100), int((0.4 + 3.0 * 1) * 100))  # loss, snr, lr: 3 panels
  data = plots.loss_curves_png(history, group=lambda name: name, columns=2)  # 4 panels, 2 x 2
  assert _png_size(data) == (840, int((0.4 + 3.0 * 2) * 100))
  with pytest.raises(ValueError, match="2 steps but 3 values"):
    plots.loss_curves_png({"x": ([1, 2], [1, 2, 3])})
  with pytest.raises(ValueError, match="empty history"):
    plots.loss_curves_png({})


def test_no_pyplot_and_no_display(tmp_path):
  # A backend that would need a display, and no display: drawing must still work, without pyplot.
  script = (
      "import sys\n"
      "import numpy as np\n"
      "from sr_jax.report import plots\n"
      f"plots.comparison_png({{'a': np.ones(4000), 'b': np.zeros(4000)}}, 8000, {str(tmp_path / 'c.png')!r})\n"
      f"plots.loss_curves_png({{'loss': ([1, 2], [2.0, 1.0])}}, {str(tmp_path / 'l.png')!r})\n"
      "assert 'matplotlib.pyplot' not in sys.modules\n"
  )
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
  env.update(MPLBACKEND="TkAgg", PYTHONPATH=root, JAX_PLATFORMS="cpu")
  result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr
  assert (tmp_path / "c.png").read_bytes()[:8] == PNG_MAGIC
  assert (tmp_path / "l.png").read_bytes()[:8] == PNG_MAGIC


def _runs(mask):
  """[start, stop) of the runs of True in a 1-D mask."""
  edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(int), [0]])))
  return list(zip(edges[::2], edges[1::2]))


def test_comparison_figure_puts_each_sine_at_its_frequency():
  """The rasterised figure: down a column through the panels, each panel is a run of non-white pixels (frame line,
  spectrogram, frame line) whose brightest row sits at its sine's frequency (0 Hz at the bottom, rate / 2 at the
  top); a shorter signal's panel ends early, white after it; the colour bar's loudest colour is at the top."""
  data = plots.comparison_png({"2 kHz": _sine(2000.0), "6 kHz": _sine(6000.0), "short": _sine(1000.0, 0.25)},
                              RATE, title="sines")
  assert _png_size(data) == (1000, 50 + 260 * 3)
  rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)
  column = rgb[:, 300]  # t = 0.15 s: inside every panel
  panels = [(a, b) for a, b in _runs(np.any(column != 255, axis=1)) if b - a > 100]
  assert len(panels) == 3, panels
  for (top, stop), freq in zip(panels, (2000.0, 6000.0, 1000.0)):
    image = column[top + 1:stop - 1]  # less the frame lines
    bright = int(np.argmax(image.sum(axis=1)))
    assert (len(image) - 0.5 - bright) / len(image) == pytest.approx(freq / (RATE / 2), abs=3 / len(image)), freq
    assert np.median(image.sum(axis=1)) < 60  # silence elsewhere: magma's dark end
  late = rgb[:, 800]  # t = 0.46 s: after the short signal's end
  (top, stop) = panels[2]
  assert np.all(late[top + 2:stop - 2] == 255) and np.median(late[panels[0][0] + 1:panels[0][1] - 1].sum(axis=1)) < 60
  bar = rgb[panels[0][0] + 2:panels[2][1] - 2, 891].sum(axis=1)
  assert bar[:20].mean() > 500 and bar[-20:].mean() < 60 and np.all(np.diff(bar[::40]) <= 0)


def test_nice_ticks():
  np.testing.assert_allclose(plots.nice_ticks(0.0, 2.5, 8), [0, 0.5, 1, 1.5, 2, 2.5])  # step 2.5/8 -> 0.5
  np.testing.assert_allclose(plots.nice_ticks(0.0, 8.0, 4), [0, 2, 4, 6, 8])
  np.testing.assert_allclose(plots.nice_ticks(-93.4, -13.4, 8), [-90, -80, -70, -60, -50, -40, -30, -20])
  np.testing.assert_allclose(plots.nice_ticks(0.0, 1.3, 6), [0, 0.25, 0.5, 0.75, 1.0, 1.25])  # 1.3/6 -> 0.25
  np.testing.assert_allclose(plots.nice_ticks(5.0, 5.0), [5.0])
