"""Orbax checkpoints of a run: the whole train state, the grain iterator state and the config.

workdir/checkpoints/<step>/{state,data,config}   the last `checkpoint.keep` saves
workdir/best/<step>/{state,config}               the best save by validation LSD (lower is better)

The config is saved beside the state so inference needs no flags. Orbax writes each save to a temporary folder and
renames it when complete, so a save killed half-way never corrupts the latest good checkpoint. Restoring takes the
abstract state with the new run's shardings, so a run may resume on another mesh.
"""

from __future__ import annotations

import contextlib
import json
import logging as py_logging
import os

import grain
import jax
import numpy as np
import ml_collections
import orbax.checkpoint as ocp
from absl import logging

from sr_jax import config as config_lib
from sr_jax import layout
from sr_jax.errors import UserError

# Fields that fix the shapes of the saved arrays: a workdir holding another shape cannot be resumed.
SHAPE_FIELDS = ("model.depth", "model.width", "data.window", "disc.kind", "disc.conditional", "disc.depth",
                "disc.patch_depth", "disc.width", "disc.stft_fft_sizes", "disc.channels", "ae.depth", "ae.width",
                "loss.lambda_adv", "loss.lambda_feature",
                "optim.optimizer", "optim.grad_clip", "optim.plateau")


def _get(tree: dict, path: str):
  for part in path.split("."):
    if not isinstance(tree, dict) or part not in tree:
      return None
    tree = tree[part]
  return tree


def _shape_key(config_dict: dict, path: str):
  value = _get(config_dict, path)
  if path.startswith("loss.lambda_"):
    return bool(value and value > 0)  # only whether the network exists matters
  return value


def config_to_dict(config) -> dict:
  return json.loads(config.to_json()) if isinstance(config, ml_collections.ConfigDict) else dict(config)


class Checkpointer:
  """Saves/restores (state, data iterator, config) with orbax; keeps the last K and the best by validation LSD."""

  def __init__(self, workdir: str, config, keep: int = 3, keep_best: bool = True, async_save: bool = True):
    self.workdir = os.path.abspath(workdir)
    self.config = config_to_dict(config)
    self._closed = False
    opts = dict(enable_async_checkpointing=async_save, create=True, cleanup_tmp_directories=True)
    self.latest = ocp.CheckpointManager(
        os.path.join(self.workdir, layout.CHECKPOINTS_DIR),
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, **opts),
        item_names=("state", "data", "config"))
    self.best = None
    if keep_best:
      self.best = ocp.CheckpointManager(
          os.path.join(self.workdir, layout.BEST_DIR),
          options=ocp.CheckpointManagerOptions(max_to_keep=1, best_fn=lambda m: m["lsd"], best_mode="min",
                                               keep_checkpoints_without_metrics=False, **opts),
          item_names=("state", "config"))

  def latest_step(self) -> int | None:
    return self.latest.latest_step()

  def check_compatible(self) -> None:
    """A workdir holding a run of another model shape is refused with one line, before anything is compiled."""
    step = self.latest_step()
    if step is None:
      return
    saved = self.latest.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"]
    saved = config_to_dict(config_lib.complete(saved))  # keys declared since it was saved: their defaults
    diffs = [f"{p}: saved {_get(saved, p)!r}, now {_get(self.config, p)!r}" for p in SHAPE_FIELDS
             if _shape_key(saved, p) != _shape_key(self.config, p)]
    if diffs:
      raise UserError(f"workdir {self.workdir} holds a run of a different model ({'; '.join(diffs)}): "
                      "use another --workdir, or the same config to resume")

  def _one_save_at_a_time(self) -> None:
    """In a multi-process run, finish the saves in flight before starting another: each async save reaches orbax's
    cross-process barriers from its own thread, and two managers' threads racing for them can reach them in another
    order on each process, which deadlocks the run at its end (both processes wait at different barriers)."""
    if jax.process_count() > 1:
      self.wait()

  def save(self, step: int, state, data_iterator=None, force: bool = False) -> bool:
    self._one_save_at_a_time()
    items = {"state": ocp.args.StandardSave(state), "config": ocp.args.JsonSave(self.config)}
    if data_iterator is not None:
      items["data"] = grain.checkpoint.CheckpointSave(data_iterator)
    return self.latest.save(step, args=ocp.args.Composite(**items), force=force)

  def save_best(self, step: int, state, lsd: float) -> None:
    if self.best is not None:
      self._one_save_at_a_time()
      self.best.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                   config=ocp.args.JsonSave(self.config)),
                     metrics={"lsd": float(lsd)})

  def restore(self, abstract_state, data_iterator=None, step: int | None = None):
    """Restores the state (onto the shardings in `abstract_state`) and, in place, the data iterator."""
    step = self.latest_step() if step is None else step
    items = {"state": ocp.args.StandardRestore(abstract_state)}
    if data_iterator is not None:
      items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
    restored = self.latest.restore(step, args=ocp.args.Composite(**items))
    logging.info("restored step %d from %s", step, self.workdir)
    return restored["state"]

  def wait(self) -> None:
    self.latest.wait_until_finished()
    if self.best is not None:
      self.best.wait_until_finished()

  def close(self) -> None:
    """Finishes the saves in flight, then closes the managers. Also waits for the clean-up of orbax's temporary
    folders that each manager starts in a thread when it is created (`close` alone does not): after `close` no
    orbax thread reads the workdir, so a failed start may remove the folders it made. Closing twice is a no-op."""
    if self._closed:
      return
    self._closed = True
    for manager in (self.latest, self.best):
      if manager is not None:
        manager.wait_until_finished()
        _await_tmp_cleanup(manager)
        manager.close()


def _await_tmp_cleanup(manager: ocp.CheckpointManager) -> None:
  """Waits for the thread in which `manager` removes unfinished saves' temporary folders (cleanup_tmp_directories),
  which orbax itself awaits only at the first save. Its failure only leaves temporary folders: a warning."""
  wait = getattr(manager, "_maybe_await_cleanup_tmp_directory", None)
  if wait is None:  # another orbax version: its pending future, if any
    pending = getattr(manager, "_cleanup_tmp_directory_future", None)
    wait = pending.result if pending is not None else None
  if wait is not None:
    try:
      wait()
    except Exception as e:  # noqa: BLE001
      logging.warning("orbax could not clean up temporary folders in %s: %s", manager.directory, e)


def restore_config(path: str) -> ml_collections.ConfigDict:
  """The config saved with a run (a workdir, its checkpoints/ or best/ folder, or one step folder), merged over
  the defaults (`sr_jax.config.complete`: keys added since it was saved read as their defaults)."""
  step_dir = find_step_dir(path)
  with open(os.path.join(step_dir, "config", "metadata"), encoding="utf-8") as f:
    return config_lib.complete(json.load(f))


def find_step_dir(path: str, step: int | None = None) -> str:
  """Resolves a workdir / checkpoints folder / step folder to one step folder; UserError when there is none."""
  path = os.path.abspath(path)
  if not os.path.isdir(path):
    raise UserError(f"no checkpoint at {path}: the folder does not exist")
  if os.path.isdir(os.path.join(path, "state")) and os.path.isdir(os.path.join(path, "config")):
    return path
  for sub in (layout.CHECKPOINTS_DIR, ""):
    folder = os.path.join(path, sub)
    if not os.path.isdir(folder):
      continue
    steps = sorted(int(d) for d in os.listdir(folder) if d.isdigit() and os.path.isdir(os.path.join(folder, d)))
    if steps:
      if step is not None and step not in steps:
        raise UserError(f"no checkpoint of step {step} in {folder} (steps: {', '.join(map(str, steps))})")
      return os.path.join(folder, str(step if step is not None else steps[-1]))
  raise UserError(f"no checkpoint in {path}: train first (launch/train.py --workdir={path})")


def abstract_with_shardings(abstract_state, shardings):
  return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract_state, shardings)


NET_NAMES = {"gen": "generator", "disc": "discriminator", "ae": "autoencoder"}


class MissingNetworks(UserError):
  """A checkpoint without some of the networks asked for; `parts` names them ("gen", "disc", "ae")."""

  def __init__(self, message: str, parts: tuple[str, ...]):
    super().__init__(message)
    self.parts = parts


class _MissingItemMetadata(py_logging.Filter):
  """Drops orbax's warning that an item folder (state/) has no _CHECKPOINT_METADATA of its own: a training step keeps
  that file in the step folder, so reading the item alone is normal and the warning only alarms users."""

  def filter(self, record: py_logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Metadata file does not exist")


@contextlib.contextmanager
def quiet_item_metadata():
  """Within it, orbax's missing-item-metadata warning (`_MissingItemMetadata`) is not logged."""
  logger, quiet = py_logging.getLogger("absl"), _MissingItemMetadata()
  logger.addFilter(quiet)
  try:
    yield
  finally:
    logger.removeFilter(quiet)


def restore_numpy(path: str, select=None):
  """The pytree item saved in the folder `path` (e.g. a step's state/), as numpy arrays on the host. `select(tree)`:
  the part of its metadata tree to read (only that part is restored); None reads all of it."""
  with ocp.PyTreeCheckpointer() as ckptr, quiet_item_metadata():
    tree = ckptr.metadata(path).item_metadata.tree
    wanted = tree if select is None else select(tree)
    args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), wanted)
    return ckptr.restore(path, args=ocp.args.PyTreeRestore(item=wanted, restore_args=args,
                                                           partial_restore=select is not None))


def restore_for_inference(path: str, step: int | None = None, parts: tuple[str, ...] = ("gen",)):
  """(config, {part: {"params": ..., "batch_stats": ...}}) of a run, restored as numpy arrays on the host.

  `path`: a workdir (its latest checkpoint, or `step`), a checkpoints/ folder or one step folder holding state/ and
  config/ (e.g. a shipped pretrained model). Only the networks in `parts` ("gen", "disc", "ae") are read, never the
  optimizer states. A missing network (e.g. no discriminator in a plain U-Net run) is a UserError naming it.
  """
  step_dir = find_step_dir(path, step)
  config = restore_config(step_dir)

  def networks(tree):
    missing = [p for p in parts if not isinstance(tree.get(p), dict)]
    if missing:
      names = " or ".join(NET_NAMES.get(p, p) for p in missing)
      raise MissingNetworks(f"the checkpoint {step_dir} has no {names} (it was trained or exported without one)",
                            tuple(missing))
    return {p: {k: tree[p][k] for k in ("params", "batch_stats") if k in tree[p]} for p in parts}

  restored = restore_numpy(os.path.join(step_dir, "state"), select=networks)
  # A model exported in bfloat16 (`export_for_inference`) is computed in float32 like any other.
  return config, {p: jax.tree.map(lambda a: _cast_float(a, np.float32), restored[p]) for p in parts}


def _cast_float(a: np.ndarray, dtype) -> np.ndarray:
  """`a` in `dtype` if it holds floating point numbers (bfloat16 included), else `a` unchanged."""
  return a.astype(dtype) if a.dtype != dtype and jax.numpy.issubdtype(a.dtype, jax.numpy.floating) else a


EXPORT_DTYPES = ("float32", "bfloat16")
EXPORT_ENTRIES = ("state", "config", layout.SHAPED_DIR)  # what an export folder holds


def export_for_inference(path: str, out: str, step: int | None = None, best: bool = False,
                         parts: tuple[str, ...] = ("gen",), dtype: str = "float32", overwrite: bool = False) -> dict:
  """Writes the networks `parts` of a run's checkpoint (no optimizer states) and its config as one step folder
  `out/{state,config}` that `restore_for_inference`, launch/enhance.py and launch/evaluate.py load with
  --checkpoint=out. `best`: the best checkpoint by validation LSD (WORKDIR/best) instead of the latest.
  dtype "bfloat16" halves the size (the weights are computed in float32 again when loaded). With "disc" in
  `parts` and a shaped discriminator beside the run (launch/shape.py), that one is exported too, as
  out/shaped_disc. Written to a temporary folder and renamed: an interrupted export leaves nothing half-made,
  and an existing `out` is only replaced with `overwrite` (then only its state/, config/ and shaped_disc/ are
  replaced; other files in it are kept). Returns {"step", "bytes" (of the exported entries), "params", "source"}."""
  import shutil  # noqa: PLC0415
  import tempfile  # noqa: PLC0415

  if dtype not in EXPORT_DTYPES:
    raise UserError(f"export dtype must be one of {', '.join(EXPORT_DTYPES)}, got {dtype!r}")
  out = os.path.abspath(out)
  if os.path.exists(out) and not overwrite:
    raise UserError(f"{out} exists: pass overwrite (--overwrite) to replace it")
  src = os.path.join(path, layout.BEST_DIR) if best and os.path.isdir(os.path.join(path, layout.BEST_DIR)) else path
  if best and src == path:
    raise UserError(f"no best checkpoint in {path} (checkpoint.keep_best was off, or no validation ran yet)")
  step_dir = find_step_dir(src, step)
  config, nets = restore_for_inference(step_dir, parts=parts)
  nets = jax.tree.map(lambda a: _cast_float(a, jax.numpy.dtype(dtype)), nets)
  parent = os.path.dirname(out)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}-", dir=parent)
  try:
    with ocp.PyTreeCheckpointer() as ckptr:
      ckptr.save(os.path.join(tmp, "state"), nets)
    with ocp.Checkpointer(ocp.JsonCheckpointHandler()) as ckptr:
      ckptr.save(os.path.join(tmp, "config"), args=ocp.args.JsonSave(config_to_dict(config)))
    if "disc" in parts:
      shaped = layout.shaped_disc_dir(step_dir)
      if shaped is not None:
        shutil.copytree(shaped, os.path.join(tmp, os.path.basename(shaped)))
    if not os.path.exists(out):
      os.rename(tmp, out)
    else:  # overwrite: replace the model's entries, keep the user's other files (a README, examples)
      for name in EXPORT_ENTRIES:
        if os.path.exists(os.path.join(out, name)):
          shutil.rmtree(os.path.join(out, name))
        if os.path.exists(os.path.join(tmp, name)):
          os.rename(os.path.join(tmp, name), os.path.join(out, name))
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  size = sum(os.path.getsize(os.path.join(d, f)) for name in EXPORT_ENTRIES  # the model, not the user's files
             for d, _, fs in os.walk(os.path.join(out, name)) for f in fs)
  count = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(nets))
  return {"step": int(os.path.basename(step_dir)) if os.path.basename(step_dir).isdigit() else None,
          "bytes": size, "params": count, "source": step_dir}
