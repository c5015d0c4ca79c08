"""A plain (not editable) install carries the configs, the shipped models and the `sr-jax` command."""

import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import soundfile as sf

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> pathlib.Path:
  out = tmp_path_factory.mktemp("wheel")
  subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)], check=True,
                 timeout=600, capture_output=True)
  (path,) = out.glob("sr_jax-*.whl")
  return path


def test_wheel_holds_configs_models_and_the_command(wheel):
  with zipfile.ZipFile(wheel) as z:
    names = set(z.namelist())
    entry_points = next(z.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
  configs = {p.name for p in (ROOT / "configs").glob("*.py")}
  assert {f"sr_jax/configs/{n}" for n in configs} <= names
  for model in sorted(p.name for p in (ROOT / "pretrained").iterdir() if p.is_dir()):
    shipped = {str(p.relative_to(ROOT)) for p in (ROOT / "pretrained" / model).rglob("*") if p.is_file()}
    assert {f"sr_jax/{p}" for p in shipped} <= names, model
  assert "sr-jax = sr_jax.cli:main" in entry_points


def test_installed_package_runs_from_another_folder(wheel, tmp_path):
  """The wheel unpacked alone (no checkout on the path) enhances with --model=NAME from an unrelated folder."""
  site = tmp_path / "site"
  with zipfile.ZipFile(wheel) as z:
    z.extractall(site)
  work = tmp_path / "elsewhere"
  work.mkdir()
  rate = 16000
  t = np.arange(rate // 2) / rate
  sf.write(work / "in.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)
  env = {**os.environ, "PYTHONPATH": str(site)}
  code = "import sys; from sr_jax.cli import main; sys.argv[0] = 'sr-jax'; main()"
  listing = subprocess.run([sys.executable, "-c", code, "--help"], cwd=work, env=env, capture_output=True,
                           text=True, timeout=120)
  assert listing.returncode == 0 and "enhance" in listing.stdout and "make-corpus" in listing.stdout
  r = subprocess.run([sys.executable, "-c", code, "enhance", "--model=piano_r4_16k", "--input=in.wav",
                      "--output=out.wav"], cwd=work, env=env, capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr
  assert str(site / "sr_jax" / "pretrained" / "piano_r4_16k") in r.stdout  # the installed copy, not the checkout
  out, out_rate = sf.read(work / "out.wav")
  assert out_rate == rate and len(out) == rate // 2


@pytest.mark.skipif(shutil.which("sr-jax") is None, reason="the console script is installed by pip install")
def test_console_script_lists_subcommands():
  r = subprocess.run(["sr-jax", "--help"], capture_output=True, text=True, timeout=120)
  assert r.returncode == 0
  for sub in ("enhance", "evaluate", "train", "describe", "degrade", "make-corpus", "shape", "export", "recipe"):
    assert f"  {sub} " in r.stdout, sub
  bad = subprocess.run(["sr-jax", "nosuch"], capture_output=True, text=True, timeout=120)
  assert bad.returncode == 2 and bad.stderr.startswith("error: unknown subcommand 'nosuch'")
