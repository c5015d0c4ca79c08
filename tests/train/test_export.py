"""sr_jax.train.checkpoint.export_for_inference and launch/export.py: a slim folder that enhance/evaluate load."""

import os
import subprocess
import sys

import jax
import ml_dtypes
import numpy as np
import pytest

from sr_jax import enhance
from sr_jax.errors import UserError
from sr_jax.train import checkpoint
from tests.test_enhance import init_checkpoint, tone

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMALL = {"model.depth": 2, "data.window": 256, "data.eval_stride": 128}


def _size(folder: str) -> int:
  return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(folder) for f in fs)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("export") / "gan")
  init_checkpoint(workdir, gan=True, **SMALL)
  return workdir


def test_float32_export_is_the_run_without_optimizer_states(run, tmp_path):
  out = str(tmp_path / "model")
  info = checkpoint.export_for_inference(run, out, parts=("gen", "disc"))
  assert sorted(os.listdir(out)) == ["config", "state"] and info["step"] == 0
  config, nets = checkpoint.restore_for_inference(out, parts=("gen", "disc"))
  ref_config, ref = checkpoint.restore_for_inference(run, parts=("gen", "disc"))
  assert config.to_dict() == ref_config.to_dict()
  jax.tree.map(np.testing.assert_array_equal, nets, ref)
  assert info["params"] == sum(a.size for a in jax.tree.leaves(ref))
  assert info["bytes"] == _size(out) < _size(os.path.join(run, "checkpoints", "0"))
  import orbax.checkpoint as ocp

  with ocp.PyTreeCheckpointer() as ckptr:  # the run also saved the optimizer states and the step: not exported
    saved = ckptr.metadata(os.path.join(run, "checkpoints", "0", "state")).item_metadata.tree
    exported = ckptr.metadata(os.path.join(out, "state")).item_metadata.tree
  assert set(exported) == {"gen", "disc"} < set(saved)
  assert "params" in exported["gen"] and set(exported["disc"]) == {"params", "batch_stats"}
  x = tone(0.1, 16000)[:, 0]
  np.testing.assert_array_equal(enhance.Enhancer(out).enhance_array(x, 16000)[0],
                                enhance.Enhancer(run).enhance_array(x, 16000)[0])


def test_bfloat16_export_halves_the_weights_and_loads_as_float32(run, tmp_path):
  f32, bf16 = str(tmp_path / "f32"), str(tmp_path / "bf16")
  checkpoint.export_for_inference(run, f32)
  checkpoint.export_for_inference(run, bf16, dtype="bfloat16")
  _, nets = checkpoint.restore_for_inference(bf16)
  _, ref = checkpoint.restore_for_inference(run)
  for a, r in zip(jax.tree.leaves(nets), jax.tree.leaves(ref)):
    assert a.dtype == np.float32  # computed in float32 again
    np.testing.assert_array_equal(a, r.astype(ml_dtypes.bfloat16).astype(np.float32))  # rounded once
  weights = sum(a.size for a in jax.tree.leaves(ref))
  assert _size(f32) - _size(bf16) > 0.8 * 2 * weights  # about 2 bytes saved per weight (metadata aside)
  x = tone(0.1, 16000)[:, 0]
  y32, y16 = (enhance.Enhancer(p).enhance_array(x, 16000)[0] for p in (f32, bf16))
  assert 0 < np.abs(y16 - y32).max() < 0.05 * np.abs(y32).max()


def test_collab_loads_the_exported_discriminator_and_the_shaped_one(run, tmp_path):
  out = str(tmp_path / "model")
  checkpoint.export_for_inference(run, out, parts=("gen", "disc"))
  collab = enhance.Enhancer(out, collab=True)
  assert collab.collab and not collab.shaped
  checkpoint.export_for_inference(run, str(tmp_path / "g"), parts=("gen",))
  with pytest.raises(UserError, match=r"has no discriminator \(it was trained or exported without one\); "
                     r"collaborative sampling \(--collab\) needs one"):  # exported without it
    enhance.Enhancer(str(tmp_path / "g"), collab=True)


def test_errors_and_nothing_overwritten(run, tmp_path):
  out = tmp_path / "model"
  out.mkdir()
  (out / "mine.txt").write_text("keep me")
  with pytest.raises(UserError, match="exists: pass overwrite"):
    checkpoint.export_for_inference(run, str(out))
  assert (out / "mine.txt").read_text() == "keep me"
  info = checkpoint.export_for_inference(run, str(out), overwrite=True)  # replaces the model, keeps the user's files
  assert info["bytes"] == _size(str(out)) - len("keep me")  # the model's size, not the user's file
  assert sorted(os.listdir(out)) == ["config", "mine.txt", "state"] and (out / "mine.txt").read_text() == "keep me"
  with pytest.raises(UserError, match="no best checkpoint"):
    checkpoint.export_for_inference(run, str(tmp_path / "b"), best=True)
  with pytest.raises(UserError, match="dtype must be one of"):
    checkpoint.export_for_inference(run, str(tmp_path / "c"), dtype="float16")
  with pytest.raises(UserError, match="no checkpoint of step 7"):
    checkpoint.export_for_inference(run, str(tmp_path / "d"), step=7)
  assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists() and not (tmp_path / "d").exists()
  assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []  # no temporary folder left behind


def test_launch_export(run, tmp_path):
  out = str(tmp_path / "cli")
  cmd = [sys.executable, os.path.join(ROOT, "launch", "export.py"), f"--workdir={run}", f"--out={out}",
         "--dtype=bfloat16"]
  done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
  assert done.returncode == 0, done.stderr
  assert "in bfloat16" in done.stdout and os.path.isdir(os.path.join(out, "state"))
  again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
  assert again.returncode != 0 and "exists: pass overwrite" in again.stderr
  assert "Traceback" not in again.stderr
  bad = subprocess.run(cmd[:2] + [f"--workdir={run}", f"--out={out}2", "--parts=disc"], capture_output=True,
                       text=True, cwd=ROOT)
  assert bad.returncode != 0 and "--parts takes gen" in bad.stderr and "Traceback" not in bad.stderr


def test_reading_a_training_step_logs_no_missing_metadata_warning(run, caplog):
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel

  state = os.path.join(checkpoint.find_step_dir(run, None), "state")
  words = "Metadata file does not exist"
  with caplog.at_level("WARNING"):
    with ocp.PyTreeCheckpointer() as ckptr:  # orbax itself warns: the step folder holds that file, not state/
      ckptr.metadata(state)
  assert any(words in r.getMessage() for r in caplog.records)
  caplog.clear()
  with caplog.at_level("WARNING"):
    _, nets = checkpoint.restore_for_inference(run)
  assert "gen" in nets and not any(words in r.getMessage() for r in caplog.records)
  with caplog.at_level("WARNING"):  # the filter is gone again afterwards
    with ocp.PyTreeCheckpointer() as ckptr:
      ckptr.metadata(state)
  assert any(words in r.getMessage() for r in caplog.records)
