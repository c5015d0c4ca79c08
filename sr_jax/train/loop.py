"""`train_and_evaluate(config, workdir)`: the training loop of every sr_jax variant, on one device or many hosts.

Set-up (all config mistakes end in one UserError before anything is compiled) -> restore or init the state ->
jitted steps with explicit shardings (state donated) -> loop: batch, step, log, evaluate, checkpoint. Rerunning the
same command with the same workdir resumes where the last checkpoint left off (state and data iterator), and says
so. A workdir a live run holds is refused (`workdir_lock`); a start that fails leaves nothing it made. SIGTERM
(preemption) saves a checkpoint before exiting. A NaN/Inf loss stops the run with a message naming the step and the
last good checkpoint, and nothing is saved after it.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import signal
from typing import Any, NamedTuple

import jax
import numpy as np
from absl import logging

from jax.experimental import multihost_utils

from sr_jax import layout
from sr_jax.data import pipeline, sources
from sr_jax.errors import UserError
from sr_jax.models.generator import SPECTRAL_PARTS, dead_up_blocks
from sr_jax.train import sharding, state as state_lib, steps as steps_lib
from sr_jax.train.checkpoint import NET_NAMES, Checkpointer, abstract_with_shardings
from sr_jax.train.workdir_lock import WorkdirBusy, WorkdirLock


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
  `path`; optimizer states stay as they are (fresh). A generator saved without the mask front-end or the fill this
  config has (model.mask_channels, fill_channels) keeps its fresh one. A shape mismatch is a UserError naming `flag`."""
  from sr_jax.train.checkpoint import restore_for_inference  # noqa: PLC0415

  _, nets = restore_for_inference(path, parts=parts)
  for part in parts:
    net = getattr(state, part)
    params = nets[part]["params"]
    if part == "gen":  # a mask front-end or a fill added to a generator trained without one keeps its fresh one
      params = {**params, **{k: net.params[k] for k in SPECTRAL_PARTS if k in net.params and k not in params}}
    loaded = net.replace(params=params, batch_stats=nets[part].get("batch_stats", {}))
    want = jax.tree.map(lambda x: (x.shape, x.dtype), (net.params, net.batch_stats))
    got = jax.tree.map(lambda x: (x.shape, x.dtype), (loaded.params, loaded.batch_stats))
    if want != got:
      raise UserError(f"{flag}: the {NET_NAMES[part]} in {path} has another shape than this config's "
                      f"({_SHAPE_FIELDS[part]})")
    state = state.replace(**{part: jax.device_put(loaded, getattr(shardings, part))})
  return state


_SHAPE_FIELDS = {"gen": "model.depth/width/mask_channels/mask_fft/mask_layers/mask_phase/fill_channels/fill_layers",
                 "disc": "disc.kind/depth/patch_depth/width/conditional/stft_fft_sizes/channels and data.window",
                 "ae": "ae.depth/ae.width and data.window"}


def init_from(state, models, path: str, shardings):
  """train.init_from: the generator (and, where both have one, the discriminator) of the run or exported model at
  `path` initialise this run; optimizer states, the step and the data order start fresh (fine-tuning)."""
  from sr_jax.train.checkpoint import restore_config  # noqa: PLC0415

  parts = ("gen", "disc") if models.disc is not None and restore_config(path).loss.lambda_adv > 0 else ("gen",)
  return load_networks(state, path, parts, shardings, "train.init_from")


def with_chain(config, chain: str):
  """A copy of config whose data.chain is `chain` (a train.eval_chains chain: its validation windows)."""
  other = config.copy_and_resolve_references()
  other.data.chain = chain
  return other


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


def _lock_workdir(workdir: str) -> WorkdirLock | None:
  """Process 0 locks the workdir against a second run (`workdir_lock`); the other processes of a multi-process run
  share its lock (None here) and learn whether it got it, so that all of them stop with one error line if not."""
  lock, error = None, None
  if jax.process_index() == 0:
    try:
      lock = WorkdirLock(workdir).acquire()
    except Exception as e:  # noqa: BLE001 (raised below, after the other processes heard of it)
      error = e
  if jax.process_count() > 1:
    locked = bool(multihost_utils.broadcast_one_to_all(np.int32(error is None)))
    if not locked and error is None:
      raise WorkdirBusy(f"workdir {workdir} is in use by another run: process 0 could not lock it (its error line "
                        "names the holder)")
  if error is not None:
    raise error
  return lock


def _close_quietly(*closers) -> None:
  """Calls each closer; a failure is logged, so that the error that ended the start is the one reported."""
  for close in closers:
    try:
      close()
    except Exception as e:  # noqa: BLE001
      logging.warning("while cleaning up after a failed start: %r", e)


def _remove_what_a_failed_start_made(config, workdir: str, before: set[str] | None) -> None:
  """Removes what a failed start made in `workdir` (its orbax threads already stopped): the checkpoint folders and
  the data cache (where it lives in the workdir) that were not there before the start (`before`: the workdir's
  entries then; None if this start created it). Never an entry that was there before, nor one of any other name."""
  made = {layout.CHECKPOINTS_DIR, layout.BEST_DIR}
  cache = os.path.relpath(pipeline.resolve_cache_dir(config, workdir), workdir)
  if cache != os.curdir and cache != os.pardir and not cache.startswith(os.pardir + os.sep):
    made.add(cache.split(os.sep)[0])
  for name in sorted(made - (before or set())):
    path = os.path.join(workdir, name)
    if os.path.isdir(path) and not os.path.islink(path):
      shutil.rmtree(path, ignore_errors=True)


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
  before = set(os.listdir(workdir)) if os.path.isdir(workdir) else None
  lock = _lock_workdir(workdir)  # a workdir a live run holds is refused here, before anything is written to it
  ckpt = train_iter = None
  try:  # a mistake found while preparing (no data, an incompatible workdir, a bad init_from) leaves nothing behind
    ckpt = Checkpointer(workdir, config, keep=config.checkpoint.keep, keep_best=config.checkpoint.keep_best)
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
    named = {name: pipeline.eval_batches(with_chain(config, chain), "valid", workdir,
                                         max_batches=config.train.eval_batches)
             for name, chain in state_lib.eval_chains(config).items()}
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
    # Orbax's threads (saves, and the temporary-folder clean-up each manager starts) and the data iterator stop
    # first: a thread still listing WORKDIR/best when it is removed would end the start in its traceback.
    _close_quietly(*(c.close for c in (ckpt, train_iter) if c is not None and hasattr(c, "close")))
    if lock is not None:  # process 0, while it still holds the workdir: nobody else writes there meanwhile
      _close_quietly(lambda: _remove_what_a_failed_start_made(config, workdir, before), lock.release)
      if before is None and os.path.isdir(workdir) and not os.listdir(workdir):  # made by this start, empty again
        _close_quietly(lambda: os.rmdir(workdir))
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
          for name, batches in named.items():
            log.validation(done, evaluate(eval_step, state, batches, mesh), name)
          dead = dead_up_blocks(models.gen, state.gen.params, np.asarray(fixed_example["input"][:4]))
          if dead and jax.process_index() == 0:
            logging.warning("step %d: up block %s outputs 0 on every unit for a validation batch, so nothing below "
                            "it reaches the output (its ReLUs died); model.up_activation=leaky_relu cannot die so",
                            done, dead[-1])
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
    try:
      ckpt.wait()
      ckpt.close()
      log.close()
      if hasattr(train_iter, "close"):
        train_iter.close()
    finally:
      if lock is not None:
        lock.release()
  if log.last:
    print(f"process {jax.process_index()}/{jax.process_count()}: finished at step {log.last[0]}, "
          + ", ".join(f"{k} {v:.6g}" for k, v in sorted(log.last[1].items()) if k.endswith("loss")), flush=True)
  return state
