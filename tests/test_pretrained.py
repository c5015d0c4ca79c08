"""The shipped model (pretrained/piano_r4_16k): it loads with no flags, fits the size budget, and on its bundled
held-out example it beats cubic-spline interpolation as its model card says (the README's first command)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "pretrained", "piano_r4_16k")
EXAMPLE = os.path.join(MODEL, "example")


def _size(folder: str) -> int:
  return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(folder) for f in fs)


def test_shipped_model_loads_and_fits_the_budget():
  from sr_jax.train.checkpoint import restore_for_inference

  config, nets = restore_for_inference(MODEL)
  assert config.data.chain == "sample 4000 16000" and config.data.rate == 16000
  assert _size(MODEL) <= 25 * 2 ** 20  # the budget: the checkpoint, its config and the example
  leaves = [a for a in __import__("jax").tree.leaves(nets["gen"]["params"])]
  assert all(a.dtype == np.float32 and np.isfinite(a).all() for a in leaves)


def test_readme_first_command_beats_spline_on_the_example(tmp_path):
  report = tmp_path / "example"
  cmd = [sys.executable, os.path.join(ROOT, "launch", "evaluate.py"), f"--checkpoint={MODEL}", f"--data={EXAMPLE}",
         f"--report={report}", "--overwrite"]
  done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
  assert done.returncode == 0, done.stderr[-2000:]
  metrics = json.loads((report / "metrics.json").read_text())
  assert metrics["chain"] == "sample 4000 16000" and len(metrics["files"]) == 1
  model, spline = metrics["summary"]["model"], metrics["summary"]["spline"]
  assert model["lsd"] < 0.7 * spline["lsd"] and model["lsd_hf"] < 0.7 * spline["lsd_hf"]
  assert (report / "index.html").exists()
  wavs = [os.path.join(d, f) for d, _, fs in os.walk(report) for f in fs if f.endswith(".wav")]
  assert wavs  # the enhanced audio is written beside the page
  info = sf.info(wavs[0])
  assert info.samplerate == 16000 and info.duration == pytest.approx(12.0, abs=1e-3)
