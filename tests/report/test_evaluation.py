"""Tests for sr_jax/report/evaluation.py and launch/evaluate.py: metrics.json shape and numbers (against sr_jax.metrics
on independently degraded arrays), baselines, audio and spectrograms for the chosen files only (kept or recomputed),
the report folder's atomic writes, user errors, and a real model."""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from sr_jax import metrics as metrics_lib
from sr_jax.data import audio as audio_lib
from sr_jax.data import degrade as degrade_lib
from sr_jax.errors import UserError
from sr_jax.report import evaluation, schema
from sr_jax.report import speech as speech_lib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RATE = 16000
CHAIN = "sample 4000 16000,whitenoise 0 0.001"
ODD_NAME = "sub/b b&c#?'<x>.flac"  # needs HTML escaping and URL quoting
METRIC_KEYS = {"lsd", "lsd_hf", "lsd_lf", "snr", "si_sdr"}


def _tone(rate, seconds, f0):
  """Harmonics up to Nyquist with a decay: energy in the band a 4 kHz input lacks."""
  t = np.arange(int(round(rate * seconds))) / rate
  x = sum(np.sin(2 * np.pi * f0 * k * t + k) / k for k in range(1, 40) if f0 * k < rate / 2)
  return (0.3 * x / np.max(np.abs(x)) * np.exp(-1.5 * t)).astype(np.float32)


def make_clean_dir(folder) -> dict:
  """Two usable files (16 kHz mono WAV 1 s; 22.05 kHz stereo FLAC 0.75 s with an odd name) and a silent one."""
  files = {"a.wav": (_tone(RATE, 1.0, 220.0), RATE),
           ODD_NAME: (np.stack([_tone(22050, 0.75, 330.0), _tone(22050, 0.75, 495.0)], axis=1), 22050),
           "silent.wav": (np.zeros(8000, np.float32), RATE)}
  for name, (audio, rate) in files.items():
    audio_lib.write(os.path.join(folder, name), audio, rate)
  return {name: os.path.join(folder, name) for name in files}


def expected_signals(path, name, chain=CHAIN, seed=0, max_seconds=None):
  """{method: degraded input}, target: computed here with degrade directly (not through evaluation.py)."""
  clean, _ = audio_lib.read(path, rate=RATE, mono=True)
  if max_seconds is not None:
    clean = clean[:int(round(max_seconds * RATE))]
  out = {}
  for method in ("soxr", "cubic", "linear"):
    out[method], target, rate = degrade_lib.degrade(clean, RATE, chain, degrade_lib.file_seed(seed, name),
                                                    upsample=method)
    assert rate == RATE
  return out, target


class Oracle:
  """A perfect fake enhancer: returns the clean target of the (soxr) input it is given."""

  def __init__(self, paths, chain=CHAIN):
    self.targets = {}
    for name, path in paths.items():
      if name != "silent.wav":
        inputs, target = expected_signals(path, name, chain)
        self.targets[inputs["soxr"].tobytes()] = target
    self.calls = 0

  def __call__(self, audio, rate):
    self.calls += 1
    assert rate == RATE and audio.dtype == np.float32 and audio.ndim == 1
    return self.targets[audio.tobytes()].copy(), rate


def half(audio, rate):
  return 0.5 * audio, rate


def fake_report(tmp_path, overwrite=False, report="report"):
  """A report of the oracle ("model") and a half-gain fake ("collab") on make_clean_dir's files (without the
  optional speech metrics, whether their packages are installed or not)."""
  data = tmp_path / "data"
  paths = make_clean_dir(data)
  report_dir = str(tmp_path / report)
  doc = evaluation.write_report(report_dir, evaluation.clean_files(str(data)), str(data),
                                {"model": Oracle(paths), "collab": half}, CHAIN, "ckpt/4", RATE, overwrite=overwrite,
                                speech={})
  return report_dir, doc, paths


@pytest.fixture(scope="module")
def report(tmp_path_factory):
  return fake_report(tmp_path_factory.mktemp("fake"))


def _check_shape(doc, systems, speech=()):
  """metrics.json's layout (sr_jax/report/schema.py), with the speech metrics `speech` (may be null: PESQ finds no
  utterance in some audio)."""
  assert set(doc) - {"stride", "window"} == {"chain", "checkpoint", "files", "summary", "assets"}  # launch/evaluate
  assert isinstance(doc["chain"], str) and isinstance(doc["checkpoint"], str)
  assert isinstance(doc["files"], list) and doc["files"]
  keys = METRIC_KEYS | set(speech)
  for entry in doc["files"]:
    assert set(entry) == {"name", "seconds", *systems}
    assert isinstance(entry["name"], str) and type(entry["seconds"]) is float
    for system in systems:
      assert set(entry[system]) == keys
      assert all(type(entry[system][m]) is float and np.isfinite(entry[system][m]) for m in METRIC_KEYS)
      assert all(entry[system][m] is None or type(entry[system][m]) is float for m in speech)
  assert set(doc["summary"]) == set(systems)
  for system in systems:
    assert set(doc["summary"][system]) == keys
    assert all(type(doc["summary"][system][m]) is float for m in METRIC_KEYS)
  names = [e["name"] for e in doc["files"]]
  for asset in doc["assets"]:
    assert set(asset) == {"name", "folder", "why"} and asset["name"] in names
    assert asset["why"] and set(asset["why"]) <= set(schema.REASONS)


def test_metrics_json_shape_and_numbers(report):
  report_dir, doc, paths = report
  with open(os.path.join(report_dir, "metrics.json"), encoding="utf-8") as f:
    written = json.load(f)
  assert written == doc
  _check_shape(written, ["model", "collab", "spline", "linear", "input"])
  assert list(written["summary"]) == ["model", "collab", "spline", "linear", "input"]
  assert written["chain"] == CHAIN and written["checkpoint"] == "ckpt/4"
  # The silent file is skipped; names are paths relative to the data folder.
  assert [e["name"] for e in written["files"]] == ["a.wav", ODD_NAME]
  assert [e["seconds"] for e in written["files"]] == [1.0, 0.75]
  # Both files get audio and spectrograms (8 by default). The oracle's LSD gain is 1 on both (a tie, kept in file
  # order): the first file is also the best and the median ((2 - 1) // 2 = rank 0), the second the worst.
  assert written["assets"] == [{"name": "a.wav", "folder": "a", "why": ["first", "best", "median"]},
                               {"name": ODD_NAME, "folder": "sub_b b&c#?'<x>", "why": ["worst"]}]
  for entry in written["files"]:
    inputs, target = expected_signals(paths[entry["name"]], entry["name"])
    expected = {"model": target, "collab": 0.5 * inputs["soxr"], "spline": inputs["cubic"],
                "linear": inputs["linear"], "input": inputs["soxr"]}
    for system, estimate in expected.items():
      reference = metrics_lib.all_metrics(target, estimate, RATE, 2000.0)
      assert entry[system] == pytest.approx(reference, rel=1e-12, abs=1e-12), system
  for system in written["summary"]:
    for metric in METRIC_KEYS:
      mean = np.mean([e[system][metric] for e in written["files"]])
      assert written["summary"][system][metric] == pytest.approx(mean, rel=1e-12)


def test_perfect_enhancer_gets_lsd_zero_and_beats_the_baselines(report):
  _, doc, _ = report
  model, spline = doc["summary"]["model"], doc["summary"]["spline"]
  assert model["lsd"] == pytest.approx(0.0, abs=1e-9) and model["lsd_hf"] == pytest.approx(0.0, abs=1e-9)
  assert model["snr"] > 60.0 and model["si_sdr"] > 60.0  # eps-limited, not infinite
  assert model["lsd_lf"] == pytest.approx(0.0, abs=1e-9)
  for metric in ("lsd", "lsd_hf", "lsd_lf"):
    assert model[metric] < spline[metric]
  for metric in ("snr", "si_sdr"):
    assert model[metric] > spline[metric]
  assert spline != doc["summary"]["linear"] != doc["summary"]["input"]  # three different upsamplings
  # The half-gain fake: SI-SDR ignores the scale, so it equals the input's; SNR does not.
  for entry in doc["files"]:
    assert entry["collab"]["si_sdr"] == pytest.approx(entry["input"]["si_sdr"], abs=1e-6)
    assert entry["collab"]["snr"] < entry["input"]["snr"]


def test_max_seconds_crops_before_degrading(tmp_path):
  paths = make_clean_dir(tmp_path / "data")
  results = list(evaluation.evaluate_files([paths["a.wav"]], str(tmp_path / "data"), {"model": half}, CHAIN, RATE,
                                           seed=3, max_seconds=0.4, speech={}))
  (result,) = results
  assert result.name == "a.wav" and result.seconds == 0.4 and len(result.signals["target"]) == 6400
  inputs, target = expected_signals(paths["a.wav"], "a.wav", seed=3, max_seconds=0.4)
  np.testing.assert_array_equal(result.signals["target"], target)
  np.testing.assert_array_equal(result.signals["spline"], inputs["cubic"])
  assert result.metrics["model"] == pytest.approx(metrics_lib.all_metrics(target, 0.5 * inputs["soxr"], RATE, 2000))
  # Another seed draws other noise.
  other = next(evaluation.evaluate_files([paths["a.wav"]], str(tmp_path / "data"), {}, CHAIN, RATE, seed=4,
                                         max_seconds=0.4, speech={}))
  assert not np.array_equal(other.signals["input"], result.signals["input"])
  np.testing.assert_array_equal(other.signals["target"], result.signals["target"])


def test_cutoff_rate_and_model_input():
  assert evaluation.METRICS == metrics_lib.METRIC_NAMES
  assert evaluation.cutoff_hz("sample 4000 16000", 16000) == 2000.0
  assert evaluation.cutoff_hz("whitenoise 0 0.01", 16000) == 8000.0
  assert evaluation.cutoff_hz("room image 0.5,lowpass butter 2000", 16000) == 2000.0
  assert evaluation.cutoff_hz("lowpass random 2000 4000,noise pink 20", 16000) == 4000.0
  assert evaluation.cutoff_hz("telephone", 16000) == 3400.0
  assert evaluation.cutoff_hz("sample 8000 16000,lowpass fir 3000", 16000) == 3000.0
  assert evaluation.cutoff_hz("maybe 0.5 lowpass soxr 2000", 16000) == 8000.0  # not every file is band-limited
  # without a band limit there is no high band to score (it would be the Nyquist bin alone)
  noisy = evaluation.score(clean := _tone(RATE, 0.5, 300.0), clean + 0.01, RATE, RATE / 2)
  assert noisy["lsd_hf"] is None and noisy["lsd_lf"] is None and noisy["lsd"] > 0
  assert evaluation.score(clean, clean + 0.01, RATE, 2000.0)["lsd_hf"] is not None
  config = type("C", (), {"data": type("D", (), {"rate": 16000})})
  assert evaluation.eval_rate(config, "sample 3000 16000,reverb 0") == 16000
  assert evaluation.eval_rate(config, "pinknoise 0 0.01") == 16000
  with pytest.raises(UserError, match="makes 22050 Hz targets but the model makes 16000 Hz"):
    evaluation.eval_rate(config, "sample 4000 22050")
  # The enhancers get the input upsampled the way the model was trained (here linear); "input" stays soxr.
  clean = _tone(RATE, 0.5, 300.0)
  seen = []
  signals, scores = evaluation.evaluate_clean(clean, RATE, "sample 4000 16000", 1,
                                              {"model": lambda x, r: (seen.append(x), (x, r))[1]}, "linear")
  linear = degrade_lib.degrade(clean, RATE, "sample 4000 16000", 1, upsample="linear")[0]
  np.testing.assert_array_equal(seen[0], linear)
  np.testing.assert_array_equal(signals["model_input"], linear)
  assert scores["model"] == scores["linear"] != scores["input"]


def test_bad_enhancer_outputs(tmp_path):
  clean = _tone(RATE, 0.5, 300.0)
  for fn, match in (((lambda x, r: (x[:-1], r)), "returned 7999 frames for a 8000-frame input"),
                    ((lambda x, r: (x, 22050)), "returned 22050 Hz audio for a 16000 Hz target"),
                    ((lambda x, r: (np.stack([x, x], 1), r)), "expected mono")):
    with pytest.raises(ValueError, match=match):
      evaluation.evaluate_clean(clean, RATE, CHAIN, 0, {"model": fn})
  # (frames, 1) is accepted; a NaN output is scored as null (valid JSON), and its summary too.
  signals, scores = evaluation.evaluate_clean(clean, RATE, CHAIN, 0, {"model": lambda x, r: (x[:, None], r)})
  assert signals["model"].shape == (8000,)
  _, scores = evaluation.evaluate_clean(clean, RATE, CHAIN, 0, {"model": lambda x, r: (x * np.nan, r)})
  assert scores["model"]["snr"] is None and scores["input"]["snr"] is not None
  summary = schema.summarize([{"model": scores["model"]}, {"model": {k: 1.0 for k in METRIC_KEYS}}], ["model"])
  assert summary["model"]["snr"] is None


def test_clean_files(tmp_path):
  with pytest.raises(UserError, match="does not exist"):
    evaluation.clean_files(str(tmp_path / "nope"))
  (tmp_path / "notes.txt").write_text("x")
  with pytest.raises(UserError, match="is not a folder"):
    evaluation.clean_files(str(tmp_path / "notes.txt"))
  with pytest.raises(UserError, match="no audio files in"):
    evaluation.clean_files(str(tmp_path))
  paths = make_clean_dir(tmp_path / "data")
  assert evaluation.clean_files(str(tmp_path / "data")) == sorted(paths.values())
  assert evaluation.clean_files(str(tmp_path / "data"), max_files=1) == [paths["a.wav"]]
  assert evaluation.clean_files(str(tmp_path / "data"), exclude=str(tmp_path / "data" / "sub")) == [
      paths["a.wav"], paths["silent.wav"]]
  for split in ("train", "valid", "test"):
    (tmp_path / "corpus" / split).mkdir(parents=True)
  with pytest.raises(UserError, match="holds train/valid/test splits: evaluate one of them"):
    evaluation.clean_files(str(tmp_path / "corpus"))


def test_only_silent_files_is_a_user_error(tmp_path):
  paths = make_clean_dir(tmp_path / "data")
  with pytest.raises(UserError, match="no usable audio file"):
    list(evaluation.evaluate_files([paths["silent.wav"]], str(tmp_path / "data"), {"model": half}, CHAIN, RATE))


def test_failed_run_leaves_no_report_and_keeps_the_old_one(tmp_path):
  make_clean_dir(tmp_path / "data")
  files = evaluation.clean_files(str(tmp_path / "data"))

  def broken(audio, rate):  # fails on the second file, once the first file's assets are written
    broken.calls += 1
    if broken.calls > 1:
      raise RuntimeError("model exploded")
    return audio, rate

  def run():
    broken.calls = 0
    with pytest.raises(RuntimeError, match="model exploded"):
      evaluation.write_report(str(tmp_path / "out"), files, str(tmp_path / "data"), {"model": broken}, CHAIN,
                              "c", RATE, overwrite=True, speech={})
    assert broken.calls == 2

  run()
  assert sorted(os.listdir(tmp_path)) == ["data"]  # no report, no temporary folder
  fake_report(tmp_path, report="out")  # (rewrites the same data files)
  before = {name: os.path.getmtime(tmp_path / "out" / name) for name in os.listdir(tmp_path / "out")}
  run()
  assert sorted(os.listdir(tmp_path)) == ["data", "out"]
  assert {name: os.path.getmtime(tmp_path / "out" / name) for name in os.listdir(tmp_path / "out")} == before


def test_report_folder_rules(tmp_path, report):
  evaluation.check_report_dir(str(tmp_path / "new"), overwrite=False)
  (tmp_path / "empty").mkdir()
  evaluation.check_report_dir(str(tmp_path / "empty"), overwrite=False)
  (tmp_path / "home").mkdir()
  (tmp_path / "home" / "thesis.tex").write_text("precious")
  with pytest.raises(UserError, match="already exists; pass --overwrite"):
    evaluation.check_report_dir(str(tmp_path / "home"), overwrite=False)
  with pytest.raises(UserError, match="not a report"):
    evaluation.check_report_dir(str(tmp_path / "home"), overwrite=True)
  with pytest.raises(UserError, match="not a folder"):
    evaluation.check_report_dir(str(tmp_path / "home" / "thesis.tex"), overwrite=True)
  # An existing report is replaced as a whole with overwrite (a stray file of the old one disappears).
  report_dir, _, _ = fake_report(tmp_path / "again")
  with open(os.path.join(report_dir, "stray.txt"), "w") as f:
    f.write("old")
  with pytest.raises(UserError, match="already exists"):
    fake_report(tmp_path / "again")
  fake_report(tmp_path / "again", overwrite=True)
  assert not os.path.exists(os.path.join(report_dir, "stray.txt"))
  assert os.path.exists(os.path.join(report_dir, "metrics.json"))
  assert sorted(os.listdir(tmp_path / "again")) == ["data", "report"]


# ----- audio and spectrograms of the chosen files only -----------------------------------------------------------

MANY = [f"f{i}.wav" for i in range(9)]
WEIGHTS = dict(zip(MANY, (0.6, 0.1, 0.9, 0.3, 0.0, 0.75, 0.45, 0.2, 1.0)))


class Mixer:
  """A fake model, deterministic in its input: the target plus WEIGHTS[name] times the input's error (0: the oracle,
  f4; 1: the input itself, f8)."""

  def __init__(self, paths):
    self.known = {}
    for name, path in paths.items():
      inputs, target = expected_signals(path, name)
      self.known[inputs["soxr"].tobytes()] = (target, WEIGHTS[name])
    self.calls = 0

  def __call__(self, audio, rate):
    self.calls += 1
    target, weight = self.known[audio.tobytes()]
    return (target + weight * (audio - target)).astype(np.float32), rate


@pytest.fixture(scope="module")
def many(tmp_path_factory):
  """Nine 0.3 s tones (f0 150 + 37 i Hz) and their paths."""
  root = tmp_path_factory.mktemp("many")
  paths = {}
  for i, name in enumerate(MANY):
    paths[name] = str(root / "data" / name)
    audio_lib.write(paths[name], _tone(RATE, 0.3, 150.0 + 37.0 * i), RATE)
  return root, paths


def _many_report(many, name, **kwargs):
  root, paths = many
  mixer = Mixer(paths)
  report_dir = root / name
  doc = evaluation.write_report(str(report_dir), sorted(paths.values()), str(root / "data"), {"model": mixer}, CHAIN,
                                "c", RATE, speech={}, **kwargs)
  return report_dir, doc, mixer


def _contents(report_dir):
  return {folder: sorted(os.listdir(report_dir / folder)) for folder in os.listdir(report_dir)
          if os.path.isdir(report_dir / folder)}


def test_assets_only_for_the_first_best_median_and_worst(many):
  _, paths = many
  report_dir, doc, mixer = _many_report(many, "four", max_assets=4)
  assert mixer.calls == 9  # each file enhanced once: the chosen files' signals were kept
  assert [e["name"] for e in doc["files"]] == MANY  # every file's metrics
  # The ranking, from metrics.json's numbers: LSD gain over spline, highest first.
  gains = [(e["spline"]["lsd"] - e["model"]["lsd"]) / e["spline"]["lsd"] for e in doc["files"]]
  order = sorted(range(9), key=lambda i: -gains[i])
  assert len(set(gains)) == 9
  assert MANY[order[0]] == "f4.wav" and gains[order[0]] == pytest.approx(1.0)  # the oracle
  assert MANY[order[-1]] == "f8.wav" and gains[order[-1]] < 0  # the soxr input: worse than spline in LSD
  expected = {0: ["first"], order[0]: ["best"], order[4]: ["median"], order[8]: ["worst"]}
  assert len(expected) == 4
  assert doc["assets"] == [{"name": MANY[i], "folder": MANY[i][:-4], "why": expected[i]} for i in sorted(expected)]
  assert _contents(report_dir) == {MANY[i][:-4]: ["input.wav", "model.wav", "spectrograms.png", "target.wav"]
                                   for i in expected}
  assert sorted(f for f in os.listdir(report_dir) if not os.path.isdir(report_dir / f)) == [
      "index.html", "metrics.json", "report.md"]
  for i in expected:  # the written audio is the model's output for that file (up to 16-bit quantisation)
    inputs, target = expected_signals(paths[MANY[i]], MANY[i])
    model, _ = audio_lib.read(str(report_dir / MANY[i][:-4] / "model.wav"), mono=True)
    np.testing.assert_allclose(model, target + WEIGHTS[MANY[i]] * (inputs["soxr"] - target), atol=1 / 32768 + 1e-6)


def test_assets_beyond_the_cache_are_recomputed(many):
  kept_dir, kept, _ = _many_report(many, "kept", max_assets=4)
  redone_dir, redone, mixer = _many_report(many, "redone", max_assets=4, cache_bytes=0)
  assert mixer.calls == 9 + 4  # the four chosen files enhanced again at the end
  assert redone == kept
  for folder, names in _contents(kept_dir).items():
    for name in names:
      assert (redone_dir / folder / name).read_bytes() == (kept_dir / folder / name).read_bytes(), (folder, name)


def test_max_assets_none_and_all(many):
  none_dir, none, mixer = _many_report(many, "none", max_assets=0)
  assert none["assets"] == [] and _contents(none_dir) == {} and mixer.calls == 9
  text = (none_dir / "index.html").read_text(encoding="utf-8")
  assert "<audio" not in text and "<img" not in text and "--max_assets=0" in text
  all_dir, everything, _ = _many_report(many, "all", max_assets=-1)
  assert [a["name"] for a in everything["assets"]] == MANY and len(_contents(all_dir)) == 9
  assert everything["files"] == none["files"]


# ----- launch/evaluate.py ----------------------------------------------------------------------------------------


def _launch_all(arg_lists, timeout=240, env=None):
  """Runs launch/evaluate.py once per argument list, all at once; returns the CompletedProcess-like results."""
  script = os.path.join(ROOT, "launch", "evaluate.py")
  procs = [subprocess.Popen([sys.executable, script, *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env) for args in arg_lists]
  out = []
  for proc in procs:
    stdout, stderr = proc.communicate(timeout=timeout)
    out.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
  return out


def test_launcher_user_errors(tmp_path):
  make_clean_dir(tmp_path / "data")
  (tmp_path / "empty").mkdir()
  (tmp_path / "old").mkdir()
  (tmp_path / "old" / "metrics.json").write_text("{}")
  data, ckpt = f"--data={tmp_path / 'data'}", f"--workdir={tmp_path / 'run'}"
  cases = {
      "data folder .*nope does not exist": [ckpt, f"--data={tmp_path / 'nope'}", f"--report={tmp_path / 'r'}"],
      "no audio files in .*empty": [ckpt, f"--data={tmp_path / 'empty'}", f"--report={tmp_path / 'r'}"],
      "report folder .*old already exists; pass --overwrite": [ckpt, data, f"--report={tmp_path / 'old'}"],
      "give exactly one of --workdir .*, --checkpoint .* and --model": [ckpt, f"--checkpoint={tmp_path}", data,
                                                            f"--report={tmp_path / 'r'}"],
      "give exactly one of --workdir": [data, f"--report={tmp_path / 'r'}"],
      "no checkpoint at .*run: the folder does not exist": [ckpt, data, f"--report={tmp_path / 'r'}"],
      "--stride must be a positive integer number of samples, got -4": [ckpt, data, f"--report={tmp_path / 'r'}",
                                                                "--stride=-4"],
      "--max_assets must be a number of files, 0 .none. or -1 .all., got -2": [ckpt, data, "--max_assets=-2",
                                                                              f"--report={tmp_path / 'r'}"],
  }
  for (pattern, _), result in zip(cases.items(), _launch_all(list(cases.values()))):
    assert result.returncode == 2, (pattern, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), (pattern, result.stderr)
    assert "Traceback" not in result.stderr
    assert re.search(pattern, lines[0]), (pattern, lines[0])
  assert not os.path.exists(tmp_path / "r")
  assert os.listdir(tmp_path / "old") == ["metrics.json"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A tiny GAN run (4 steps; with a discriminator, for --collab, of at most 2 steps) on the tiny corpus."""
  from sr_jax.data import corpus  # noqa: PLC0415

  root = tmp_path_factory.mktemp("run")
  corpus.build_tiny_corpus(str(root / "corpus"), seconds_per_file=1.5)
  workdir = root / "work"
  subprocess.run([sys.executable, os.path.join(ROOT, "launch", "train.py"), "--config=configs/tiny.py",
                  f"--workdir={workdir}", f"--config.data.dir={root / 'corpus'}", "--config.train.num_steps=4",
                  "--config.checkpoint.every=4", "--config.loss.lambda_adv=0.01", "--config.train.eval_batches=1",
                  "--config.checkpoint.keep_best=False", "--config.collab.max_steps=2"],
                 cwd=ROOT, check=True, capture_output=True)
  return workdir, root / "corpus" / "test"


def test_launcher_with_a_longer_window(trained, tmp_path):
  workdir, data = trained
  ok, bad = _launch_all([
      [f"--workdir={workdir}", f"--data={data}", f"--report={tmp_path / 'long'}", "--max_seconds=0.5",
       "--window=1024"],
      [f"--workdir={workdir}", f"--data={data}", f"--report={tmp_path / 'bad'}", "--collab", "--window=1024"]])
  assert ok.returncode == 0, ok.stderr
  with open(tmp_path / "long" / "metrics.json", encoding="utf-8") as f:
    doc = json.load(f)
  assert (doc["window"], doc["stride"]) == (1024, 512)  # twice the training window, the same overlap fraction
  assert bad.returncode != 0 and "collaborative sampling runs at the training window (512 samples)" in bad.stderr
  assert "Traceback" not in bad.stderr and not (tmp_path / "bad").exists()


def test_launcher_default_window_from_the_config(trained, tmp_path):
  """A checkpoint whose config sets data.enhance_window is evaluated at that window by default (the stride keeps the
  overlap fraction); with --collab the model and the sampler both run at the training window, so the two rows
  differ by the sampler alone."""
  workdir, data = trained
  step_dir = tmp_path / "4"
  shutil.copytree(workdir / "checkpoints" / "4", step_dir)
  meta = step_dir / "config" / "metadata"
  assert '"enhance_window": 0' in meta.read_text()
  meta.write_text(meta.read_text().replace('"enhance_window": 0', '"enhance_window": 2048'))
  plain, collab = _launch_all([
      [f"--checkpoint={step_dir}", f"--data={data}", f"--report={tmp_path / 'plain'}", "--max_seconds=0.25"],
      [f"--checkpoint={step_dir}", f"--data={data}", f"--report={tmp_path / 'collab'}", "--max_seconds=0.25",
       "--collab", "--max_files=1"]])
  assert plain.returncode == 0 and collab.returncode == 0, plain.stderr + collab.stderr
  docs = [json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("plain", "collab")]
  assert (docs[0]["window"], docs[0]["stride"]) == (2048, 1024)  # 4 x the training window, eval_stride 256 x 4
  assert (docs[1]["window"], docs[1]["stride"]) == (512, 256)  # the training window and the config's eval_stride


def test_launcher_with_a_trained_model(trained, tmp_path):
  workdir, data = trained
  report_dir = tmp_path / "report"
  # XLA's optimisation level 0 (tests/conftest.py) compiles faster but runs collaborative sampling's gradient loop
  # ~4x slower: this run takes the default level.
  flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith("--xla_backend_optimization_level")]
  env = dict(os.environ, XLA_FLAGS=" ".join(flags))
  (result,) = _launch_all([[f"--workdir={workdir}", f"--data={data}", f"--report={report_dir}", "--collab",
                            "--max_seconds=0.75", "--seed=5", "--stride=128"]], env=env)
  assert result.returncode == 0, result.stderr
  assert "mean over files" in result.stdout
  assert re.search(r"time: [0-9.]+ s for 2 files, [0-9.]+ s in the model's enhance calls \([0-9.]+ s the first "
                   r"call, which compiles\); the rest .* [0-9]+ ms per file, [0-9]+% of the enhancement time "
                   r"\([0-9]+% of it without the compilation\)", result.stdout), result.stdout
  with open(report_dir / "metrics.json", encoding="utf-8") as f:
    doc = json.load(f)
  _check_shape(doc, ["model", "collab", "spline", "linear", "input"], tuple(speech_lib.scorers()))
  assert doc["chain"] == "sample 4000 16000"
  assert doc["checkpoint"] == str(workdir / "checkpoints" / "4")
  assert doc["stride"] == 128 and doc["window"] == 512  # --stride (the tiny config's own eval_stride is 256)
  assert [e["name"] for e in doc["files"]] == ["tiny-test-000.wav", "tiny-test-001.wav"]
  assert all(e["seconds"] == 0.75 for e in doc["files"])
  for entry in doc["files"]:
    inputs, target = expected_signals(str(data / entry["name"]), entry["name"], "sample 4000 16000", seed=5,
                                      max_seconds=0.75)
    core = {system: {k: entry[system][k] for k in METRIC_KEYS} for system in entry if system in schema.SYSTEMS}
    for system, method in (("spline", "cubic"), ("linear", "linear"), ("input", "soxr")):
      assert core[system] == pytest.approx(metrics_lib.all_metrics(target, inputs[method], RATE, 2000.0),
                                           rel=1e-12, abs=1e-12)
    # The model's numbers are those of the output written to the report (16-bit PCM: up to quantisation), and
    # the written target and input are the arrays computed here.
    folder = report_dir / os.path.splitext(entry["name"])[0]
    files = {name: audio_lib.read(str(folder / f"{name}.wav"), mono=True) for name in
             ("input", "model", "collab", "target")}
    assert all(rate == RATE and len(audio) == 12000 for audio, rate in files.values())
    np.testing.assert_allclose(files["target"][0], target, atol=1 / 32768 + 1e-7)
    np.testing.assert_allclose(files["input"][0], inputs["soxr"], atol=1 / 32768 + 1e-7)
    model = metrics_lib.all_metrics(target, files["model"][0], RATE, 2000.0)
    assert core["model"] == pytest.approx(model, rel=2e-3, abs=2e-3)
    assert core["model"] != core["input"]


def test_launcher_with_named_chains_gives_the_single_chain_numbers(trained, tmp_path):
  """--chains (here a file) runs the model once over both chains; each chain's numbers equal those of a --chain run
  of it alone (the same per-file seeds), and the time line covers both chains."""
  workdir, data = trained
  spec = tmp_path / "chains.txt"
  spec.write_text("# the card's degradations\nbw4k=sample 4000 16000\n\nnoisy=noise white 20  # full band\n")
  common = [f"--workdir={workdir}", f"--data={data}", "--max_seconds=0.5", "--seed=2", "--max_assets=1"]
  both, bw4k, noisy = _launch_all([
      common + [f"--report={tmp_path / 'both'}", f"--chains={spec}"],
      common + [f"--report={tmp_path / 'bw4k'}", "--chain=sample 4000 16000"],
      common + [f"--report={tmp_path / 'noisy'}", "--chain=noise white 20"]])
  assert both.returncode == bw4k.returncode == noisy.returncode == 0, both.stderr + bw4k.stderr + noisy.stderr
  assert re.search(r"time: [0-9.]+ s for 2 files x 2 chains, [0-9.]+ s in the model's enhance calls .*; the rest "
                   r".* [0-9]+ ms per file and chain", both.stdout), both.stdout
  assert "[4/4] tiny-test-001.wav [noisy]: model LSD" in both.stdout
  docs = {name: json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("both", "bw4k", "noisy")}
  assert [c["name"] for c in docs["both"]["chains"]] == ["bw4k", "noisy"]
  for view in docs["both"]["chains"]:
    single = docs[view["name"]]
    assert [e["name"] for e in view["files"]] == [e["name"] for e in single["files"]]
    for mine, theirs in zip(view["files"] + [view["summary"]], single["files"] + [single["summary"]]):
      for system in ("model", "spline", "input"):
        assert mine[system] == pytest.approx(theirs[system], rel=1e-9, abs=1e-12), (view["name"], system)
  assert len(docs["both"]["assets"]) == 1 and (tmp_path / "both" / "report.md").exists()
