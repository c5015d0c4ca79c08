"""The recipe runner (sr_jax.recipes, `sr-jax recipe`) on a two-stage recipe of the tiny config: stages in order, each
from the previous stage's final weights, a partial stage resumed, finished stages skipped, then the export; and the
plan (--dry_run) of the shipped recipes, trained nothing."""

import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from sr_jax import recipes
from sr_jax.errors import UserError
from sr_jax.train.checkpoint import restore_config, restore_for_inference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A recipe of the tiny config: stage 1 trains, stage 2 starts from stage 1's folder at learning rate 0, so its
# generator stays exactly the one it started from (Adam's update is then 0).
TINY_RECIPE = """
from configs import tiny
from sr_jax import config, recipes

STAGES = ("1", "2")
WORKDIR = "runs/tiny_recipe"
FINISH = (("export", {{"parts": ("gen",), "dtype": "float32"}}),)


def get_config(arg=None):
  stage, rest = recipes.split_stage(arg, STAGES, default=STAGES[-1])
  c = tiny.get_config()
  c.data.dir = {data!r}
  c.data.cache_dir = f"{{WORKDIR}}/data_cache"
  c.train.num_steps = 4
  c.train.eval_every = c.checkpoint.every = c.log.audio_every = c.train.log_every = 4  # and at each run's last step
  c.log.tensorboard = c.log.progress = False
  if stage == "2":
    c.train.init_from = f"{{WORKDIR}}/1"
    c.optim.lr_g = 0.0
  return config.apply_overrides(c, rest)
"""


@pytest.fixture(scope="module")
def tiny_recipe(tmp_path_factory):
  from sr_jax.data import corpus  # noqa: PLC0415

  folder = tmp_path_factory.mktemp("tiny_recipe")
  data = folder / "corpus"
  corpus.build_tiny_corpus(str(data))
  path = folder / "tiny_recipe.py"
  path.write_text(textwrap.dedent(TINY_RECIPE.format(data=str(data))))
  return str(path)


def _gen(workdir, step):
  return restore_for_inference(workdir, step=step)[1]["gen"]["params"]


def _same(a, b) -> bool:
  return all(jax.tree.leaves(jax.tree.map(np.array_equal, a, b)))


def test_runner_runs_stages_in_order_resumes_a_partial_one_and_skips_finished_ones(tiny_recipe, tmp_path):
  module = recipes.load(tiny_recipe)
  workdir = str(tmp_path / "run")
  lines = []

  # an interrupted run: stage 1 alone, stopped half-way (its first 2 of 4 steps)
  assert recipes.run(module, workdir, "train.num_steps=2", stages=["1"], log=lines.append)
  assert lines[1] == f"stage 1: training 2 steps in {workdir}/1" and lines[2].startswith("stage 1: finished (2 steps)")
  assert len(lines) == 3
  assert not os.path.exists(os.path.join(workdir, "2")) and not os.path.exists(os.path.join(workdir, "export"))
  with pytest.raises(UserError, match=r"stage 2 starts from stage 1 .*not finished \(partial \(step 2 of 4\)\)"):
    recipes.run(module, workdir, stages=["2"], log=lines.append)

  lines.clear()
  assert recipes.run(module, workdir, dry_run=True, log=lines.append)
  assert lines[0] == f"recipe {tiny_recipe} in {workdir}: stages 1, 2, then export"
  assert lines[1].split() == ["stage", "1", "partial", "(step", "2", "of", "4)", "4", "steps", f"{workdir}/1",
                              "init_from", "-"]
  assert lines[2].split() == ["stage", "2", "todo", "4", "steps", f"{workdir}/2", "init_from", f"{workdir}/1"]
  assert lines[3] == f"then export: {workdir}/2 -> {workdir}/export (gen; float32)"
  assert not os.path.exists(os.path.join(workdir, "2"))  # a dry run trains nothing

  lines.clear()
  assert recipes.run(module, workdir, log=lines.append)
  expected = [f"stage 1: resuming at step 2 of 4 in {workdir}/1", "stage 1: finished (4 steps) in ",
              f"stage 2: training 4 steps in {workdir}/2 from {workdir}/1", "stage 2: finished (4 steps) in ",
              f"export: {workdir}/2/checkpoints/4 (gen; "]
  assert len(lines) == 6 and all(line.startswith(start) for line, start in zip(lines[1:], expected)), lines
  assert f"-> {workdir}/export: " in lines[5]
  # each stage in its folder, the pairs cached once beside them, stage 2 from stage 1's folder
  assert sorted(os.listdir(workdir)) == ["1", "2", "data_cache", "export"]
  saved = restore_config(os.path.join(workdir, "2"))
  assert saved.train.init_from == f"{workdir}/1" and saved.data.cache_dir == f"{workdir}/data_cache"
  # stage 2's generator starts from stage 1's final weights (at learning rate 0 it stays them), which stage 1's
  # steps 3-4 (resumed) changed; the export is stage 2's
  stage1, stage2 = _gen(os.path.join(workdir, "1"), 4), _gen(os.path.join(workdir, "2"), 4)
  assert _same(stage1, stage2) and not _same(stage1, _gen(os.path.join(workdir, "1"), 2))
  assert _same(restore_for_inference(os.path.join(workdir, "export"))[1]["gen"]["params"], stage2)

  lines.clear()
  steps_before = {s: sorted(os.listdir(os.path.join(workdir, s, "checkpoints"))) for s in ("1", "2")}
  assert recipes.run(module, workdir, log=lines.append)
  assert lines[1:3] == [f"stage 1: done (4 of 4 steps in {workdir}/1), skipped",
                        f"stage 2: done (4 of 4 steps in {workdir}/2), skipped"]
  assert lines[3].startswith("export: ") and len(lines) == 4
  assert steps_before == {s: sorted(os.listdir(os.path.join(workdir, s, "checkpoints"))) for s in ("1", "2")}


def test_stage_arguments_and_overrides(tiny_recipe, tmp_path):
  module = recipes.load(tiny_recipe)
  assert recipes.split_stage("steps=3,stage=1,chain='sample 4000 16000,whitenoise 0 0.1'", ("1", "2"), "2") == (
      "1", "steps=3,chain='sample 4000 16000,whitenoise 0 0.1'")
  assert recipes.split_stage(None, ("1", "2"), "2") == ("2", "")
  with pytest.raises(UserError, match="unknown stage '3': this recipe's are 1, 2"):
    module.get_config("stage=3")
  with pytest.raises(UserError, match="names a stage"):
    recipes.plan(module, str(tmp_path), "stage=1")
  with pytest.raises(UserError, match="--stages: unknown stage 'x'"):
    recipes.select(module, ["x"])
  # overrides (the --config argument and --config.KEY=VALUE) reach every stage; paths under WORKDIR move to the
  # runner's workdir, others stay
  plan = recipes.plan(module, str(tmp_path), "steps=3", {"train.batch_size": 4, "data.cache_dir": "/elsewhere"})
  assert [(s.total, s.config.train.batch_size, s.config.data.cache_dir, s.status) for s in plan.values()] == [
      (3, 4, "/elsewhere", "todo")] * 2
  assert plan["2"].config.train.init_from == os.path.join(str(tmp_path), "1")
  assert module.get_config("stage=2").train.init_from == "runs/tiny_recipe/1"  # the default, for `sr-jax train`


def test_launch_recipe_dry_run_prints_the_shipped_recipes_plans(tmp_path):
  workdir = str(tmp_path / "r4")
  cmd = [sys.executable, os.path.join(ROOT, "launch", "recipe.py"), "--config=configs/piano_r4_16k.py",
         f"--workdir={workdir}", "--dry_run", "--config.train.num_steps=20"]
  done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  lines = done.stdout.strip().splitlines()
  assert lines[0].endswith(f"in {workdir}: stages 1, 1b, 1c, 1d, 1e, 2, then export")
  stages = ["1", "1b", "1c", "1d", "1e", "2"]
  for line, stage, previous in zip(lines[1:], stages, ["-"] + [f"{workdir}/{s}" for s in stages]):
    assert line.split() == ["stage", stage, "todo", "20", "steps", f"{workdir}/{stage}", "init_from", previous]
  assert lines[7] == f"then export: {workdir}/2 -> {workdir}/export (gen; float32)" and len(lines) == 8
  assert not os.path.exists(workdir)
  # the same through `python -m sr_jax recipe` with a bundled name; a stage in --config's argument is one error line
  cmd = [sys.executable, "-m", "sr_jax", "recipe", "--config=piano_r2_16k:stage=2", "--dry_run"]
  done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
  assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith("error: --config's argument names "
                                                                                   "a stage")
