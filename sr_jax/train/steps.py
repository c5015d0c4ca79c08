"""Pure train and eval steps. Built once per config by `make_steps`, jitted by the caller with shardings.

One train step, in the generator phase:
  y_hat = G(x) (train mode, dropout), kept with its VJP so G runs forward once;
  D update: BCE(D(y [| x]) -> real, D(stop_grad(y_hat) [| x]) -> fake), BatchNorm stats updated;
  G update: rec(y, y_hat) + adv_on * lambda_adv * -log D(y_hat) (with the updated D)
            + adv_on * lambda_fm * |D_feat(y) - D_feat(y_hat)| (feature matching, the updated D's inner features)
            + lambda_f * |AE(y) - AE(y_hat)| + lambda_stft * MR-STFT(y, y_hat) + lambda_corridor * corridor(y, y_hat),
            pulled back through the VJP of G; with optim.freeze = "gen" no generator loss is computed and G stays as
            it is.
The MRSD's (disc.kind "mrsd") BCE terms are averaged over its resolutions (`patch_counts`), each resolution the mean
over its patches, as HiFi-GAN sums its sub-discriminators' losses; other kinds average over all their logits.
In the autoencoder phase (global step < train.ae_steps) only the autoencoder learns the identity on targets.
Phases and the adversarial switch are traced values (`lax.cond`, `jnp.where`): nothing recompiles when they change.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from sr_jax import losses, metrics
from sr_jax.train.state import Models, NetState, Optimizers, TrainState

EMA = 0.99


def _update(tx, net: NetState, grads, loss=None, batch_stats=None) -> tuple[NetState, jax.Array]:
  extra = {"value": loss} if loss is not None else {}
  updates, opt_state = tx.update(grads, net.opt_state, net.params, **extra)
  params = optax.apply_updates(net.params, updates)
  stats = net.batch_stats if batch_stats is None else batch_stats
  return NetState(params, stats, opt_state), optax.tree.norm(grads)


def make_steps(config, models: Models, optimizers: Optimizers) -> tuple[Callable, Callable]:
  """Returns (train_step(state, batch) -> (state, metrics), eval_step(state, batch) -> metrics)."""
  lc, G, D, AE = config.loss, models.gen, models.disc, models.ae
  ae_steps = int(config.train.ae_steps) if AE is not None and not config.train.ae_checkpoint else 0
  plateau = bool(config.optim.plateau)
  frozen_gen = config.optim.freeze == "gen"

  def d_apply(net: NetState, y, x, key, params=None, features: bool = False):
    """D in train mode; returns (logits, new batch stats), with features ((logits, feature maps), new batch stats).
    A D without BatchNorm (the MRSD) has an empty batch_stats collection, passed through unchanged."""
    cond = x if D.conditional else None
    variables = {"params": net.params if params is None else params, "batch_stats": net.batch_stats}
    extra = {"return_features": True} if features else {}
    out, upd = D.apply(variables, y, cond, train=True, rngs={"dropout": key}, mutable=["batch_stats"], **extra)
    return out, upd["batch_stats"]

  def patch_groups(windows):
    """The MRSD's patch logits per resolution for `windows` (N, W, 1); None for the other kinds (one group)."""
    counts = getattr(D, "patch_counts", None)
    return None if counts is None else counts(windows.shape[1])

  def features(net: NetState, y):
    return AE.apply({"params": net.params, "batch_stats": net.batch_stats}, y)[0]

  def generator_phase(state: TrainState, x, y, key):
    k_g, k_real, k_fake, k_adv = jax.random.split(key, 4)
    g_step = state.step - ae_steps

    def g_forward(params):
      return G.apply({"params": params}, x, train=True, rngs={"dropout": k_g})

    y_hat, g_vjp = jax.vjp(g_forward, state.gen.params)
    out = {}
    disc, adv_on, ema = state.disc, state.adv_on, state.d_loss_ema
    if D is not None:
      def d_loss_fn(params):
        real, stats = d_apply(disc, y, x, k_real, params)
        fake, stats = d_apply(disc.replace(batch_stats=stats), jax.lax.stop_gradient(y_hat), x, k_fake, params)
        return losses.grouped_discriminator_loss(real, fake, patch_groups(y)), (stats, real, fake)

      (d_loss, (stats, real, fake)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(disc.params)
      disc, out["d_grad_norm"] = _update(optimizers.disc, disc, d_grads, batch_stats=stats)
      ema = EMA * ema + (1 - EMA) * d_loss
      switch = g_step >= lc.adv_start_step if lc.adv_start_d_loss <= 0 else ema < lc.adv_start_d_loss
      adv_on = adv_on | switch
      out.update(d_loss=d_loss, d_real=jnp.mean(jax.nn.sigmoid(real)), d_fake=jnp.mean(jax.nn.sigmoid(fake)))

    real_features = None
    if D is not None and lc.lambda_fm > 0 and not frozen_gen:  # the updated D's features of the target: constants
      (_, real_features), _ = d_apply(disc, y, x, k_adv, features=True)
      real_features = jax.lax.stop_gradient(real_features)

    def g_loss_fn(y_hat):
      rec = losses.reconstruction_loss(y, y_hat, lc.reconstruction, lc.snr_max_db)
      terms = {"rec_loss": rec}
      total = rec
      if D is not None:
        if real_features is None:
          logits, _ = d_apply(disc, y_hat, x, k_adv)
        else:
          (logits, fake_features), _ = d_apply(disc, y_hat, x, k_adv, features=True)
        terms["adv_loss"] = losses.grouped_generator_adversarial_loss(logits, patch_groups(y_hat))
        total = total + jnp.where(adv_on, lc.lambda_adv, 0.0) * terms["adv_loss"]
        if real_features is not None:
          terms["fm_loss"] = losses.feature_matching_loss(real_features, fake_features)
          total = total + jnp.where(adv_on, lc.lambda_fm, 0.0) * terms["fm_loss"]
      if AE is not None:
        terms["feature_loss"] = losses.feature_loss(features(state.ae, y), features(state.ae, y_hat), lc.feature_kind)
        total = total + lc.lambda_feature * terms["feature_loss"]
      if lc.lambda_stft > 0:
        terms["stft_loss"] = losses.multi_resolution_stft_loss(
            y, y_hat, tuple(lc.stft_fft_sizes), tuple(lc.stft_hop_sizes), lc.stft_sc_weight, lc.stft_mag_weight)
        total = total + lc.lambda_stft * terms["stft_loss"]
      if lc.lambda_corridor > 0:
        terms["corridor_loss"] = losses.spectral_corridor_loss(
            y, y_hat, lc.corridor_floor_db, tuple(lc.stft_fft_sizes), tuple(lc.stft_hop_sizes), lc.corridor_pool,
            lc.corridor_ceiling_db)
        total = total + lc.lambda_corridor * terms["corridor_loss"]
      return total, terms

    if frozen_gen:
      out["adv_on"] = adv_on.astype(jnp.float32)
      return state.replace(disc=disc, adv_on=adv_on, d_loss_ema=ema), out
    (g_loss, terms), dy = jax.value_and_grad(g_loss_fn, has_aux=True)(y_hat)
    (g_grads,) = g_vjp(dy)
    gen, out["g_grad_norm"] = _update(optimizers.gen, state.gen, g_grads, loss=g_loss if plateau else None)
    out.update(terms, g_loss=g_loss, adv_on=adv_on.astype(jnp.float32))
    new = state.replace(gen=gen, disc=disc, adv_on=adv_on, d_loss_ema=ema)
    return new, out

  def ae_phase(state: TrainState, x, y, key):
    def ae_loss_fn(params):
      variables = {"params": params, "batch_stats": state.ae.batch_stats}
      (_, rec), upd = AE.apply(variables, y, train=True, rngs={"dropout": key}, mutable=["batch_stats"])
      return losses.l2_loss(y, rec), upd["batch_stats"]

    (loss, stats), grads = jax.value_and_grad(ae_loss_fn, has_aux=True)(state.ae.params)
    ae, norm = _update(optimizers.ae, state.ae, grads, batch_stats=stats)
    return state.replace(ae=ae), {"ae_loss": loss, "ae_grad_norm": norm}

  def train_step(state: TrainState, batch):
    x, y = batch["input"], batch["target"]
    key = jax.random.fold_in(state.rng, state.step)
    if ae_steps == 0:
      new, out = generator_phase(state, x, y, key)
    else:
      # Both branches are compiled once; lax.cond runs one of them. Metrics of the other phase read 0.
      shapes = {}
      for phase in (generator_phase, ae_phase):
        shapes.update(jax.eval_shape(phase, state, x, y, key)[1])
      zeros = {k: jnp.zeros(v.shape, v.dtype) for k, v in shapes.items()}

      def run(phase):
        def branch(state):
          new, out = phase(state, x, y, key)
          return new, {**zeros, **out}
        return branch

      new, out = jax.lax.cond(state.step < ae_steps, run(ae_phase), run(generator_phase), state)
      out["ae_phase"] = (state.step < ae_steps).astype(jnp.float32)
    return new.replace(step=state.step + 1), out

  def eval_step(state: TrainState, batch):
    """Masked sums over the batch of LSD, SNR and capped SNR (metrics.batch_snr_capped) of the model, the input and
    (if given) the spline baseline."""
    x, y, mask = batch["input"], batch["target"], batch["mask"]
    y_hat = G.apply({"params": state.gen.params}, x)
    out = {"count": jnp.sum(mask)}
    candidates = [("model", y_hat), ("input", x)] + ([("spline", batch["baseline"])] if "baseline" in batch else [])
    for name, est in candidates:
      out[f"{name}_lsd"] = jnp.sum(mask * metrics.batch_lsd(y[..., 0], est[..., 0]))
      out[f"{name}_snr"] = jnp.sum(mask * metrics.batch_snr(y[..., 0], est[..., 0]))
      out[f"{name}_snr_capped"] = jnp.sum(mask * metrics.batch_snr_capped(y[..., 0], est[..., 0]))
    out["rec_loss"] = jnp.sum(mask * jnp.mean((y - y_hat) ** 2, axis=(1, 2)))
    return out

  return train_step, eval_step
