"""The shipped models (pretrained/piano_r4_16k, pretrained/piano_r2_16k): each loads with no flags, fits the size
budget, and on its bundled held-out example beats cubic-spline interpolation in LSD and SNR as its model card says
(for piano_r4_16k the README's first command runs the same evaluation)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# model -> (chain, LSD at most this fraction of spline's, SNR and SI-SDR at least spline's + this many dB)
MODELS = {"piano_r4_16k": ("sample 4000 16000", 0.5, 0.4), "piano_r2_16k": ("sample 8000 16000", 0.8, 0.0)}


def _size(folder: str) -> int:
  return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(folder) for f in fs)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_shipped_model_loads_and_fits_the_budget(name):
  from sr_jax.train.checkpoint import restore_for_inference

  model = os.path.join(ROOT, "pretrained", name)
  config, nets = restore_for_inference(model)
  assert config.data.chain == MODELS[name][0] and config.data.rate == 16000
  assert _size(model) <= 25 * 2 ** 20  # the budget: the checkpoint, its config and the example
  leaves = [a for a in __import__("jax").tree.leaves(nets["gen"]["params"])]
  assert all(a.dtype == np.float32 and np.isfinite(a).all() for a in leaves)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_shipped_model_beats_spline_on_its_example(name, tmp_path):
  chain, lsd_fraction, snr_margin = MODELS[name]
  model = os.path.join(ROOT, "pretrained", name)
  report = tmp_path / "example"
  cmd = [sys.executable, os.path.join(ROOT, "launch", "evaluate.py"), f"--checkpoint={model}",
         f"--data={os.path.join(model, 'example')}", f"--report={report}", "--overwrite"]
  done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
  assert done.returncode == 0, done.stderr[-2000:]
  metrics = json.loads((report / "metrics.json").read_text())
  assert metrics["chain"] == chain and len(metrics["files"]) == 1
  got, spline = metrics["summary"]["model"], metrics["summary"]["spline"]
  assert got["lsd"] < lsd_fraction * spline["lsd"] and got["lsd_hf"] < lsd_fraction * spline["lsd_hf"]
  assert got["snr"] > spline["snr"] + snr_margin and got["si_sdr"] > spline["si_sdr"] + snr_margin
  assert (report / "index.html").exists()
  wavs = [os.path.join(d, f) for d, _, fs in os.walk(report) for f in fs if f.endswith(".wav")]
  assert wavs  # the enhanced audio is written beside the page
  info = sf.info(wavs[0])
  assert info.samplerate == 16000 and info.duration == pytest.approx(12.0, abs=1e-3)