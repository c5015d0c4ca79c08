"""launch/train.py end to end on the tiny config: checkpoints, TensorBoard, exact resume after kill -9, multi-process,
and bad configs that end in one line before anything is compiled."""

import glob
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from configs import tiny
from sr_jax.errors import UserError
from sr_jax.train import loop
from sr_jax.train.checkpoint import Checkpointer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEPS = ["--config.train.num_steps=12", "--config.checkpoint.every=4", "--config.train.eval_every=4",
         "--config.log.audio_every=4", "--config.train.log_every=2"]


def train_cmd(workdir, data_dir, *extra):
  return [sys.executable, os.path.join(ROOT, "launch", "train.py"), "--config=" + os.path.join(ROOT, "configs/tiny.py"),
          f"--workdir={workdir}", f"--config.data.dir={data_dir}", *STEPS, *extra]


def run(cmd, **kw):
  return subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT, **kw)


def final_state(workdir, step=12):
  return ocp.StandardCheckpointer().restore(os.path.join(workdir, "checkpoints", str(step), "state"))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  from sr_jax.data import corpus

  folder = str(tmp_path_factory.mktemp("tiny_corpus"))
  corpus.build_tiny_corpus(folder)
  return folder


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, data_dir):
  workdir = str(tmp_path_factory.mktemp("run_a"))
  result = run(train_cmd(workdir, data_dir))
  assert result.returncode == 0, result.stderr[-3000:]
  return workdir, result


def test_tiny_recipe_writes_checkpoints_events_curves_and_resumes(finished_run, data_dir):
  workdir, result = finished_run
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["12", "4", "8"]
  assert glob.glob(os.path.join(workdir, "events.out.tfevents.*"))
  assert os.path.getsize(os.path.join(workdir, "loss_curves.png")) > 10_000
  assert len(os.listdir(os.path.join(workdir, "best"))) == 1  # the best by validation LSD
  assert "finished at step 12" in result.stdout
  again = run(train_cmd(workdir, data_dir))
  assert again.returncode == 0
  assert f"resumed from step 12 in {workdir}" in again.stdout


def test_kill_9_then_rerun_gives_bit_identical_params(finished_run, data_dir, tmp_path):
  workdir = str(tmp_path / "run_b")
  proc = subprocess.Popen(train_cmd(workdir, data_dir), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  checkpoints = os.path.join(workdir, "checkpoints")
  marker = os.path.join(checkpoints, "4", "commit_success.txt")
  deadline = time.time() + 300
  while not os.path.exists(marker) and proc.poll() is None and time.time() < deadline:
    time.sleep(0.01)
  assert proc.poll() is None, "the run ended before the kill: nothing to resume"
  proc.send_signal(signal.SIGSTOP)  # frozen where it is, so that what it had saved is what the kill leaves
  saved = sorted(int(d) for d in os.listdir(checkpoints) if d.isdigit())
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert proc.returncode == -signal.SIGKILL
  # the kill landed before the last step: step 4 saved, step 12 not, and none of what a run writes at its end
  assert 4 in saved and max(saved) < 12, saved
  assert not os.path.exists(os.path.join(workdir, "loss_curves.png"))
  resumed = run(train_cmd(workdir, data_dir))
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  start = int(resumed.stdout.split("resumed from step ", 1)[1].split()[0])
  assert start in saved and start < 12  # a real resume: the steps after `start` were trained by the second process
  assert "finished at step 12" in resumed.stdout
  reference, restored = final_state(finished_run[0]), final_state(workdir)
  leaves = jax.tree.leaves(reference)
  assert len(leaves) == len(jax.tree.leaves(restored)) > 10
  for a, b in zip(leaves, jax.tree.leaves(restored)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_half_written_save_never_hides_the_last_good_checkpoint(finished_run, tmp_path):
  import shutil

  workdir = str(tmp_path / "run_c")
  shutil.copytree(finished_run[0], workdir)
  # what a save killed half-way leaves: orbax's temporary folder, never renamed to its step
  os.makedirs(os.path.join(workdir, "checkpoints", "16.orbax-checkpoint-tmp-1700000000", "state"))
  ckpt = Checkpointer(workdir, tiny.get_config())
  assert ckpt.latest_step() == 12
  ckpt.close()


def test_sigterm_saves_before_exiting(data_dir, tmp_path):
  workdir = str(tmp_path / "run_d")
  cmd = train_cmd(workdir, data_dir, "--config.train.num_steps=100000", "--config.checkpoint.every=100000")
  proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  metrics = os.path.join(workdir, "metrics.jsonl")
  deadline = time.time() + 300
  while proc.poll() is None and time.time() < deadline:  # wait until training is under way
    events = glob.glob(os.path.join(workdir, "events.out.tfevents.*"))
    if events and os.path.getsize(events[0]) > 2000 or os.path.exists(metrics):
      break
    time.sleep(0.1)
  time.sleep(1.0)
  proc.send_signal(signal.SIGTERM)
  out, _ = proc.communicate(timeout=300)
  assert proc.returncode == 0, out[-3000:]
  steps = [int(d) for d in os.listdir(os.path.join(workdir, "checkpoints")) if d.isdigit()]
  assert len(steps) == 1 and 0 < steps[0] < 100000, out[-3000:]


def free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_on_loopback_agree(data_dir, tmp_path):
  port = free_port()
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2 --xla_backend_optimization_level=0"}
  procs = [subprocess.Popen(
      train_cmd(str(tmp_path / "run"), data_dir, "--config.train.num_steps=4", f"--coordinator_address=127.0.0.1:{port}",
                "--num_processes=2", f"--process_id={i}"),
      cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
  outs = [p.communicate(timeout=600)[0] for p in procs]
  assert [p.returncode for p in procs] == [0, 0], outs[0][-2000:] + outs[1][-2000:]
  finals = [next(l for l in out.splitlines() if "finished at step 4" in l) for out in outs]
  assert finals[0].startswith("process 0/2") and finals[1].startswith("process 1/2")
  assert finals[0].split(":", 1)[1] == finals[1].split(":", 1)[1]  # the same losses on both processes
  # ... and those of one process training on the same global batches (process 0's, then process 1's) on a mesh of
  # as many devices: the two processes compute the one-process step
  from sr_jax.data import pipeline
  from sr_jax.train import sharding
  from sr_jax.train.writer import read_history

  history = read_history(str(tmp_path / "run"))
  config = tiny.get_config()
  config.data.dir, config.train.num_steps, config.mesh.data = data_dir, 4, 4
  t = loop.build_training(config)
  state = t.init()
  shards = [pipeline.train_iterator(config, str(tmp_path / "one"), p, 2) for p in range(2)]
  compared = 0
  for step in range(1, 5):
    parts = [next(it) for it in shards]
    state, metrics = t.train_step(state, sharding.global_batch({k: np.concatenate([b[k] for b in parts])
                                                                for k in parts[0]}, t.mesh))
    for name, value in jax.device_get(metrics).items():
      if name.endswith("loss"):
        steps, values = history[name]
        np.testing.assert_allclose(values[list(steps).index(step)], value, rtol=1e-5, err_msg=f"{name}, step {step}")
        compared += 1
  assert compared >= 8  # rec_loss and g_loss at each of the 4 steps


def bad(config_changes, workdir, match, monkeypatch):
  def compiled(*a, **k):
    raise AssertionError("compiled before the config error was found")

  monkeypatch.setattr(loop, "build_training", compiled)
  config = tiny.get_config()
  for path, value in config_changes.items():
    node = config
    *parents, leaf = path.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  with pytest.raises(UserError, match=match):
    loop.train_and_evaluate(config, workdir)


@pytest.mark.parametrize("changes,match", [
    ({"data.window": 500}, r"window 500 does not fit a depth-3 network: it must be a multiple of 2\*\*\(depth\+1\) = 16"),
    ({"mesh.data": 3}, "mesh data=3 x fsdp=1 = 3 devices does not divide the 8 available devices"),
    ({"mesh.data": 4, "train.batch_size": 6}, "train.batch_size=6 is not divisible by the 4 devices of the mesh"),
    ({"data.source": "folder", "data.dir": "/nonexistent/audio"}, "/nonexistent/audio"),
    ({"loss.lambda_feature": 1.0}, "needs a trained autoencoder"),
    ({"data.enhance_window": 1000}, r"data.enhance_window=1000: window 1000 does not fit a depth-3 network"),
    ({"data.enhance_window": -512}, r"data.enhance_window must be 0 \(the training window\) or a number of samples, "
                                    "got -512"),
])
def test_bad_configs_fail_before_compiling(changes, match, tmp_path, data_dir, monkeypatch):
  changes.setdefault("data.dir", data_dir)
  bad(changes, str(tmp_path / "w"), match, monkeypatch)


def test_a_warning_about_the_config_is_logged_once_per_start(tmp_path, data_dir, monkeypatch, caplog):
  # the warm-up outlasts the run (allowed, warned about); the mesh then stops the start before anything compiles
  bad({"data.dir": data_dir, "optim.schedule": "warmup_cosine", "optim.warmup_steps": 200, "train.num_steps": 60,
       "mesh.data": 3}, str(tmp_path / "w"), "mesh data=3", monkeypatch)
  assert caplog.text.count("optim.warmup_steps=200 >= train.num_steps=60: the learning rate is still warming") == 1


def test_workdir_of_another_model_shape_is_refused(finished_run, data_dir, monkeypatch):
  bad({"model.depth": 2, "data.dir": data_dir}, finished_run[0],
      r"holds a run of a different model \(model.depth: saved 3, now 2\)", monkeypatch)


def test_bad_config_is_one_line_without_traceback(tmp_path, data_dir):
  result = run(train_cmd(str(tmp_path / "w"), data_dir, "--config.data.window=500"))
  assert result.returncode == 2
  assert "Traceback" not in result.stderr
  assert result.stderr.strip().splitlines()[-1].startswith("error: window 500 does not fit")


def test_autoencoder_trained_first_then_loaded_by_a_later_run(data_dir, tmp_path):
  first, second = str(tmp_path / "ae_run"), str(tmp_path / "uses_ae")
  config = tiny.get_config()
  config.data.dir, config.loss.lambda_feature, config.train.ae_steps, config.train.num_steps = data_dir, 0.1, 3, 2
  config.train.eval_every = config.checkpoint.every = 5
  config.log.tensorboard = config.log.progress = False
  trained = loop.train_and_evaluate(config, first)
  assert int(trained.step) == 5
  config.train.ae_steps, config.train.ae_checkpoint = 0, first
  loaded = loop.train_and_evaluate(config, second)
  # the second run trained only G against the frozen, loaded autoencoder
  for a, b in zip(jax.tree.leaves(trained.ae.params), jax.tree.leaves(loaded.ae.params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  config.model.width = 1 / 8  # an autoencoder of another shape is refused
  config.ae.width = 1 / 4
  with pytest.raises(UserError, match="has another shape"):
    loop.train_and_evaluate(config, str(tmp_path / "other"))


def test_nan_loss_stops_naming_the_step_and_the_last_good_checkpoint(data_dir, tmp_path):
  config = tiny.get_config()
  config.data.dir, config.optim.optimizer, config.optim.lr_g = data_dir, "sgd", 1e30  # explodes at the 2nd step
  config.checkpoint.every = config.train.log_every = 1
  config.log.tensorboard = config.log.progress = False
  workdir = str(tmp_path / "nan")
  with pytest.raises(loop.TrainingDiverged, match=r"training diverged: .*loss became (nan|inf) at step 2; the last "
                     rf"good checkpoint is step 1 in {workdir}/checkpoints \(kept intact\)"):
    loop.train_and_evaluate(config, workdir)
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["1"]
  state = final_state(workdir, 1)
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state["gen"]["params"]))


def test_resume_onto_another_mesh(finished_run, data_dir, tmp_path):
  import shutil

  workdir = str(tmp_path / "moved")
  shutil.copytree(finished_run[0], workdir)
  config = tiny.get_config()
  config.data.dir = data_dir
  config.train.num_steps, config.mesh.data, config.mesh.fsdp = 14, 2, 2
  config.checkpoint.every, config.train.eval_every, config.train.log_every = 4, 4, 2
  config.log.tensorboard = config.log.progress = False
  state = loop.train_and_evaluate(config, workdir)
  assert int(state.step) == 14
  assert {tuple(x.sharding.spec) for x in jax.tree.leaves(state.gen.params)} >= {()}  # restored on the new mesh
  assert len(jax.tree.leaves(state.gen.params)[0].sharding.device_set) == 4


def test_init_from_starts_a_new_run_from_another_runs_weights(finished_run, data_dir, tmp_path):
  source, _ = finished_run
  config = tiny.get_config()
  config.data.dir, config.train.init_from, config.train.num_steps = data_dir, source, 2
  config.optim.lr_g = config.optim.lr_d = 0.0  # no learning: the weights stay those it started from
  config.train.eval_every = config.checkpoint.every = 2
  config.log.tensorboard = config.log.progress = False
  state = loop.train_and_evaluate(config, str(tmp_path / "fine"))
  assert int(state.step) == 2  # a new run (step 0 on), not a resume at the source's step 12
  want = final_state(source)
  for net in ("gen", "disc") if config.loss.lambda_adv > 0 else ("gen",):
    got = jax.device_get(getattr(state, net).params)
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), got, want[net]["params"])
  config.train.init_from = str(tmp_path / "nowhere")
  with pytest.raises(UserError, match="train.init_from=.*nowhere.* is not a folder"):
    loop.train_and_evaluate(config, str(tmp_path / "fine2"))
  assert not os.path.exists(tmp_path / "fine2")  # refused before anything was written
  state = loop.train_and_evaluate(config, str(tmp_path / "fine"))  # a run that holds a checkpoint resumes instead
  assert int(state.step) == 2
  config.train.init_from, config.model.width = source, config.model.width * 2
  with pytest.raises(UserError, match=r"train.init_from: the generator in .* has another shape .*model.depth"):
    loop.train_and_evaluate(config, str(tmp_path / "fine3"))


def test_the_tiny_recipe_runs_without_a_data_folder(tmp_path):
  # the command of the issue, from a fresh folder and home: the tiny corpus is built in the default corpus folder
  home, cwd = tmp_path / "home", tmp_path / "cwd"
  os.makedirs(home), os.makedirs(cwd)
  env = {k: v for k, v in os.environ.items() if k != "SR_JAX_DATA"}
  env["HOME"] = str(home)
  short = ["--config.train.num_steps=2", "--config.checkpoint.every=2", "--config.train.eval_every=2",
           "--config.log.audio_every=2", "--config.train.log_every=1"]
  cmd = [sys.executable, os.path.join(ROOT, "launch", "train.py"), "--config=configs/tiny.py", "--workdir=runs/tiny"]
  result = subprocess.run(cmd + short, capture_output=True, text=True, timeout=600, cwd=cwd, env=env)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "finished at step 2" in result.stdout
  assert os.listdir(cwd / "runs" / "tiny" / "checkpoints") == ["2"]
  corpus = home / ".cache" / "sr_jax" / "corpora" / "piano-tiny-16000"
  assert len(glob.glob(str(corpus / "train" / "*.wav"))) == 6


class _SlowOrbaxCleanup:
  """Delays the listing of temporary folders that each orbax CheckpointManager starts in a thread when it is
  created, and records whether the folder it lists still existed then (a failed start must wait for it)."""

  def __init__(self, monkeypatch):
    from orbax.checkpoint._src.path import temporary_paths

    self.original, self.seen = temporary_paths.all_temporary_paths, []
    monkeypatch.setattr(temporary_paths, "all_temporary_paths", self)

  async def __call__(self, directory, *args, **kwargs):
    import asyncio

    await asyncio.sleep(0.3)
    self.seen.append((os.path.basename(str(directory)), os.path.isdir(str(directory))))
    return await self.original(directory, *args, **kwargs)


def test_a_start_that_fails_while_preparing_leaves_no_folders_and_keeps_the_users_files(tmp_path, data_dir,
                                                                                         monkeypatch):
  config = tiny.get_config()
  config.data.source, config.data.dir = "folder", str(tmp_path / "no_audio_here")  # found after the checkpointer
  config.log.tensorboard = config.log.progress = False
  slow = _SlowOrbaxCleanup(monkeypatch)
  fresh = tmp_path / "fresh"
  with pytest.raises(UserError, match="data folder .*no_audio_here does not exist"):
    loop.train_and_evaluate(config, str(fresh))
  # orbax's threads had finished listing checkpoints/ and best/ before they were removed
  assert sorted(slow.seen) == [("best", True), ("checkpoints", True)]
  assert not os.path.exists(fresh)  # made by this start: removed
  mine = tmp_path / "mine"
  os.makedirs(mine / "checkpoints_of_mine")
  (mine / "notes.txt").write_text("keep me")
  with pytest.raises(UserError, match="data folder"):
    loop.train_and_evaluate(config, str(mine))
  assert sorted(os.listdir(mine)) == ["checkpoints_of_mine", "notes.txt"]  # what it made is gone, the user's stays
  assert (mine / "notes.txt").read_text() == "keep me"

  # a mistake found after the data were prepared (and cached in the workdir): the cache it made goes too
  def late(*a, **k):
    raise UserError("a mistake found late")

  monkeypatch.setattr(loop, "build_training", late)
  config.data.source, config.data.dir = "tiny", data_dir
  with pytest.raises(UserError, match="a mistake found late"):
    loop.train_and_evaluate(config, str(mine))
  assert sorted(os.listdir(mine)) == ["checkpoints_of_mine", "notes.txt"]


def test_a_failed_start_is_one_error_line_and_leaves_the_workdir_as_it_was(tmp_path):
  mine = tmp_path / "mine"
  os.makedirs(mine)
  (mine / "notes.txt").write_text("keep me")
  result = run(train_cmd(str(mine), str(tmp_path / "no_audio_here"), "--config.data.source=folder"))
  assert result.returncode == 2, result.stderr[-3000:]
  assert "Traceback" not in result.stderr and "Exception in thread" not in result.stderr
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and result.stderr.strip().splitlines()[-1] == errors[0]
  assert "no_audio_here does not exist" in errors[0]
  assert sorted(os.listdir(mine)) == ["notes.txt"]


def test_each_validation_checks_the_up_blocks_and_warns_of_a_dead_one(data_dir, tmp_path, monkeypatch, caplog):
  """Every validation runs generator.dead_up_blocks on the trained params and a validation batch (this healthy run:
  none); a dead block (here reported by a stand-in) is a warning naming it and the leaky fix."""
  seen = []

  def spy(gen, params, x):
    seen.append((real(gen, params, x), np.shape(x)))
    return ["up_1", "up_2"]

  real = loop.dead_up_blocks
  monkeypatch.setattr(loop, "dead_up_blocks", spy)
  config = tiny.get_config()
  config.data.dir, config.train.num_steps, config.train.eval_every = data_dir, 4, 2
  config.checkpoint.every = 4
  config.log.tensorboard = config.log.progress = False
  loop.train_and_evaluate(config, str(tmp_path / "w"))
  assert [dead for dead, _ in seen] == [[], []] and all(shape[0] <= 4 for _, shape in seen)
  assert caplog.text.count("up block up_2 outputs 0 on every unit") == 2
  assert "model.up_activation=leaky_relu" in caplog.text
