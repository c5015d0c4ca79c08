"""Collaborative sampling (Liu et al. 2020, "Collaborative Sampling in GANs", as the original EPFL project used it).

For each window x: y = G(x); while D(y) < eta and fewer than K steps were taken:
  a_l <- a_l - step_size * d(-log D(y)) / d a_l      a_l = the activation after up block l of the generator
  y   <- G.decode(a_l, skips, start=l)               finished with the skips of the ORIGINAL pass of x
D(y) is the probability sigmoid(logit), averaged over the patches of a PatchGAN; a conditional D sees D(y, x).

Unlike the original (a Python loop with both nets in train mode, memory growing every iteration), this is one jitted
program: a `lax.while_loop` over a fixed-size carry (memory flat in K), both networks in eval mode (no dropout,
BatchNorm running averages, nothing mutable), frozen (only a_l changes), batched with a per-window early stop: a
window whose D(y) >= eta stops changing (its update is masked out) while the others go on; the loop ends when every
window is done or after K steps. eta, K and step_size are traced, so changing them never recompiles; the layer
fixes the program's structure and is static. One iteration costs one forward + backward of decode-from-l and D:
the gradient is evaluated through `canonical_convs`, which sidesteps XLA CPU's slow convolutions inside loop bodies.

The gradient of a window is that of its own loss (the sum of the per-window losses is differentiated; in eval mode
windows do not interact), so a window's refinement does not depend on the batch it is in or on the batch size.

  sampler = make_collaborative_sampler(gen, disc, eta=0.5, max_steps=10, layer=2, step_size=0.1)
  y, info = sampler(gen_params, disc_vars, x)   # info: steps (N,) int32, prob (N,), initial_prob (N,), iterations
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.extend import core as jex_core

from sr_jax.errors import UserError
from sr_jax.models.layers import as_windows


def window_scores(disc, disc_vars, y, x=None) -> tuple[jax.Array, jax.Array]:
  """D in eval mode -> (per-window generator-side loss -log D(y) (N,), per-window probability D(y) (N,)).

  Both are means over the patches of a PatchGAN (logits (N, P, 1)); a global D has one logit per window.
  """
  logits = disc.apply(disc_vars, y, x if disc.conditional else None)
  logits = logits.reshape(logits.shape[0], -1).astype(jnp.float32)
  loss = jnp.mean(optax.sigmoid_binary_cross_entropy(logits, jnp.ones_like(logits)), axis=1)
  return loss, jnp.mean(jax.nn.sigmoid(logits), axis=1)


def check_knobs(eta: float, max_steps: int, step_size: float, layer: int | None = None, depth: int | None = None):
  """One UserError per bad collaborative-sampling knob (config.collab or flags)."""
  if not 0.0 <= float(eta) <= 1.0:
    raise UserError(f"collab.eta must be a probability in [0, 1], got {eta}")
  if int(max_steps) != max_steps or max_steps < 0:
    raise UserError(f"collab.max_steps must be an integer >= 0, got {max_steps}")
  if not np.isfinite(step_size) or step_size < 0:
    raise UserError(f"collab.step_size must be >= 0, got {step_size}")
  if layer is not None and depth is not None and not (isinstance(layer, int) and 0 <= layer <= depth):
    raise UserError(f"collab.layer must be an up block in 0..model.depth={depth} (0 = the bottleneck), got {layer}")


def canonical_convs(fn):
  """`fn`, evaluated with every convolution's kernel first transposed to the canonical (spatial..., in, out) layout.

  Same values. Why: XLA's CPU backend canonicalizes convolutions (kernel transposes for Eigen's fast path) only
  outside loops; inside a while-loop body a convolution whose kernel has another layout, as every input-gradient
  convolution (kernel dims (spatial, out, in)) does, falls back to a naive loop, ~20-50x slower (jax-ml/jax#12868).
  The transposes cost one small copy of each kernel per call. Other backends are unaffected either way.
  """

  def wrapped(*args):
    closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(*args)
    out = _eval_canonical(closed.jaxpr, closed.consts, *jax.tree.leaves(args))
    return jax.tree.unflatten(jax.tree.structure(out_shape), out)

  return wrapped


def _eval_canonical(jaxpr, consts, *args) -> list:
  env = {}

  def read(v):
    return v.val if isinstance(v, jex_core.Literal) else env[v]

  for v, value in [*zip(jaxpr.constvars, consts), *zip(jaxpr.invars, args)]:
    env[v] = value
  for eqn in jaxpr.eqns:
    invals = [read(v) for v in eqn.invars]
    inner = eqn.params.get("jaxpr")
    if eqn.primitive.name == "conv_general_dilated":
      outvals = [_canonical_conv(eqn.primitive, *invals, **eqn.params)]
    elif eqn.primitive.name in ("pjit", "jit") and isinstance(inner, jex_core.ClosedJaxpr):
      outvals = _eval_canonical(inner.jaxpr, inner.consts, *invals)  # inlined: we are under jit anyway
    else:  # as jax.core.eval_jaxpr does
      with eqn.ctx.manager:
        out = eqn.primitive.bind(*invals, **eqn.primitive.get_bind_params(eqn.params))
      outvals = out if eqn.primitive.multiple_results else [out]
    for v, value in zip(eqn.outvars, outvals):
      env[v] = value
  return [read(v) for v in jaxpr.outvars]


def _canonical_conv(primitive, lhs, rhs, *, dimension_numbers, **params):
  n = rhs.ndim
  canonical = (n - 1, n - 2, *range(n - 2))  # rhs laid out (spatial..., in, out)
  out_dim, in_dim, *spatial = dimension_numbers.rhs_spec
  if tuple(dimension_numbers.rhs_spec) != canonical:
    rhs = jnp.transpose(rhs, (*spatial, in_dim, out_dim))
    dimension_numbers = dimension_numbers._replace(rhs_spec=canonical)
  return primitive.bind(lhs, rhs, dimension_numbers=dimension_numbers, **params)


def _masked(mask: jax.Array, new: jax.Array, old: jax.Array) -> jax.Array:
  """new where the per-window mask (N,) is set, else old (bit-exact)."""
  return jnp.where(mask.reshape(mask.shape + (1,) * (new.ndim - 1)), new, old)


class CollaborativeSampler:
  """Frozen G and D in eval mode; `sampler(gen_params, disc_vars, x, eta=, max_steps=, step_size=)` -> (y, info).

  `pure` is the same function unjitted, for use inside other jitted code (e.g. discriminator shaping).
  """

  def __init__(self, gen, disc, eta: float = 0.5, max_steps: int = 10, layer: int = 2, step_size: float = 0.1):
    check_knobs(eta, max_steps, step_size, layer, gen.depth)
    self.gen, self.disc, self.layer = gen, disc, layer
    self.eta, self.max_steps, self.step_size = float(eta), int(max_steps), float(step_size)
    self._jitted = jax.jit(self.pure)

  def knobs(self, eta=None, max_steps=None, step_size=None) -> tuple[np.float32, np.int32, np.float32]:
    """The traced knobs (fixed dtypes, so any value reuses the one compiled program); None = the default."""
    eta = self.eta if eta is None else eta
    max_steps = self.max_steps if max_steps is None else max_steps
    step_size = self.step_size if step_size is None else step_size
    check_knobs(eta, max_steps, step_size)
    return np.float32(eta), np.int32(max_steps), np.float32(step_size)

  def __call__(self, gen_params, disc_vars, x, *, eta=None, max_steps=None, step_size=None):
    return self._jitted(gen_params, disc_vars, x, *self.knobs(eta, max_steps, step_size))

  def pure(self, gen_params, disc_vars, x, eta, max_steps, step_size) -> tuple[jax.Array, dict[str, Any]]:
    """x (N, W[, 1]) -> (y (N, W, 1) float32, info); eta/max_steps/step_size may be traced scalars."""
    G, D, layer = self.gen, self.disc, self.layer
    x = as_windows(x).astype(jnp.float32)
    h, skips = G.apply({"params": gen_params}, x, method=G.encode)
    a0 = G.apply({"params": gen_params}, h, skips, stop=layer, method=G.decode)

    def loss_fn(a, gen_params, skips, disc_vars, x):  # all explicit: canonical_convs traces it to a jaxpr
      y = G.apply({"params": gen_params}, a, skips, start=layer, method=G.decode)
      loss, prob = window_scores(D, disc_vars, y, x)
      return jnp.sum(loss), (y, prob)

    grad_fn = canonical_convs(jax.value_and_grad(loss_fn, has_aux=True))

    def value_and_grad(a):
      return grad_fn(a, gen_params, skips, disc_vars, x)

    (_, (y0, p0)), g0 = value_and_grad(a0)
    steps0 = jnp.zeros(x.shape[0], jnp.int32)

    def cond(carry):
      k, _, _, prob, _, _ = carry
      return (k < max_steps) & jnp.any(prob < eta)

    def body(carry):
      k, a, y, prob, grad, steps = carry
      active = prob < eta  # windows already at D(y) >= eta (or NaN) keep a, y, prob, grad bit-exact
      a = _masked(active, a - jnp.asarray(step_size, a.dtype) * grad, a)
      (_, (y_new, p_new)), g_new = value_and_grad(a)
      return (k + 1, a, _masked(active, y_new, y), _masked(active, p_new, prob), _masked(active, g_new, grad),
              steps + active.astype(jnp.int32))

    k, _, y, prob, _, steps = jax.lax.while_loop(cond, body, (jnp.zeros((), jnp.int32), a0, y0, p0, g0, steps0))
    return y, {"steps": steps, "prob": prob, "initial_prob": p0, "iterations": k}


def make_collaborative_sampler(gen, disc, eta: float = 0.5, max_steps: int = 10, layer: int = 2,
                               step_size: float = 0.1) -> CollaborativeSampler:
  """fn(gen_params, disc_vars, x) -> (y, info): collaborative sampling with G and D frozen, in eval mode."""
  return CollaborativeSampler(gen, disc, eta, max_steps, layer, step_size)


def sampler_from_config(config, gen, disc, **overrides) -> CollaborativeSampler:
  """The sampler with config.collab's knobs (eta, max_steps, layer, step_size); `overrides` replace any of them."""
  knobs = {k: config.collab[k] for k in ("eta", "max_steps", "layer", "step_size")}
  knobs.update({k: v for k, v in overrides.items() if v is not None})
  return CollaborativeSampler(gen, disc, **knobs)
