"""Every command in README.md's ```bash blocks runs as written, and the model cards stay short.

The README's commands run from the repository root of a fresh checkout; here each runs in a temporary folder holding a
copy of `pretrained/` and the placeholders' data (`my_piano.wav`, `my_recordings/`: small generated audio), with HOME
pointing at a temporary folder (so `~/.cache/sr_jax/corpora` is built afresh). Long runs get extra flags appended that
shorten them (fewer steps, a smaller corpus, seconds of audio, `--dry_run` for a whole recipe); nothing else changes.
Set-up commands run the part after `&&` (pip is not run), and the test-suite command is not run (it runs this file):
it must be what .ci/run runs. A command added to the README that this file does not know fails
`test_every_readme_command_is_run` until a test runs it.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shlex
import shutil
import site
import subprocess
import sys
from typing import NamedTuple

import numpy as np
import pytest
import soundfile as sf

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CARD_LIMIT = 12288  # bytes: a model card is a page, not a log

# The README's commands, exactly as it shows them.
SETUP_EXAMPLE = ("python3 -m pip install -e . && sr-jax evaluate --model=piano_r4_16k "
                 "--data=pretrained/piano_r4_16k/example --report=reports/example --overwrite")
SETUP_TESTS = 'python3 -m pip install -e ".[test]" && python3 -m pytest -q tests'
ENHANCE = "sr-jax enhance --model=piano_r4_16k --input=my_piano.wav --output=my_piano_restored.wav"
ENHANCE_DEFAULT = "sr-jax enhance my_recording.wav my_recording_restored.wav"
EVALUATE_MINE = "sr-jax evaluate --model=piano_r4_16k --data=my_recordings/test --report=reports/mine"
TRAIN_QUICKSTART = "sr-jax train --config=quickstart --workdir=runs/quickstart"
EVALUATE_QUICKSTART = ("sr-jax evaluate --workdir=runs/quickstart "
                       "--data=~/.cache/sr_jax/corpora/piano-synth-16000/test --report=reports/quickstart")
FINE_TUNE = ("sr-jax train --config=piano_r4_16k --workdir=runs/my_piano "
             "--config.train.init_from=pretrained/piano_r4_16k "
             "--config.data.source=folder --config.data.dir=my_recordings")
RECIPE = "sr-jax recipe --config=piano_r4_16k --workdir=runs/piano_r4_16k"
DESCRIBE_SHORT = "sr-jax describe --config=default:depth=4,window=1024"
DESCRIBE_DOTTED = "sr-jax describe --config=quickstart --config.disc.kind=patch --config.disc.conditional=True"
DEGRADE = ('sr-jax degrade --input=pretrained/piano_r4_16k/example/haydn_opus1no1_excerpt.flac --output=degraded.wav '
           '--chain="sample 4000 16000,whitenoise 0 0.002"')
MAKE_CORPUS = "sr-jax make-corpus --minutes=60"

# command -> the test that runs it
RUN_BY = {
    SETUP_EXAMPLE: "test_setup_runs_the_shipped_model_on_its_example",
    SETUP_TESTS: "test_setup_test_command_is_what_ci_runs",
    ENHANCE: "test_enhance_a_recording",
    ENHANCE_DEFAULT: "test_enhance_with_the_default_model",
    EVALUATE_MINE: "test_evaluate_own_recordings",
    TRAIN_QUICKSTART: "quickstart (fixture), test_quickstart_trains_and_resumes",
    EVALUATE_QUICKSTART: "test_evaluate_the_quickstart",
    FINE_TUNE: "test_fine_tune_on_own_folder",
    RECIPE: "test_recipe_plan",
    DESCRIBE_SHORT: "test_describe",
    DESCRIBE_DOTTED: "test_describe",
    DEGRADE: "test_degrade",
    MAKE_CORPUS: "test_make_corpus",
}


def readme_commands(text: str) -> list[str]:
  """The commands of every ```bash block: one per line (a trailing backslash continues it), comments and blank
  lines left out."""
  commands = []
  for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL):
    pending = ""
    for line in block.splitlines():
      if line.rstrip().endswith("\\"):
        pending += line.rstrip()[:-1].strip() + " "
        continue
      line, pending = (pending + line).strip(), ""
      if line and not line.startswith("#"):
        commands.append(line)
  return commands


COMMANDS = readme_commands(README.read_text(encoding="utf-8"))


def readme(command: str) -> str:
  assert command in COMMANDS, f"the README no longer shows {command!r}: update tests/test_readme.py"
  return command


def sr_jax_argv() -> list[str]:
  """How to run `sr-jax` for this interpreter: its console script when pip installed one beside it, else the same
  entry point through `python -m sr_jax` (the checkout is first on PYTHONPATH either way)."""
  script = pathlib.Path(sys.executable).parent / "sr-jax"
  return [str(script)] if script.exists() else [sys.executable, "-m", "sr_jax"]


class Workspace(NamedTuple):
  cwd: pathlib.Path  # stands for the repository root the README's commands run from
  env: dict


def _tone(seconds: float, rate: int, top_hz: float, seed: int) -> np.ndarray:
  """A decaying piano-like note with harmonics below `top_hz`."""
  rng = np.random.default_rng(seed)
  t = np.arange(int(seconds * rate)) / rate
  f0 = 110.0 * 2 ** (rng.integers(0, 24) / 12)
  ks = [k for k in range(1, 40) if k * f0 < top_hz]
  x = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) / k for k in ks) * np.exp(-1.5 * t)
  return (0.3 * x / np.max(np.abs(x))).astype(np.float32)


def _env(home: pathlib.Path) -> dict:
  env = {k: v for k, v in os.environ.items() if k != "SR_JAX_DATA"}
  env["HOME"] = str(home)
  env["PYTHONUSERBASE"] = site.getuserbase()  # packages installed with --user stay importable under the new HOME
  # one CPU device, as a user's machine has (conftest gives this process 8 fake ones)
  env["XLA_FLAGS"] = " ".join(f for f in env.get("XLA_FLAGS", "").split()
                              if not f.startswith("--xla_force_host_platform_device_count"))
  env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
  return env


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
  base = tmp_path_factory.mktemp("readme")
  home, cwd = base / "home", base / "checkout"
  home.mkdir()
  cwd.mkdir()
  shutil.copytree(ROOT / "pretrained", cwd / "pretrained")
  sf.write(cwd / "my_piano.wav", _tone(2.0, 4000, 1900.0, seed=0), 4000)  # a 4 kHz-rate recording
  noisy = _tone(1.5, 22050, 6000.0, seed=1) + np.random.default_rng(1).normal(0, 0.01, 33075).astype(np.float32)
  sf.write(cwd / "my_recording.wav", noisy, 22050)  # a noisy recording at another rate
  for s, (split, count) in enumerate((("train", 4), ("valid", 1), ("test", 2))):
    (cwd / "my_recordings" / split).mkdir(parents=True)
    for i in range(count):
      sf.write(cwd / "my_recordings" / split / f"take{i}.wav", _tone(3.0, 16000, 7500.0, seed=10 * s + i), 16000)
  return Workspace(cwd, _env(home))


def run(command: str, ws: Workspace, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
  """Runs the README's `sr-jax ...` command in the workspace with `extra` flags appended; it must succeed."""
  words = shlex.split(command)
  assert words[0] == "sr-jax", command
  done = subprocess.run(sr_jax_argv() + words[1:] + list(extra), cwd=ws.cwd, env=env or ws.env, capture_output=True,
                        text=True, timeout=600, check=False)
  assert done.returncode == 0, f"{command} {' '.join(extra)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
  return done


def _metrics(report: pathlib.Path) -> dict:
  assert (report / "index.html").is_file()
  return json.loads((report / "metrics.json").read_text())


def test_every_readme_command_is_run():
  unknown = [c for c in COMMANDS if c not in RUN_BY]
  gone = [c for c in RUN_BY if c not in COMMANDS]
  assert not unknown, f"README commands no test here runs (add one to tests/test_readme.py): {unknown}"
  assert not gone, f"commands tests/test_readme.py runs that the README no longer shows: {gone}"
  assert len(COMMANDS) == len(set(COMMANDS)), "a README command is shown twice"
  assert COMMANDS[:2] == [SETUP_EXAMPLE, SETUP_TESTS]  # the set-up commands come first


def test_model_cards_fit():
  cards = sorted((ROOT / "pretrained").glob("*/README.md"))
  assert cards
  for card in cards:
    assert card.stat().st_size <= CARD_LIMIT, f"{card.relative_to(ROOT)}: {card.stat().st_size} > {CARD_LIMIT} bytes"


def test_setup_test_command_is_what_ci_runs():
  lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
  commands = [ln for ln in lines if ln and not ln.startswith("#") and not ln.startswith(("set ", "cd "))]
  assert commands == [readme(SETUP_TESTS)]


def _after_install(command: str) -> str:
  install, sep, rest = command.partition(" && ")
  assert sep and install == "python3 -m pip install -e .", command
  return rest


def test_setup_runs_the_shipped_model_on_its_example(workspace):
  done = run(_after_install(readme(SETUP_EXAMPLE)), workspace)
  report = workspace.cwd / "reports" / "example"
  metrics = _metrics(report)
  assert metrics["chain"] == "sample 4000 16000" and len(metrics["files"]) == 1
  model, spline = metrics["summary"]["model"], metrics["summary"]["spline"]
  assert model["lsd"] < spline["lsd"] and model["snr"] > spline["snr"]
  assert "wrote reports/example/index.html" in done.stdout
  assert any(p.suffix == ".wav" for p in report.rglob("*"))


def test_enhance_a_recording(workspace):
  done = run(readme(ENHANCE), workspace)
  info = sf.info(workspace.cwd / "my_piano_restored.wav")
  assert info.samplerate == 16000 and info.duration == pytest.approx(2.0, abs=1e-3)
  assert "wrote my_piano_restored.wav" in done.stdout
  assert "warning" not in done.stderr  # a 4 kHz recording fits the model's band


def test_enhance_with_the_default_model(workspace):
  done = run(readme(ENHANCE_DEFAULT), workspace)
  assert "music_16k (the default;" in done.stdout and "wrote my_recording_restored.wav" in done.stdout
  explicit = run("sr-jax enhance --model=music_16k --input=my_recording.wav --output=explicit.wav", workspace)
  assert "(the default" not in explicit.stdout
  default, rate = sf.read(workspace.cwd / "my_recording_restored.wav")
  named, _ = sf.read(workspace.cwd / "explicit.wav")
  # written at the input's 22.05 kHz: the model's 16 kHz output below the crossover, the input's own band above
  assert rate == 22050 and default.shape == (33075,) and np.array_equal(default, named)
  assert np.max(np.abs(default)) > 0.1  # audio, not silence


def test_evaluate_own_recordings(workspace):
  done = run(readme(EVALUATE_MINE), workspace)
  metrics = _metrics(workspace.cwd / "reports" / "mine")
  assert len(metrics["files"]) == 2 and {"model", "spline", "linear", "input"} <= set(metrics["summary"])
  assert "wrote reports/mine/index.html" in done.stdout


# The quickstart, shortened: 4 steps on a 3-minute corpus.
QUICKSTART_SHORT = ("--config.train.num_steps=4", "--config.data.corpus_minutes=3")


@pytest.fixture(scope="module")
def quickstart(workspace) -> subprocess.CompletedProcess:
  return run(readme(TRAIN_QUICKSTART), workspace, *QUICKSTART_SHORT)


def test_quickstart_trains_and_resumes(quickstart, workspace):
  run_dir = workspace.cwd / "runs" / "quickstart"
  assert "finished at step 4" in quickstart.stdout + quickstart.stderr
  assert (run_dir / "checkpoints" / "4").is_dir() and (run_dir / "loss_curves.png").is_file()
  corpus = pathlib.Path(workspace.env["HOME"]) / ".cache" / "sr_jax" / "corpora" / "piano-synth-16000"
  assert list((corpus / "test").glob("*.wav"))  # built on first use, where the README's evaluate command reads it
  again = run(readme(TRAIN_QUICKSTART), workspace, *QUICKSTART_SHORT)
  assert f"resumed from step 4 in {run_dir}" in again.stdout and not (run_dir / "checkpoints" / "8").exists()


def test_evaluate_the_quickstart(quickstart, workspace):
  done = run(readme(EVALUATE_QUICKSTART), workspace, "--max_seconds=2")
  metrics = _metrics(workspace.cwd / "reports" / "quickstart")
  assert metrics["files"] and "wrote reports/quickstart/index.html" in done.stdout


def test_fine_tune_on_own_folder(workspace):
  done = run(readme(FINE_TUNE), workspace, "--config.train.num_steps=4")
  out = done.stdout + done.stderr
  assert "initialised from pretrained/piano_r4_16k" in out and "finished at step 4" in out
  assert (workspace.cwd / "runs" / "my_piano" / "checkpoints" / "4").is_dir()


def test_recipe_plan(workspace):
  done = run(readme(RECIPE), workspace, "--dry_run")
  lines = done.stdout.splitlines()
  for stage in ("1", "1b", "1c", "1d", "1e", "2"):
    assert any(re.match(rf"stage {stage}\s", ln) for ln in lines), (stage, done.stdout)
  assert "export" in done.stdout
  assert not (workspace.cwd / "runs" / "piano_r4_16k" / "1").exists()  # a plan trains nothing


def test_describe(workspace):
  short = run(readme(DESCRIBE_SHORT), workspace)
  assert "generator params:" in short.stdout
  dotted = run(readme(DESCRIBE_DOTTED), workspace)
  assert "generator params:" in dotted.stdout and "discriminator params:" in dotted.stdout


def test_degrade(workspace):
  done = run(readme(DEGRADE), workspace)
  info = sf.info(workspace.cwd / "degraded.wav")
  assert info.samplerate == 16000 and info.duration == pytest.approx(12.0, abs=1e-3)
  assert "wrote degraded.wav" in done.stdout


def test_make_corpus(workspace, tmp_path):
  home = tmp_path / "home"
  home.mkdir()
  done = run(readme(MAKE_CORPUS), workspace, "--minutes=2", env=_env(home))
  corpus = home / ".cache" / "sr_jax" / "corpora" / "piano-synth-16000"
  for split in ("train", "valid", "test"):
    assert list((corpus / split).glob("*.wav")), split
  assert "done in" in done.stdout
