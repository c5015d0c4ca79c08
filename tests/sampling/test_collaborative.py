"""Collaborative sampling: exact G(x) at eta = 0, one step against a hand-made gradient step, lower D loss after K
steps, per-window early stop, memory flat in K, the step budget, frozen networks, knob errors."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sr_jax.errors import UserError
from sr_jax.models import Discriminator, Generator, PatchDiscriminator
from sr_jax.sampling import make_collaborative_sampler, window_scores

DEPTH, WINDOW, BATCH, LAYER = 2, 64, 8, 1
DISCS = {
    "global": Discriminator(depth=DEPTH, width=1 / 16, dropout=0.5),
    "patch": PatchDiscriminator(depth=DEPTH, width=1 / 16),
    "conditional_patch": PatchDiscriminator(depth=DEPTH, width=1 / 16, conditional=True),
}


@functools.cache
def nets(kind="global"):
  """(G, D, gen_params, disc_vars, x): random networks (dropout 0.5: eval mode is required for determinism)."""
  gen, disc = Generator(depth=DEPTH, width=1 / 16, dropout=0.5), DISCS[kind]
  rng = np.random.default_rng(0)
  t = np.arange(WINDOW) / 16000
  x = 0.3 * np.sin(2 * np.pi * rng.uniform(200, 4000, (BATCH, 1)) * t) + 0.05 * rng.normal(size=(BATCH, WINDOW))
  x = jnp.asarray(x[..., None], jnp.float32)
  gen_params = jax.jit(gen.init)(jax.random.key(0), x)["params"]
  disc_vars = jax.jit(disc.init)(jax.random.key(1), x, x if disc.conditional else None)
  # non-trivial BatchNorm running statistics, as after training
  disc_vars = {"params": disc_vars["params"], "batch_stats": jax.tree.map(
      lambda s: np.asarray(s) + rng.uniform(0, 0.1, s.shape).astype(np.float32), disc_vars["batch_stats"])}
  return gen, disc, gen_params, disc_vars, x


@functools.cache
def sampler(kind="global", layer=LAYER):
  gen, disc, *_ = nets(kind)
  return make_collaborative_sampler(gen, disc, eta=0.5, max_steps=10, layer=layer, step_size=1.0)


@functools.cache
def generate(kind="global"):
  gen, _, gen_params, _, x = nets(kind)
  return jax.jit(gen.apply)({"params": gen_params}, x)


@functools.cache
def _scorer(kind):
  _, disc, _, disc_vars, x = nets(kind)
  return jax.jit(lambda y: window_scores(disc, disc_vars, y, x))


def scores(kind, y):
  """(-log D(y), D(y)) per window, D in eval mode."""
  return _scorer(kind)(y)


@pytest.mark.parametrize("kind", ["global", "conditional_patch"])
def test_eta_zero_returns_generator_output_exactly(kind):
  _, _, gen_params, disc_vars, x = nets(kind)
  y, info = sampler(kind)(gen_params, disc_vars, x, eta=0.0)
  np.testing.assert_array_equal(np.asarray(y), np.asarray(generate(kind)))
  np.testing.assert_array_equal(info["steps"], 0)
  assert int(info["iterations"]) == 0
  np.testing.assert_allclose(info["prob"], scores(kind, generate(kind))[1], rtol=1e-6)


def test_window_scores_are_patch_means_of_sigmoid_and_bce():
  _, disc, _, disc_vars, x = nets("patch")
  logits = np.asarray(jax.jit(disc.apply)(disc_vars, x), np.float64)[..., 0]  # (N, P)
  assert logits.shape == (BATCH, WINDOW // 2**DEPTH)
  loss, prob = scores("patch", x)
  np.testing.assert_allclose(prob, np.mean(1 / (1 + np.exp(-logits)), axis=1), rtol=1e-5)
  np.testing.assert_allclose(loss, np.mean(np.log1p(np.exp(-logits)), axis=1), rtol=1e-5)


@pytest.mark.parametrize("kind,layer", [("global", 1), ("conditional_patch", 2), ("patch", 0)])
def test_one_step_is_a_gradient_step_on_the_layer_activation(kind, layer):
  """K = 1 against the algorithm written out: a_l -= s * d(-log D(y))/d a_l, decode from l with the original skips."""
  gen, disc, gen_params, disc_vars, x = nets(kind)
  v = {"params": gen_params}
  h, skips = gen.apply(v, x, method=gen.encode)
  a0 = gen.apply(v, h, skips, stop=layer, method=gen.decode)

  def finish(a):
    return gen.apply(v, a, skips, start=layer, method=gen.decode)

  @jax.jit
  def expected_output(a):  # windows are independent in eval mode: the gradient of the sum is per window
    def loss(a):
      logits = disc.apply(disc_vars, finish(a), x if disc.conditional else None)
      return jnp.sum(jnp.mean(jax.nn.softplus(-logits.reshape(BATCH, -1)), axis=1))
    return finish(a - 0.5 * jax.grad(loss)(a))

  expected = expected_output(a0)
  s = make_collaborative_sampler(gen, disc, eta=1.0, max_steps=1, layer=layer, step_size=0.5)
  y, info = s(gen_params, disc_vars, x)
  np.testing.assert_array_equal(info["steps"], 1)
  np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-6)
  assert not np.array_equal(np.asarray(y), np.asarray(generate(kind)))


@pytest.mark.parametrize("kind", ["global", "conditional_patch"])
def test_k_steps_lower_the_generator_side_discriminator_loss(kind):
  _, _, gen_params, disc_vars, x = nets(kind)
  y, info = sampler(kind)(gen_params, disc_vars, x, eta=1.0, max_steps=8)
  before, p_before = scores(kind, generate(kind))
  after, p_after = scores(kind, y)
  assert float(jnp.mean(after)) < float(jnp.mean(before)) - 1e-4
  assert np.all(np.asarray(after) < np.asarray(before))  # every window improved
  np.testing.assert_allclose(info["prob"], p_after, rtol=1e-6)
  np.testing.assert_allclose(info["initial_prob"], p_before, rtol=1e-6)


def test_windows_that_pass_eta_at_once_stay_exactly_generator_output():
  _, _, gen_params, disc_vars, x = nets()
  p0 = np.asarray(scores("global", generate())[1])
  eta = float(np.median(p0))  # about half the windows pass at once
  done = p0 >= eta
  assert 0 < done.sum() < BATCH
  y, info = sampler()(gen_params, disc_vars, x, eta=eta, max_steps=6)
  y, y0 = np.asarray(y), np.asarray(generate())
  np.testing.assert_array_equal(y[done], y0[done])
  assert all(not np.array_equal(y[i], y0[i]) for i in np.flatnonzero(~done))
  steps = np.asarray(info["steps"])
  np.testing.assert_array_equal(steps[done], 0)
  assert np.all(steps[~done] >= 1) and np.all(steps <= 6)
  # a refined window stopped as soon as it passed eta, or ran out of steps
  prob = np.asarray(info["prob"])
  assert np.all((prob[~done] >= eta) | (steps[~done] == 6))
  assert int(info["iterations"]) == steps.max()


def test_each_window_is_refined_independently_of_its_batch():
  _, _, gen_params, disc_vars, x = nets("conditional_patch")
  y, info = sampler("conditional_patch")(gen_params, disc_vars, x, eta=1.0, max_steps=3)
  y_one, info_one = sampler("conditional_patch")(gen_params, disc_vars, x[2:3], eta=1.0, max_steps=3)
  np.testing.assert_allclose(y_one[0], y[2], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(info_one["prob"][0], info["prob"][2], rtol=1e-5)


def test_step_budget_is_honoured():
  _, _, gen_params, disc_vars, x = nets()
  for k in (0, 1, 4):
    _, info = sampler()(gen_params, disc_vars, x, eta=1.0, max_steps=k)  # D(y) < 1 always: only K stops it
    np.testing.assert_array_equal(info["steps"], k)
    assert int(info["iterations"]) == k
  np.testing.assert_array_equal(np.asarray(sampler()(gen_params, disc_vars, x, eta=1.0, max_steps=0)[0]),
                                np.asarray(generate()))


def test_memory_is_the_same_for_1_and_100_steps():
  """One while loop over a fixed carry: with K baked in as a constant, K = 1 and K = 100 compile to programs of the
  same size; and with K traced (the sampler's default), any K reuses the one compiled program."""
  s = sampler()
  _, _, gen_params, disc_vars, x = nets()
  eta, _, step = s.knobs()

  def memory(k):
    fn = jax.jit(lambda gp, dv, x: s.pure(gp, dv, x, eta, k, step))
    m = fn.lower(gen_params, disc_vars, x).compile().memory_analysis()
    return {f: getattr(m, f) for f in ("temp_size_in_bytes", "argument_size_in_bytes", "output_size_in_bytes",
                                       "alias_size_in_bytes")}

  one, hundred = memory(1), memory(100)
  assert one == hundred
  assert one["temp_size_in_bytes"] > 0
  fresh = make_collaborative_sampler(*nets()[:2], layer=LAYER)
  for k in (1, 100):
    fresh(gen_params, disc_vars, x, eta=1.0, max_steps=k)
  assert fresh._jitted._cache_size() == 1  # pylint: disable=protected-access


def test_generator_and_discriminator_are_untouched():
  _, _, gen_params, disc_vars, x = nets("global")
  before = jax.tree.map(np.array, (gen_params, disc_vars))
  sampler("global")(gen_params, disc_vars, x, eta=1.0, max_steps=3)
  after = jax.tree.map(np.array, (gen_params, disc_vars))
  jax.tree.map(np.testing.assert_array_equal, before, after)


@pytest.mark.parametrize("knobs,message", [
    ({"layer": 3}, "collab.layer must be an up block in 0..model.depth=2"),
    ({"layer": -1}, "collab.layer"),
    ({"eta": 1.5}, "collab.eta must be a probability"),
    ({"max_steps": -1}, "collab.max_steps must be an integer >= 0"),
    ({"step_size": -0.1}, "collab.step_size must be >= 0"),
])
def test_bad_knobs_are_user_errors(knobs, message):
  gen, disc, *_ = nets()
  with pytest.raises(UserError, match=message.replace(".", r"\.")):
    make_collaborative_sampler(gen, disc, **knobs)


def test_bad_call_time_knob_is_a_user_error():
  _, _, gen_params, disc_vars, x = nets()
  with pytest.raises(UserError, match="collab.eta"):
    sampler()(gen_params, disc_vars, x, eta=-0.1)


def test_canonical_convs_keeps_values_and_leaves_only_canonical_kernels():
  """Input gradients of (strided, nested-jit) convolutions: same values, every kernel in (spatial, in, out) layout."""
  from jax import lax

  from sr_jax.sampling.collaborative import canonical_convs

  @functools.partial(jax.jit, static_argnums=2)
  def conv(z, k, stride):
    return lax.conv_general_dilated(z, k, (stride,), [(4, 4)], dimension_numbers=("NWC", "WIO", "NWC"))

  def f(z, params):
    h = jnp.tanh(conv(z, params["k1"], 2))
    return jnp.sum(conv(h, params["k2"], 1) ** 2)

  rng = np.random.default_rng(0)
  z = jnp.asarray(rng.normal(size=(2, 32, 3)), jnp.float32)
  params = {"k1": jnp.asarray(rng.normal(size=(9, 3, 5)), jnp.float32),
            "k2": jnp.asarray(rng.normal(size=(9, 5, 4)), jnp.float32)}
  plain = jax.value_and_grad(f)
  fixed = canonical_convs(plain)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), plain(z, params),
               jax.jit(fixed)(z, params))
  specs = [e.params["dimension_numbers"].rhs_spec for e in jax.make_jaxpr(fixed)(z, params).jaxpr.eqns
           if e.primitive.name == "conv_general_dilated"]
  assert len(specs) == 4 and set(specs) == {(2, 1, 0)}
  inner = jax.make_jaxpr(plain)(z, params)  # the plain gradient does have non-canonical kernels
  assert "rhs_spec=(1, 2, 0)" in str(inner)
