"""Shared test helpers for the networks."""

import functools

import jax


@functools.cache
def _jitted(model, kwargs):
  return jax.jit(functools.partial(model.apply, **dict(kwargs)))


def jit_apply(model):
  """model.apply, jitted (op-by-op eager execution compiles every primitive and is ~10x slower on CPU)."""

  def call(variables, *args, **kwargs):
    rngs = kwargs.pop("rngs", None)
    f = _jitted(model, tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items())))
    return f(variables, *args, rngs=rngs) if rngs is not None else f(variables, *args)

  return call


def jit_init(model, *args):
  """model.init with params and dropout rngs from key 0, jitted."""
  return jax.jit(model.init)({"params": jax.random.key(0), "dropout": jax.random.key(0)}, *args)
