"""Tests for sr_jax/report/speech.py: with pesq and pystoi installed, PESQ-wb and STOI are in metrics.json and on the
page, with sane values (a signal against itself: PESQ 4.64, the top of P.862.2's scale, and STOI 1; a heavily noised
copy scores lower); without them (their import made to fail) they are left out and the report is unchanged."""

import json
import os
import sys

import numpy as np
import pytest
import scipy.signal

from sr_jax.data import audio as audio_lib
from sr_jax.report import evaluation, speech

RATE = 16000
installed = all(speech._import(m) is not None for m in speech.PACKAGES.values())
needs_packages = pytest.mark.skipif(not installed, reason='no pesq/pystoi: pip install -e ".[speech]"')


def speech_like(rate=RATE, seconds=2.0, seed=0):
  """A vowel-like signal: a pulse train (f0 100-140 Hz) through three formant resonators (700, 1220, 2600 Hz), on
  for about two thirds of each 0.3 s syllable; PESQ's voice activity detection finds utterances in it."""
  rng = np.random.default_rng(seed)
  t = np.arange(int(rate * seconds)) / rate
  phase = np.cumsum(120 + 20 * np.sin(2 * np.pi * 3 * t)) / rate
  x = (np.diff(np.floor(phase), prepend=0) > 0).astype(float) + 0.02 * rng.standard_normal(t.size)
  for centre, bandwidth in ((700, 130), (1220, 70), (2600, 160)):
    r, w = np.exp(-np.pi * bandwidth / rate), 2 * np.pi * centre / rate
    x = scipy.signal.lfilter([1 - r], [1, -2 * r * np.cos(w), r * r], x)
  envelope = np.convolve((np.sin(2 * np.pi * 3.3 * t) > -0.3).astype(float), np.hanning(401) / 200.5, mode="same")
  x = x * envelope
  return (0.3 * x / np.max(np.abs(x))).astype(np.float32)


def noised(x, snr_db, seed=1):
  noise = np.random.default_rng(seed).standard_normal(x.size)
  return (x + noise * np.sqrt(np.mean(x.astype(float) ** 2) / 10 ** (snr_db / 10))).astype(np.float32)


@needs_packages
def test_values_are_sane():
  scorers = speech.scorers()
  assert list(scorers) == ["pesq", "stoi"]
  x = speech_like()
  assert scorers["pesq"](x, x, RATE) == pytest.approx(4.64, abs=0.01)  # P.862.2's maximum
  assert scorers["stoi"](x, x, RATE) == pytest.approx(1.0, abs=1e-6)
  light, heavy = noised(x, 20.0), noised(x, 0.0)
  assert scorers["pesq"](x, heavy, RATE) < 1.5 and scorers["stoi"](x, heavy, RATE) < 0.8
  assert scorers["pesq"](x, heavy, RATE) < scorers["pesq"](x, light, RATE) < 4.0
  assert scorers["stoi"](x, heavy, RATE) < scorers["stoi"](x, light, RATE) < 1.0


@needs_packages
def test_long_files_are_scored_in_segments_without_crashing():
  """PESQ of a 3-minute file (the pesq package's C code crashes the process on such lengths) is the length-weighted
  mean of the package's own scores of its equal segments of at most PESQ_MAX_SECONDS."""
  import pesq as pesq_module  # noqa: PLC0415

  x = np.concatenate([speech_like(seconds=30.0, seed=s) for s in range(6)])  # 180 s
  y = noised(x, 10.0)
  segments = [(r, e) for r, e in zip(np.array_split(x.astype(np.float64), 6), np.array_split(y.astype(np.float64), 6))]
  want = np.mean([pesq_module.pesq(RATE, r, e, "wb") for r, e in segments])  # six segments of exactly 30 s
  assert speech.scorers()["pesq"](x, y, RATE) == pytest.approx(want, abs=1e-6)
  short = noised(speech_like(seconds=5.0), 10.0)
  assert speech.scorers()["pesq"](speech_like(seconds=5.0), short, RATE) == pytest.approx(
      pesq_module.pesq(RATE, speech_like(seconds=5.0).astype(np.float64), short.astype(np.float64), "wb"), abs=1e-6)


@needs_packages
def test_other_rates_and_uncomputable_cases():
  scorers = speech.scorers()
  x, heavy = speech_like(), noised(speech_like(), 0.0)
  # At 32 kHz PESQ-wb is computed on the audio resampled to 16 kHz: the same score as the 16 kHz signals get.
  x32, heavy32 = (audio_lib.resample(a, RATE, 32000) for a in (x, heavy))
  assert scorers["pesq"](x32, heavy32, 32000) == pytest.approx(scorers["pesq"](x, heavy, RATE), abs=0.05)
  assert scorers["stoi"](x32, heavy32, 32000) == pytest.approx(scorers["stoi"](x, heavy, RATE), abs=0.02)
  # Too short (PESQ needs 0.25 s, STOI 30 non-silent frames), a NaN output, silence: None, not an exception.
  short = x[:3000]
  assert scorers["pesq"](short, short, RATE) is None and scorers["stoi"](short, short, RATE) is None
  for bad in (x * np.nan, np.zeros_like(x)):
    assert scorers["pesq"](x, bad, RATE) is None and scorers["stoi"](x, bad, RATE) is None


def _speech_report(tmp_path, name):
  data = tmp_path / "data"
  if not data.exists():
    for i in range(2):
      audio_lib.write(str(data / f"s{i}.wav"), speech_like(seed=i), RATE)

  def noisy(audio, rate):  # a fake model: its input with noise at 10 dB SNR
    return noised(audio, 10.0, seed=7), rate

  files = evaluation.clean_files(str(data))
  return evaluation.write_report(str(tmp_path / name), files, str(data), {"model": noisy}, "sample 8000 16000",
                                 "c", RATE, max_assets=1)


@needs_packages
def test_report_has_the_speech_metrics(tmp_path):
  doc = _speech_report(tmp_path, "with")
  for entry in doc["files"]:
    for system in ("model", "spline", "linear", "input"):
      assert list(entry[system])[-2:] == ["pesq", "stoi"]
      assert 1.0 <= entry[system]["pesq"] <= 4.64 and 0.0 < entry[system]["stoi"] <= 1.0
    # Band-limiting to 4 kHz costs little intelligibility; 10 dB of white noise costs more.
    assert entry["model"]["stoi"] < entry["spline"]["stoi"] and entry["model"]["pesq"] < entry["spline"]["pesq"]
  for system in doc["summary"]:
    for metric in ("pesq", "stoi"):
      mean = np.mean([e[system][metric] for e in doc["files"]])
      assert doc["summary"][system][metric] == pytest.approx(mean, rel=1e-12)
  with open(tmp_path / "with" / "metrics.json", encoding="utf-8") as f:
    assert json.load(f) == doc
  text = (tmp_path / "with" / "index.html").read_text(encoding="utf-8")
  assert "PESQ-wb" in text and "STOI" in text
  # report.md's by-degradation table has the model's and the input's PESQ and STOI, and the model's gain.
  table = (tmp_path / "with" / "report.md").read_text(encoding="utf-8").split("## By degradation")[1]
  header = table.strip().splitlines()[0]
  for column in ("PESQ-wb model", "PESQ-wb input", "PESQ-wb gain", "STOI model", "STOI input", "STOI gain"):
    assert f" {column} |" in header


def test_without_the_packages_the_report_leaves_them_out(tmp_path, monkeypatch):
  for module in speech.PACKAGES.values():
    monkeypatch.setitem(sys.modules, module, None)  # `import pesq` now raises ImportError
  assert speech.scorers() == {}
  doc = _speech_report(tmp_path, "without")
  for entry in doc["files"]:
    for system in ("model", "spline", "linear", "input"):
      assert set(entry[system]) == {"lsd", "lsd_hf", "lsd_lf", "snr", "si_sdr"}
  assert set(doc["summary"]["model"]) == {"lsd", "lsd_hf", "lsd_lf", "snr", "si_sdr"}
  text = (tmp_path / "without" / "index.html").read_text(encoding="utf-8")
  assert "PESQ" not in text and "STOI" not in text
  assert "PESQ" not in (tmp_path / "without" / "report.md").read_text(encoding="utf-8")
  assert sorted(os.listdir(tmp_path / "without")) == ["index.html", "metrics.json", "report.md", "s0"]
