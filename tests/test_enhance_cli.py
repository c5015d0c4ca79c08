"""launch/enhance.py end to end (subprocesses): user errors in one line, --overwrite, folders, flat memory."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import soxr

from tests.test_enhance import init_checkpoint, tone, trained_run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "launch", "enhance.py")


def start(*args) -> subprocess.Popen:
  return subprocess.Popen([sys.executable, SCRIPT, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)


def run(*args) -> subprocess.CompletedProcess:
  p = start(*args)
  out, err = p.communicate(timeout=300)
  return subprocess.CompletedProcess(p.args, p.returncode, out, err)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  return trained_run(tmp_path_factory)


def write(path, audio, rate, **kw):
  sf.write(str(path), audio, rate, **kw)
  return str(path)


def bad_inputs(folder) -> dict[str, tuple[str, str]]:
  """{case: (input path, expected words of the error)}."""
  folder.mkdir()
  x = tone(2.0, 16000)[:, 0]
  data = (folder / write(folder / "full.flac", x, 16000)).read_bytes()
  nan = x.copy()
  nan[5000] = np.nan
  files = {
      "missing": (str(folder / "missing.wav"), "not found"),
      "empty": (folder / "empty.wav", b"", "cannot read"),
      "non-audio": (folder / "notes.wav", b"just some text, not audio\n" * 20, "cannot read"),
      "random bytes": (folder / "noise.flac", bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8)),
                       "cannot read"),
      "truncated flac": (folder / "cut.flac", data[:len(data) // 2], "decoding failed"),
      "corrupt flac": (folder / "corrupt.flac", data[:3000] + bytes(3000) + data[6000:], "decoding failed"),
  }
  cases = {}
  for name, spec in files.items():
    if len(spec) == 3:
      spec[0].write_bytes(spec[1])
      spec = (str(spec[0]), spec[2])
    cases[name] = spec
  cases["zero frames"] = (write(folder / "zero.wav", np.zeros(0, np.float32), 16000), "zero frames")
  cases["rate 500 Hz"] = (write(folder / "slow.wav", x[:1000], 500), "out of range")
  cases["rate 500 kHz"] = (write(folder / "fast.wav", x, 500000), "out of range")
  cases["NaN samples"] = (write(folder / "nan.wav", nan, 16000, subtype="FLOAT"), "NaN")
  return cases


def test_user_errors_end_in_one_line(workdir, tmp_path):
  cases = {name: ([f"--workdir={workdir}", f"--input={src}", f"--output={tmp_path / 'out' / name}.wav"], words)
           for name, (src, words) in bad_inputs(tmp_path / "bad").items()}
  good = write(tmp_path / "good.wav", tone(0.5, 16000), 16000)
  other = tmp_path / "other_shape"  # a step folder whose config does not describe its weights
  init_checkpoint(str(other), **{"model.depth": 2, "data.window": 256})
  meta = other / "checkpoints" / "0" / "config" / "metadata"
  meta.write_text(meta.read_text().replace('"depth": 2', '"depth": 3'))
  (tmp_path / "no_run").mkdir()
  (tmp_path / "folder_in").mkdir()
  write(tmp_path / "folder_in" / "a.wav", tone(0.5, 16000), 16000)
  out = f"--output={tmp_path / 'out' / 'x.wav'}"
  cases.update({
      "unknown output format": ([f"--workdir={workdir}", f"--input={good}", f"--output={tmp_path}/out/x.xyz"],
                                "unknown audio format"),
      "folder in, file out": ([f"--workdir={workdir}", f"--input={tmp_path / 'folder_in'}", f"--output={good}"],
                              "must be a folder"),
      "empty folder": ([f"--workdir={workdir}", f"--input={tmp_path / 'no_run'}", out], "no audio files"),
      "no checkpoint": ([f"--workdir={tmp_path / 'no_run'}", f"--input={good}", out], "no checkpoint in"),
      "missing workdir": ([f"--workdir={tmp_path / 'nowhere'}", f"--input={good}", out], "does not exist"),
      "missing step": ([f"--workdir={workdir}", "--step=3", f"--input={good}", out], "no checkpoint of step 3"),
      "another shape": ([f"--checkpoint={other / 'checkpoints' / '0'}", f"--input={good}", out], "another shape"),
      "no discriminator": ([f"--workdir={workdir}", "--collab", f"--input={good}", out],
                           "has no discriminator (it was trained or exported without one); collaborative sampling "
                           "(--collab) needs one"),
      "both models": ([f"--workdir={workdir}", f"--checkpoint={workdir}", f"--input={good}", out], "exactly one"),
      "knob without collab": ([f"--workdir={workdir}", "--eta=0.3", f"--input={good}", out], "only apply with"),
      "zero stride": ([f"--workdir={workdir}", "--stride=0", f"--input={good}", out], "--stride must be a positive"),
      "stride over the window": ([f"--workdir={workdir}", "--stride=513", f"--input={good}", out],
                                 "stride (513) must not exceed the model's window (512 samples at 16000 Hz)"),
      "zero window": ([f"--workdir={workdir}", "--window=0", f"--input={good}", out], "--window must be a positive"),
      "odd window": ([f"--workdir={workdir}", "--window=1000", f"--input={good}", out],
                     "window 1000 does not fit a depth-3 network"),
      "unknown output rate": ([f"--workdir={workdir}", "--output_rate=native", f"--input={good}", out],
                              "--output_rate"),
      "input is output": ([f"--workdir={workdir}", f"--input={good}", f"--output={good}", "--overwrite"],
                          "is the input"),
      "one argument": ([f"--workdir={workdir}", good], "expected the input and the output (`sr-jax enhance IN OUT`), "
                       "got 1 argument"),
      "three arguments": ([good, good, str(tmp_path / "out" / "y.wav")], "got 3 arguments"),
      "arguments and flags": ([f"--input={good}", str(tmp_path / "out" / "y.wav")], "either in order or as --input"),
      "no output": ([f"--workdir={workdir}", f"--input={good}"], "--output is required (or `sr-jax enhance IN OUT`)"),
  })
  procs = {name: start(*args) for name, (args, _) in cases.items()}  # all at once: mostly start-up time
  for name, p in procs.items():
    _, err = p.communicate(timeout=300)
    words = cases[name][1]
    assert p.returncode == 2, (name, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, (name, err)
    assert err.startswith("error: ") and words in err, (name, err)
  assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []  # no output, not even a temp file


def test_folder_overwrite_short_and_silent_files(workdir, tmp_path):
  src, dst = tmp_path / "in", tmp_path / "out"
  src.mkdir()
  write(src / "a.wav", tone(1.0, 16000), 16000)
  write(src / "b.flac", tone(0.7, 8000, channels=2), 8000, subtype="PCM_24")
  write(src / "short.wav", tone(0.004, 48000), 48000)  # 192 frames: 64 at 16 kHz (an eighth of a window), 48 kHz out
  write(src / "silent.wav", np.zeros((8000, 1), np.float32), 16000)
  (src / "notes.txt").write_text("not audio")
  write(src / ".hidden.wav", tone(0.5, 16000), 16000)
  (src / "sub").mkdir()
  write(src / "sub" / "c.wav", tone(0.5, 16000), 16000)
  result = run(f"--workdir={workdir}", f"--input={src}", f"--output={dst}", "--batch_size=8")
  assert result.returncode == 0, result.stderr
  assert sorted(os.listdir(dst)) == ["a.wav", "b.flac", "short.wav", "silent.wav"]  # not recursive
  assert result.stdout.count("wrote ") == 4
  b = sf.info(str(dst / "b.flac"))
  assert (b.samplerate, b.channels, b.subtype, b.frames) == (16000, 2, "PCM_24", 11200)
  short, rate = sf.read(str(dst / "short.wav"))
  assert short.shape == (192,) and rate == 48000 and np.abs(short).max() > 0.05
  silent, _ = sf.read(str(dst / "silent.wav"))
  assert silent.shape == (8000,) and not silent.any()  # digital silence stays digital silence

  before = {n: os.stat(dst / n) for n in os.listdir(dst)}
  again = run(f"--workdir={workdir}", f"--input={src / 'a.wav'}", f"--output={dst}")  # a folder output: same name
  assert again.returncode == 2 and again.stderr.strip().splitlines() == [
      f"error: output {dst / 'a.wav'} already exists; pass --overwrite to replace it"]
  assert os.stat(dst / "a.wav") == before["a.wav"]
  replaced = run(f"--workdir={workdir}", f"--input={src / 'a.wav'}", f"--output={dst}", "--overwrite",
                 "--batch_size=8")
  assert replaced.returncode == 0, replaced.stderr
  after = os.stat(dst / "a.wav")
  assert after.st_ino != before["a.wav"].st_ino  # a new file renamed into place
  assert sorted(os.listdir(dst)) == ["a.wav", "b.flac", "short.wav", "silent.wav"]


def test_output_rate_and_bandwidth_warnings(workdir, tmp_path):
  """A 48 kHz file with content up to 24 kHz is written at 48 kHz, its band above the crossover kept (the energy
  above 8 kHz is the input's), or at 16 kHz with --output_rate=model. The tiny model extends a 2 kHz band: the
  48 kHz file and an 8 kHz recording each get one warning line (the latter naming piano_r2_16k), a 4 kHz one none."""
  src, dst = tmp_path / "in", tmp_path / "out"
  src.mkdir()
  rng = np.random.default_rng(0)
  t = np.arange(2 * 48000) / 48000
  wide = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 12000 * t) + 0.01 * rng.standard_normal(len(t))
  write(src / "wide.wav", wide, 48000, subtype="FLOAT")
  speech = tone(2.0, 16000)[:, 0] + 0.03 * rng.standard_normal(32000)  # broadband: the rate sets its band
  write(src / "at_8k.wav", soxr.resample(speech, 16000, 8000), 8000)
  write(src / "at_4k.wav", soxr.resample(speech, 16000, 4000), 4000)
  result = run(f"--workdir={workdir}", f"--input={src}", f"--output={dst}")
  assert result.returncode == 0, result.stderr
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 2 and all(line.startswith("warning: ") for line in lines), lines
  assert lines[0].startswith(f"warning: {src / 'at_8k.wav'} has content up to 3.") and lines[0].endswith(
      "wider than the 2 kHz band this model was trained to extend (chain 'sample 4000 16000'): enhancing may make "
      "it worse; the shipped model piano_r2_16k (trained on a 4 kHz band) fits it"), lines[0]
  assert lines[1].startswith(f"warning: {src / 'wide.wav'} has content up to 2") and lines[1].endswith(
      "no shipped model is trained on input that wide"), lines[1]
  out, rate = sf.read(str(dst / "wide.wav"))
  assert rate == 48000 and out.shape == wide.shape
  assert f"wrote {dst / 'wide.wav'}: 2.00 s, 1 ch, 48000 -> 48000 Hz (the model's output at 16000 Hz below 6.8 kHz, " \
         "the input above)" in result.stdout, result.stdout
  f = np.fft.rfftfreq(len(wide), 1 / 48000)
  above = f > 8000
  energy = [np.sum(np.abs(np.fft.rfft(np.hanning(len(a)) * a))[above] ** 2) for a in (out, wide)]
  np.testing.assert_allclose(energy[0], energy[1], rtol=1e-3)
  assert sf.info(str(dst / "at_8k.wav")).samplerate == sf.info(str(dst / "at_4k.wav")).samplerate == 16000

  model = run(f"--workdir={workdir}", f"--input={src / 'wide.wav'}", f"--output={tmp_path / 'model.wav'}",
              "--output_rate=model")
  assert model.returncode == 0, model.stderr
  info = sf.info(str(tmp_path / "model.wav"))
  assert (info.samplerate, info.frames) == (16000, 32000)
  assert "48000 -> 16000 Hz, FLOAT" in model.stdout, model.stdout


def test_fill_gain_db_in_enhance_and_evaluate(workdir, tmp_path):
  """--fill_gain_db: enhance names the level in its first line and writes the fill at that level (the -6 dB output
  between the 0 dB one and the U-Net's alone); evaluate records it in metrics.json; for a model without a fill, or
  not a finite number, one error line and nothing written."""
  step_dir = init_checkpoint(str(tmp_path / "run"), **{"model.fill_channels": 4, "model.mask_fft": 64,
                                                       "model.mask_hop": 16})
  src = tmp_path / "in.wav"
  write(src, tone(1.0, 4000)[:, 0], 4000, subtype="FLOAT")
  outs = {}
  for gain in ("0", "-6", "-120"):
    outs[gain] = tmp_path / f"out{gain}.wav"
    done = run(f"--checkpoint={step_dir}", str(src), str(outs[gain]), f"--fill_gain_db={gain}")
    assert done.returncode == 0, done.stderr
    assert f"stride 256, spectral fill at {float(gain):+g} dB" in done.stdout, done.stdout
  y = {g: sf.read(str(path))[0] for g, path in outs.items()}  # 16-bit PCM: steps of 3e-5
  fill = y["0"] - y["-120"]
  assert np.sqrt(np.mean(fill ** 2)) > 1e-3
  np.testing.assert_allclose(y["-6"] - y["-120"], 10 ** (-6 / 20) * fill, atol=1e-4)
  evaluate = [sys.executable, os.path.join(ROOT, "launch", "evaluate.py"), f"--checkpoint={step_dir}",
              f"--data={tmp_path}", "--max_files=1", "--max_seconds=0.5", "--max_assets=0"]
  done = subprocess.run(evaluate + [f"--report={tmp_path / 'report'}", "--fill_gain_db=-6"], cwd=ROOT,
                        capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr
  assert json.loads((tmp_path / "report" / "metrics.json").read_text())["fill_gain_db"] == -6.0
  for args, words in (([f"--checkpoint={step_dir}", "--fill_gain_db=nan"], "--fill_gain_db must be a finite number"),
                      ([f"--workdir={workdir}", "--fill_gain_db=-6"], "has no fill (model.fill_channels 0)")):
    done = run(*args, str(src), str(tmp_path / "never.wav"))
    assert done.returncode != 0 and done.stderr.startswith("error: ") and words in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "never.wav").exists()


def _write_long(path, minutes: float, rate: int = 16000):
  """A mono 16-bit WAV of `minutes`, written one second at a time (never the whole signal in memory)."""
  with sf.SoundFile(str(path), "w", rate, 1, "PCM_16") as f:
    second = tone(1.0, rate)
    for _ in range(int(minutes * 60)):
      f.write(second)


def test_memory_is_flat_in_file_length(tmp_path):
  """Peak RSS enhancing 10 minutes is within 60 MB of 1 minute's; a whole-file pipeline would add > 100 MB (10
  minutes at 16 kHz are 38 MB of float32, held as input, windows and output). The allowance covers the allocator's
  arenas, which grow by 15-45 MB over a longer run on a busy machine without holding any more audio."""
  step_dir = init_checkpoint(str(tmp_path / "fast"), **{  # a cheap model: memory is the pipeline's business
      "model.depth": 1, "model.width": 1 / 64, "data.window": 4096, "data.eval_stride": 4096})
  usage = {}
  procs = {}
  for minutes in (1, 10):
    _write_long(tmp_path / f"{minutes}.wav", minutes)
    procs[minutes] = start(f"--checkpoint={step_dir}", f"--input={tmp_path / f'{minutes}.wav'}",
                           f"--output={tmp_path / f'{minutes}_out.wav'}", "--batch_size=32")
  for minutes, p in procs.items():
    _, status, rusage = os.wait4(p.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, p.stderr.read()
    usage[minutes] = rusage.ru_maxrss / 1024  # MB (Linux reports kB)
    assert sf.info(str(tmp_path / f"{minutes}_out.wav")).frames == minutes * 60 * 16000
  assert usage[10] - usage[1] < 60, usage
