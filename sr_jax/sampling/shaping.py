"""Discriminator shaping: after training, teach D to judge the collaborative samples it will refine.

For N steps, on training batches: fake = collaborative sample of x (G frozen, D in eval mode, the D of this step),
then one D update with BCE(D(target) -> real, D(fake) -> fake) in train mode (dropout, BatchNorm statistics updated),
with config.optim's optimizer at the constant rate config.optim.lr_d (a fresh optimizer state). G is never changed.

The shaped D lives beside the generator's checkpoints, in its own orbax CheckpointManager:
  WORKDIR/shaped_disc/<total shaping steps>/{disc, opt_state, data, config}
disc = {"params", "batch_stats"}; config = config.collab's knobs used, the total steps, the generator step shaped
against and the evaluation losses. A rerun continues from the saved shaped D (optimizer and data iterator included)
unless `restart` is set or the run's generator has a newer checkpoint since, then it starts again from the trained
D (only WORKDIR/shaped_disc is ever rewritten: the training checkpoints are read, never written).

`load_shaped_disc(path)` gives the shaped D's variables (numpy) for enhancement, or None when there is none.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
from collections.abc import Callable

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
from absl import logging

from sr_jax import losses
from sr_jax.errors import UserError
from sr_jax.layout import SHAPED_DIR, shaped_disc_dir  # noqa: F401  (shaped_disc_dir: enhance finds it here too)
from sr_jax.models import build_discriminator, build_generator
from sr_jax.sampling.collaborative import CollaborativeSampler, sampler_from_config, window_scores
from sr_jax.train.state import NetState, make_optimizer

ITEMS = ("disc", "opt_state", "data", "config")


# ----- jitted pieces --------------------------------------------------------------------------------------------


def make_shaping_step(sampler: CollaborativeSampler, tx: optax.GradientTransformation) -> Callable:
  """step(gen_params, disc NetState, batch, key, eta, max_steps, step_size) -> (disc NetState, metrics)."""
  D = sampler.disc

  def step(gen_params, disc: NetState, batch, key, eta, max_steps, step_size):
    x, y = batch["input"], batch["target"]
    fake, info = sampler.pure(gen_params, {"params": disc.params, "batch_stats": disc.batch_stats}, x, eta,
                              max_steps, step_size)
    fake = jax.lax.stop_gradient(fake)
    cond = x if D.conditional else None
    k_real, k_fake = jax.random.split(key)

    def loss_fn(params):
      def apply(stats, inp, k):
        out, upd = D.apply({"params": params, "batch_stats": stats}, inp, cond, train=True, rngs={"dropout": k},
                           mutable=["batch_stats"])
        return out, upd["batch_stats"]

      real_logits, stats = apply(disc.batch_stats, y, k_real)
      fake_logits, stats = apply(stats, fake, k_fake)
      return losses.discriminator_loss(real_logits, fake_logits), stats

    (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(disc.params)
    updates, opt_state = tx.update(grads, disc.opt_state, disc.params)
    new = NetState(optax.apply_updates(disc.params, updates), stats, opt_state)
    return new, {"d_loss": loss, "collab_steps": jnp.mean(info["steps"].astype(jnp.float32))}

  return step


def make_shaping_eval(sampler: CollaborativeSampler) -> Callable:
  """evaluate(gen_params, disc_vars, batch, eta, max_steps, step_size) -> masked sums over the batch, D in eval mode:
  d_loss = -log D(target) - log(1 - D(collaborative sample)), d_real / d_fake (mean probabilities), collab_steps;
  d_loss_plain / d_fake_plain: the same with G(x) as the fake (not refined against this D, so comparable between
  two discriminators); count."""
  D, G = sampler.disc, sampler.gen

  def fake_scores(disc_vars, fake, x):  # (-log(1 - D(fake)), D(fake)) per window
    logits = D.apply(disc_vars, fake, x if D.conditional else None).reshape(x.shape[0], -1)
    loss = jnp.mean(optax.sigmoid_binary_cross_entropy(logits, jnp.zeros_like(logits)), axis=1)
    return loss, jnp.mean(jax.nn.sigmoid(logits), axis=1)

  def evaluate(gen_params, disc_vars, batch, eta, max_steps, step_size):
    x, y, mask = batch["input"], batch["target"], batch["mask"]
    fake, info = sampler.pure(gen_params, disc_vars, x, eta, max_steps, step_size)
    real_loss, real_prob = window_scores(D, disc_vars, y, x)  # -log D(target)
    fake_loss, fake_prob = fake_scores(disc_vars, fake, x)
    plain_loss, plain_prob = fake_scores(disc_vars, G.apply({"params": gen_params}, x), x)
    sums = {"d_loss": real_loss + fake_loss, "d_real": real_prob, "d_fake": fake_prob,
            "d_loss_plain": real_loss + plain_loss, "d_fake_plain": plain_prob,
            "collab_steps": info["steps"].astype(jnp.float32)}
    return {**{k: jnp.sum(mask * v) for k, v in sums.items()}, "count": jnp.sum(mask)}

  return evaluate


def evaluate_batches(evaluate, gen_params, disc_vars, batches, knobs) -> dict[str, float]:
  totals: dict[str, float] = {}
  for batch in batches:
    for k, v in jax.device_get(evaluate(gen_params, disc_vars, batch, *knobs)).items():
      totals[k] = totals.get(k, 0.0) + float(v)
  count = max(totals.pop("count", 0.0), 1.0)
  return {k: v / count for k, v in totals.items()}


# ----- checkpoints ----------------------------------------------------------------------------------------------


def _manager(folder: str) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(folder, item_names=ITEMS, options=ocp.CheckpointManagerOptions(
      max_to_keep=1, create=True, enable_async_checkpointing=False, cleanup_tmp_directories=True))


def _numpy_restore(folder: str, step: int, item: str):
  """One saved pytree item of step `step` in `folder`, as numpy arrays on the host."""
  from sr_jax.train.checkpoint import restore_numpy  # noqa: PLC0415

  return restore_numpy(os.path.join(folder, str(step), item))


def load_shaped_disc(path: str, with_info: bool = False):
  """The shaped discriminator's {"params", "batch_stats"} (numpy) saved for the run at `path` (see shaped_disc_dir),
  or None when the run was never shaped. with_info: (disc_vars, saved json: knobs, steps, gen_step, losses)."""
  folder = shaped_disc_dir(path)
  if folder is None:
    return None
  manager = _manager(folder)
  try:
    step = manager.latest_step()
    if step is None:
      return None
    disc = _numpy_restore(folder, step, "disc")
    info = manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"]
  finally:
    manager.close()
  _warn_if_stale(path, info)
  return (disc, info) if with_info else disc


def _warn_if_stale(path: str, info: dict) -> None:
  from sr_jax.train.checkpoint import find_step_dir  # noqa: PLC0415

  try:
    gen_step = int(os.path.basename(find_step_dir(path)))
  except (UserError, ValueError, OSError):
    return
  if info.get("gen_step") not in (None, gen_step):
    logging.warning("the shaped discriminator of %s was shaped against the generator of step %s, not %s: rerun "
                    "launch/shape.py to shape it again", path, info.get("gen_step"), gen_step)


# ----- the whole procedure --------------------------------------------------------------------------------------


@dataclasses.dataclass
class ShapeResult:
  folder: str  # WORKDIR/shaped_disc
  steps: int  # total shaping steps saved (this run's and earlier ones)
  start: int  # the steps done before this run
  before: dict[str, float]  # evaluation (validation batches) of the D this run started from
  after: dict[str, float]  # ... and of the shaped D
  disc: dict  # the shaped {"params", "batch_stats"}


def check_shapeable(config, workdir: str) -> None:
  if config.loss.lambda_adv <= 0:
    raise UserError(f"the run in {workdir} has no discriminator to shape (it was trained with loss.lambda_adv="
                    f"{config.loss.lambda_adv}): train with --config.loss.lambda_adv > 0 first")


def shape_discriminator(workdir: str, steps: int, *, data_dir: str | None = None, restart: bool = False,
                        log: Callable[[str], None] = logging.info, log_every: int = 0, **knobs) -> ShapeResult:
  """Shapes the discriminator of the training run in `workdir` for `steps` more steps and saves it in
  WORKDIR/shaped_disc. knobs: eta / max_steps / layer / step_size overrides of the run's config.collab."""
  from sr_jax.data import pipeline  # noqa: PLC0415
  from sr_jax.train.checkpoint import (  # noqa: PLC0415
    find_step_dir,
    restore_config,
    restore_for_inference,
  )

  if steps < 0:
    raise UserError(f"--steps must be >= 0, got {steps}")
  workdir = os.path.abspath(workdir)
  step_dir = find_step_dir(workdir)
  config = restore_config(step_dir)
  check_shapeable(config, workdir)
  if data_dir:
    config.data.dir = data_dir
  _, nets = restore_for_inference(step_dir, parts=("gen", "disc"))
  gen_step = int(os.path.basename(step_dir))
  sampler = sampler_from_config(config, build_generator(config), build_discriminator(config), **knobs)
  tx, step_fn, evaluate = _programs(sampler.gen, sampler.disc, sampler.layer, config.optim.to_json())
  gen_params = jax.device_put(nets["gen"]["params"])
  disc = NetState(nets["disc"]["params"], nets["disc"].get("batch_stats", {}), None)
  disc = jax.device_put(disc.replace(opt_state=tx.init(disc.params)))

  folder = os.path.join(workdir, SHAPED_DIR)
  train_iter = pipeline.train_iterator(config, workdir)
  start = _resume(folder, gen_step, restart, log)
  manager = _manager(folder)
  try:
    if start:
      restored = manager.restore(start, args=ocp.args.Composite(
          disc=ocp.args.StandardRestore({"params": disc.params, "batch_stats": disc.batch_stats}),
          opt_state=ocp.args.StandardRestore(disc.opt_state), data=grain.checkpoint.CheckpointRestore(train_iter)))
      disc = NetState(restored["disc"]["params"], restored["disc"]["batch_stats"], restored["opt_state"])
    knob_values = sampler.knobs()
    valid = pipeline.eval_batches(config, "valid", workdir, max_batches=config.train.eval_batches)
    before = evaluate_batches(evaluate, gen_params, _vars(disc), valid, knob_values)
    log(f"shaping the discriminator of {workdir} (generator step {gen_step}) for {steps} steps from step {start}: "
        f"eta={sampler.eta} max_steps={sampler.max_steps} layer={sampler.layer} step_size={sampler.step_size}")
    log(_format("before", before))
    disc = _train(step_fn, gen_params, disc, train_iter, steps, start, config.seed, knob_values, log, log_every)
    after = evaluate_batches(evaluate, gen_params, _vars(disc), valid, knob_values)
    log(_format("after", after))
    total = start + steps
    if steps or not start:
      saved = {"eta": sampler.eta, "max_steps": sampler.max_steps, "layer": sampler.layer,
               "step_size": sampler.step_size, "steps": total, "gen_step": gen_step, "before": before,
               "after": after}
      manager.save(total, args=ocp.args.Composite(
          disc=ocp.args.StandardSave(_vars(disc)), opt_state=ocp.args.StandardSave(disc.opt_state),
          data=grain.checkpoint.CheckpointSave(train_iter), config=ocp.args.JsonSave(saved)), force=True)
      manager.wait_until_finished()
  finally:
    manager.close()
  return ShapeResult(folder, total, start, before, after, jax.device_get(_vars(disc)))


@functools.lru_cache(maxsize=4)
def _programs(gen, disc, layer: int, optim_json: str):
  """(optimizer, jitted shaping step, jitted evaluation): built once per networks / layer / config.optim in a
  process (the knobs eta, K, step size are traced). Shaping uses config.optim at the constant rate lr_d."""
  optim = ml_collections.ConfigDict(json.loads(optim_json))
  optim.schedule = "constant"
  tx = make_optimizer(ml_collections.ConfigDict({"optim": optim}), optim.lr_d)
  sampler = CollaborativeSampler(gen, disc, layer=layer)
  return tx, jax.jit(make_shaping_step(sampler, tx)), jax.jit(make_shaping_eval(sampler))


def _vars(disc: NetState) -> dict:
  return {"params": disc.params, "batch_stats": disc.batch_stats}


def _format(when: str, m: dict[str, float]) -> str:
  return (f"D loss {when}: {m['d_loss']:.4f} (D(target) {m['d_real']:.3f}, D(collaborative sample) {m['d_fake']:.3f}, "
          f"{m['collab_steps']:.2f} refinement steps per window; with G(x) as the fake: {m['d_loss_plain']:.4f}, "
          f"D(G(x)) {m['d_fake_plain']:.3f})")


def _resume(folder: str, gen_step: int, restart: bool, log) -> int:
  """The shaping steps already saved in `folder` to continue from (0: start again, the folder emptied)."""
  if not os.path.isdir(folder):
    return 0
  manager = _manager(folder)
  try:
    step = manager.latest_step()
    saved = None if step is None else manager.restore(step, args=ocp.args.Composite(
        config=ocp.args.JsonRestore()))["config"]
  finally:
    manager.close()
  if step is not None and not restart and saved.get("gen_step") == gen_step:
    return step
  if step is not None and not restart:
    log(f"the saved shaped discriminator was shaped against generator step {saved.get('gen_step')}, the run is now "
        f"at step {gen_step}: shaping again from the trained discriminator")
  shutil.rmtree(folder)
  return 0


def _train(step_fn, gen_params, disc: NetState, batches, steps: int, start: int, seed: int, knobs, log,
           log_every: int) -> NetState:
  key = jax.random.fold_in(jax.random.PRNGKey(seed), 0x5a4e)
  every = log_every or max(1, steps // 10)
  for i in range(start, start + steps):
    batch = next(batches)
    disc, m = step_fn(gen_params, disc, {"input": batch["input"], "target": batch["target"]},
                      jax.random.fold_in(key, i), *knobs)
    if (i + 1 - start) % every == 0 or i + 1 == start + steps:
      m = jax.device_get(m)
      if not np.isfinite(m["d_loss"]):
        raise UserError(f"discriminator shaping diverged at step {i + 1} (D loss {m['d_loss']}): lower "
                        "optim.lr_d or collab.step_size; nothing was saved")
      log(f"shape step {i + 1}: D loss {m['d_loss']:.4f}, {m['collab_steps']:.2f} refinement steps per window")
  return disc
