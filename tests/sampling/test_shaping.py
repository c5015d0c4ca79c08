"""Discriminator shaping: the update itself, the shaped D saved beside the generator and restored bit-exactly,
continue / restart, runs without a discriminator, and launch/shape.py end to end on a tiny trained GAN run."""

import hashlib
import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import optax
import pytest

from sr_jax.errors import UserError
from sr_jax.sampling import make_collaborative_sampler, shaping
from sr_jax.train.checkpoint import restore_for_inference
from sr_jax.train.state import NetState
from tests.sampling.test_collaborative import nets

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The tiny config, smaller still (depth 2, 64-sample windows), with a discriminator trained from step 0.
TRAIN_FLAGS = ["--config.train.num_steps=4", "--config.checkpoint.every=4", "--config.checkpoint.keep_best=False",
               "--config.train.eval_every=100", "--config.log.audio_every=1000", "--config.log.tensorboard=False",
               "--config.log.progress=False", "--config.mesh.data=1", "--config.model.depth=2",
               "--config.data.window=64", "--config.data.stride=32", "--config.data.eval_stride=32",
               "--config.disc.patch_depth=2", "--config.collab.layer=1", "--config.optim.lr_d=0.001",
               "--config.loss.lambda_adv=0.01", "--config.loss.adv_start_step=0"]


def run(*args):
  return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300, cwd=ROOT, check=False)


def tree_equal(a, b) -> bool:
  return jax.tree.structure(a) == jax.tree.structure(b) and all(
      np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def folder_digest(folder) -> str:
  h = hashlib.sha256()
  for root, _, files in sorted(os.walk(folder)):
    for f in sorted(files):
      h.update(os.path.relpath(os.path.join(root, f), folder).encode())
      with open(os.path.join(root, f), "rb") as fh:
        h.update(fh.read())
  return h.hexdigest()


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
  from sr_jax.data import corpus

  data = str(tmp_path_factory.mktemp("corpus"))
  corpus.build_tiny_corpus(data)
  workdir = str(tmp_path_factory.mktemp("gan") / "run")
  result = run(os.path.join(ROOT, "launch", "train.py"), f"--config={os.path.join(ROOT, 'configs', 'tiny.py')}",
               f"--workdir={workdir}", f"--config.data.dir={data}", *TRAIN_FLAGS)
  assert result.returncode == 0, result.stderr[-3000:]
  return workdir


@pytest.fixture(scope="module")
def shaped_run(trained_run, tmp_path_factory):
  """A copy of the trained run, shaped for 3 steps in this process."""
  workdir = str(tmp_path_factory.mktemp("shaped") / "run")
  shutil.copytree(trained_run, workdir)
  digest = folder_digest(os.path.join(workdir, "checkpoints"))
  lines = []
  result = shaping.shape_discriminator(workdir, 3, max_steps=2, eta=0.9, log=lines.append)
  return workdir, result, lines, digest


def test_shaping_changes_the_discriminator_and_saves_it_beside_the_generator(trained_run, shaped_run, caplog):
  workdir, result, lines, digest = shaped_run
  _, trained = restore_for_inference(trained_run, parts=("gen", "disc"))
  assert result.folder == os.path.join(workdir, "shaped_disc") and (result.start, result.steps) == (0, 3)
  assert os.listdir(result.folder) == ["3"]
  params_changed = [not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(result.disc["params"]),
                                                               jax.tree.leaves(trained["disc"]["params"]))]
  assert all(params_changed)  # Adam moves every parameter
  assert not tree_equal(result.disc["batch_stats"], trained["disc"]["batch_stats"])  # train-mode BatchNorm
  # restored bit-exactly, from the workdir, its checkpoints/ folder, a step folder or the shaped_disc folder
  for path in (workdir, os.path.join(workdir, "checkpoints"), os.path.join(workdir, "checkpoints", "4"),
               result.folder):
    assert tree_equal(shaping.load_shaped_disc(path), result.disc), path
  with caplog.at_level("WARNING"):
    _, info = shaping.load_shaped_disc(workdir, with_info=True)
  # the disc/ item has no metadata file of its own (the step folder holds it): orbax's warning of that is not shown
  assert not any("Metadata file does not exist" in r.getMessage() for r in caplog.records)
  assert {k: info[k] for k in ("eta", "max_steps", "layer", "steps", "gen_step")} == \
      {"eta": 0.9, "max_steps": 2, "layer": 1, "steps": 3, "gen_step": 4}
  assert info["before"] == result.before and info["after"] == result.after
  # the generator's checkpoints were only read
  assert folder_digest(os.path.join(workdir, "checkpoints")) == digest
  assert any(line.startswith("D loss before: ") for line in lines)
  assert any(line.startswith("D loss after: ") for line in lines)


def test_rerun_continues_and_restart_starts_from_the_trained_discriminator(trained_run, shaped_run, tmp_path):
  workdir = str(tmp_path / "run")
  shutil.copytree(shaped_run[0], workdir)
  shaped = shaped_run[1].disc
  again = shaping.shape_discriminator(workdir, 0, log=lambda _: None)  # 0 more steps: continue, save nothing
  assert (again.start, again.steps) == (3, 3) and tree_equal(again.disc, shaped)
  assert os.listdir(again.folder) == ["3"]
  fresh = shaping.shape_discriminator(workdir, 0, restart=True, eta=0.0, log=lambda _: None)
  assert (fresh.start, fresh.steps) == (0, 0) and os.listdir(fresh.folder) == ["0"]
  # eta = 0: the collaborative samples are G(x) exactly, so both evaluations agree
  assert fresh.before["collab_steps"] == 0 and fresh.before["d_fake"] == fresh.before["d_fake_plain"]
  assert fresh.before["d_loss"] == pytest.approx(fresh.before["d_loss_plain"], rel=1e-6)
  _, trained = restore_for_inference(trained_run, parts=("disc",))
  assert tree_equal(shaping.load_shaped_disc(workdir), trained["disc"])


def test_launch_shape_end_to_end_continues_a_shaped_run(shaped_run, tmp_path):
  workdir = str(tmp_path / "run")
  shutil.copytree(shaped_run[0], workdir)
  result = run(os.path.join(ROOT, "launch", "shape.py"), f"--workdir={workdir}", "--steps=2", "--max_steps=3",
               "--step_size=0.5", "--eta=0.8")
  assert result.returncode == 0, result.stderr[-3000:]
  out = result.stdout
  assert "for 2 steps from step 3: eta=0.8 max_steps=3 layer=1 step_size=0.5" in out
  before = float(out.split("D loss before ")[1].split()[0])
  after = float(out.split("-> after ")[1].split()[0])
  assert np.isfinite(before) and np.isfinite(after)
  assert f"saved shaping step 5 in {os.path.join(workdir, 'shaped_disc')}" in out
  disc, info = shaping.load_shaped_disc(workdir, with_info=True)
  assert info["steps"] == 5 and info["step_size"] == 0.5 and info["after"]["d_loss"] == pytest.approx(after, abs=1e-4)
  assert not tree_equal(disc, shaped_run[1].disc)


def test_a_run_without_discriminator_is_one_user_error(trained_run, tmp_path):
  workdir = str(tmp_path / "plain")
  shutil.copytree(os.path.join(trained_run, "checkpoints"), os.path.join(workdir, "checkpoints"))
  meta = os.path.join(workdir, "checkpoints", "4", "config", "metadata")
  with open(meta, encoding="utf-8") as f:
    config = json.load(f)
  config["loss"]["lambda_adv"] = 0.0
  with open(meta, "w", encoding="utf-8") as f:
    json.dump(config, f)
  with pytest.raises(UserError, match=r"has no discriminator to shape .*lambda_adv=0\.0.*lambda_adv > 0"):
    shaping.shape_discriminator(workdir, 1)
  result = run(os.path.join(ROOT, "launch", "shape.py"), f"--workdir={workdir}")
  assert result.returncode == 2
  expected = (f"error: the run in {workdir} has no discriminator to shape (it was trained with loss.lambda_adv=0.0): "
              "train with --config.loss.lambda_adv > 0 first")
  assert result.stderr.strip().splitlines() == [expected]
  assert shaping.load_shaped_disc(workdir) is None
  assert not os.path.exists(os.path.join(workdir, "shaped_disc"))


def test_shaping_steps_lower_the_discriminator_loss_on_a_batch():
  """The jitted step alone: repeated on one batch, real = target, fake = collaborative samples, the D loss falls and
  G stays frozen."""
  gen, disc, gen_params, disc_vars, x = nets("global")
  y = x + 0.2 * np.sin(np.arange(x.shape[1]) / 3.0)[None, :, None]  # "targets" unlike G's outputs
  sampler = make_collaborative_sampler(gen, disc, eta=0.9, max_steps=2, layer=1, step_size=0.5)
  tx = optax.adam(1e-3)
  state = NetState(disc_vars["params"], disc_vars["batch_stats"], tx.init(disc_vars["params"]))
  step = jax.jit(shaping.make_shaping_step(sampler, tx))
  gen_before = jax.tree.map(np.array, gen_params)
  batch = {"input": x, "target": y.astype(np.float32)}
  losses = []
  for i in range(12):
    state, m = step(gen_params, state, batch, jax.random.key(i), *sampler.knobs())
    losses.append(float(m["d_loss"]))
  assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.05, losses
  assert tree_equal(jax.tree.map(np.array, gen_params), gen_before)
