"""`train_and_evaluate(config, workdir)`: the training loop of every sr_jax variant, on one device or many hosts.

Set-up (all config mistakes end in one UserError before anything is compiled) -> restore or init the state ->
jitted steps with explicit shardings (state donated) -> loop: batch, step, log, evaluate, checkpoint. Rerunning the
same command with the same workdir resumes where the last checkpoint left off (state and data iterator), and says
so. SIGTERM (preemption) saves a checkpoint before exiting. A NaN/Inf loss stops the run with a message naming the
step and the last good checkpoint, and nothing is saved after it.
"""

from __future__ import annotations

import functools
import math
import os
import signal
from typing import Any, NamedTuple

import jax
import numpy as np
from absl import logging

from jax.experimental import multihost_utils

from sr_jax.data import pipeline, sources
from sr_jax.errors import UserError
from sr_jax.train import sharding, state as state_lib, steps as steps_lib
from sr_jax.train.checkpoint import NET_NAMES, Checkpointer, abstract_with_shardings


class TrainingDiverged(UserError):
  """A loss became NaN or Inf."""


class _Preemption:
  """Turns SIGTERM into a flag the loop checks after each step (the state is saved, then the loop ends)."""

  def __init__(self):
    self.requested = False
    self._previous = None

  def __enter__(self):
    try:
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # not the main thread
      self._previous = None
    return self

  def _handle(self, signum, frame):
    del signum, frame
    logging.warning("SIGTERM received: saving a checkpoint, then stopping")
    self.requested = True

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def total_steps(config) -> int:
  ae = config.train.ae_steps if config.loss.lambda_feature > 0 and not config.train.ae_checkpoint else 0
  return int(ae + config.train.num_steps)


def compile_steps(config, models, optimizers, mesh, abstract_state):
  """jit-compiles (train_step, eval_step) with explicit in/out shardings; the train state is donated."""
  train_step, eval_step = steps_lib.make_steps(config, models, optimizers)
  shardings = sharding.state_shardings(mesh, abstract_state)
  batch = sharding.batch_sharding(mesh)
  rep = sharding.replicated(mesh)
  train = jax.jit(train_step, in_shardings=(shardings, batch), out_shardings=(shardings, rep), donate_argnums=0)
  evaluate = jax.jit(eval_step, in_shardings=(shardings, batch), out_shardings=rep)
  return train, evaluate, shardings


def create_state(config, models, optimizers, mesh):
  """(abstract state, shardings, a fresh state created directly with its shardings)."""
  init = functools.partial(state_lib.init_state, config, models, optimizers)
  abstract = jax.eval_shape(init)
  shardings = sharding.state_shardings(mesh, abstract)
  return abstract, shardings, jax.jit(init, out_shardings=shardings)


class Training(NamedTuple):
  """Everything a config's training needs, built and compiled: see `build_training`."""

  models: state_lib.Models
  optimizers: state_lib.Optimizers
  mesh: jax.sharding.Mesh
  abstract: Any  # the train state's shapes
  shardings: Any  # the train state's shardings
  init: Any  # () -> a fresh state, created with its shardings
  train_step: Any  # jitted (state, global batch) -> (state, metrics), state donated
  eval_step: Any  # jitted (state, global batch) -> metric sums


def build_training(config, mesh=None) -> Training:
  """Models, optimizers, the mesh (from config.mesh) and the jitted steps of `config` (compiled on first call)."""
  models = state_lib.build_models(config)
  optimizers = state_lib.make_optimizers(config)
  mesh = sharding.make_mesh(config.mesh) if mesh is None else mesh
  abstract, shardings, init = create_state(config, models, optimizers, mesh)
  train, evaluate_, _ = compile_steps(config, models, optimizers, mesh, abstract)
  return Training(models, optimizers, mesh, abstract, shardings, init, train, evaluate_)


def load_networks(state, path: str, parts: tuple[str, ...], shardings, flag: str):
  """Replaces the networks `parts` ("gen", "disc", "ae") of `state` by those of the run or exported model at
  `path`; optimizer states stay as they are (fresh). A shape mismatch is a UserError naming `flag`."""
  from sr_jax.train.checkpoint import restore_for_inference  # noqa: PLC0415

  _, nets = restore_for_inference(path, parts=parts)
  for part in parts:
    net = getattr(state, part)
    loaded = net.replace(params=nets[part]["params"], batch_stats=nets[part].get("batch_stats", {}))
    want = jax.tree.map(lambda x: (x.shape, x.dtype), (net.params, net.batch_stats))
    got = jax.tree.map(lambda x: (x.shape, x.dtype), (loaded.params, loaded.batch_stats))
    if want != got:
      raise UserError(f"{flag}: the {NET_NAMES[part]} in {path} has another shape than this config's "
                      f"({_SHAPE_FIELDS[part]})")
    state = state.replace(**{part: jax.device_put(loaded, getattr(shardings, part))})
  return state


_SHAPE_FIELDS = {"gen": "model.depth/model.width", "disc": "disc.kind/depth/width/conditional and data.window",
                 "ae": "ae.depth/ae.width and data.window"}


def init_from(state, models, path: str, shardings):
  """train.init_from: the generator (and, where both have one, the discriminator) of the run or exported model at
  `path` initialise this run; optimizer states, the step and the data order start fresh (fine-tuning)."""
  from sr_jax.train.checkpoint import restore_config  # noqa: PLC0415

  parts = ("gen", "disc") if models.disc is not None and restore_config(path).loss.lambda_adv > 0 else ("gen",)
  return load_networks(state, path, parts, shardings, "train.init_from")


def evaluate(eval_step, state, batches, mesh) -> dict[str, float]:
  sums: dict[str, float] = {}
  for batch in batches:
    out = jax.device_get(eval_step(state, sharding.global_batch(batch, mesh)))
    for k, v in out.items():
      sums[k] = sums.get(k, 0.0) + float(v)
  count = max(sums.pop("count", 0.0), 1.0)
  return {k: v / count for k, v in sums.items()}


def _check_finite(pending: list[tuple[int, dict]], last_good: int | None, workdir: str) -> None:
  for step, m in pending:
    bad = sorted(k for k, v in m.items() if k.endswith("loss") and not np.isfinite(v))
    if bad:
      where = (f"the last good checkpoint is step {last_good} in {workdir}/checkpoints (kept intact)"
               if last_good is not None else "no checkpoint was saved before it")
      raise TrainingDiverged(f"training diverged: {', '.join(bad)} became {m[bad[0]]} at step {step}; {where}. "
                             "Lower the learning rates or enable optim.grad_clip")


def _remove_empty_run_folders(workdir: str, existed: bool) -> None:
  """Removes the empty checkpoint folders a failed start made (and the workdir, if this start created it and it
  is empty): never a file, never a folder with anything in it."""
  for name in ("checkpoints", "best"):
    path = os.path.join(workdir, name)
    if os.path.isdir(path) and not os.listdir(path):
      os.rmdir(path)
  if not existed and os.path.isdir(workdir) and not os.listdir(workdir):
    os.rmdir(workdir)


def train_and_evaluate(config, workdir: str):
  """Trains the config's model in `workdir` (resuming if it holds a checkpoint); returns the final state."""
  from sr_jax.train import logs  # noqa: PLC0415 (matplotlib/tensorboardX are imported only for training)

  workdir = os.path.abspath(workdir)
  state_lib.check_config(config)
  for warning in state_lib.config_warnings(config):
    logging.warning("%s", warning)
  mesh = sharding.make_mesh(config.mesh)
  sharding.check_batch(config.train.batch_size, mesh, jax.process_count())
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise UserError(f"--workdir {workdir} is a file, not a folder")
  existed = os.path.isdir(workdir)
  ckpt = Checkpointer(workdir, config, keep=config.checkpoint.keep, keep_best=config.checkpoint.keep_best)
  train_iter = None
  try:  # a mistake found while preparing (no data, an incompatible workdir, a bad init_from) leaves nothing behind
    ckpt.check_compatible()
    init = config.train.init_from
    if init and ckpt.latest_step() is None and not os.path.isdir(init):  # before the data are prepared
      raise UserError(f"train.init_from={init!r} is not a folder (a run's workdir or an exported model)")

    if jax.process_count() > 1:  # process 0 builds a missing built-in corpus; the others wait for it
      if jax.process_index() == 0:
        sources.list_files(config.data)
      multihost_utils.sync_global_devices("sr_jax: data ready")
    train_iter = pipeline.train_iterator(config, workdir)
    valid = pipeline.eval_batches(config, "valid", workdir, max_batches=config.train.eval_batches,
                                  baseline_upsample="cubic" if config.data.upsample != "cubic" else None)
    t = build_training(config, mesh)  # nothing compiles before the first call
    models, abstract, shardings, train_step, eval_step = t.models, t.abstract, t.shardings, t.train_step, t.eval_step
    start = ckpt.latest_step()
    if start is not None:
      state = ckpt.restore(abstract_with_shardings(abstract, shardings), train_iter)
      logging.info("resumed from step %d in %s", start, workdir)
      print(f"resumed from step {start} in {workdir}", flush=True)
    else:
      start = 0
      state = t.init()
      if config.train.init_from:
        state = init_from(state, models, config.train.init_from, shardings)
        print(f"initialised from {config.train.init_from}", flush=True)
      if models.ae is not None and config.train.ae_checkpoint:
        state = load_networks(state, config.train.ae_checkpoint, ("ae",), shardings, "train.ae_checkpoint")
    total = total_steps(config)
    fixed_example = next(iter(valid))
    log = logs.RunLog(config, workdir, total, start)
  except BaseException:
    ckpt.close()  # (an orbax manager left open may raise from its thread at interpreter exit)
    if train_iter is not None and hasattr(train_iter, "close"):
      train_iter.close()
    _remove_empty_run_folders(workdir, existed)
    raise
  last_good = ckpt.latest_step()
  pending: list[tuple[int, dict]] = []
  try:
    with _Preemption() as preempt:
      for step in range(start, total):
        batch = sharding.global_batch(next(train_iter), mesh)
        state, metrics = train_step(state, batch)
        pending.append((step + 1, metrics))
        done = step + 1
        last = done == total
        stop = preempt.requested  # read once: the signal may arrive at any moment
        save_now = last or stop or done % config.checkpoint.every == 0
        if save_now or last or done % config.train.log_every == 0:
          pending = [(s, {k: float(v) for k, v in jax.device_get(m).items()}) for s, m in pending]
          _check_finite(pending, last_good, workdir)
          log.scalars(pending, state)
          pending = []
        if last or done % config.train.eval_every == 0:
          val = evaluate(eval_step, state, valid, mesh)
          log.validation(done, val)
          if config.checkpoint.keep_best and math.isfinite(val.get("model_lsd", math.nan)):
            ckpt.save_best(done, state, val["model_lsd"])
        if last or done % config.log.audio_every == 0:
          log.example(done, models.gen, state, fixed_example)
        if save_now:
          ckpt.save(done, state, train_iter, force=True)
          last_good = done
        if stop:
          logging.warning("stopped by SIGTERM after step %d (checkpoint saved)", done)
          break
  finally:  # also on NaN, errors and Ctrl-C: finish the saves in flight so the last good checkpoint is complete
    ckpt.wait()
    ckpt.close()
    log.close()
    if hasattr(train_iter, "close"):
      train_iter.close()
  if log.last:
    print(f"process {jax.process_index()}/{jax.process_count()}: finished at step {log.last[0]}, "
          + ", ".join(f"{k} {v:.6g}" for k, v in sorted(log.last[1].items()) if k.endswith("loss")), flush=True)
  return state
