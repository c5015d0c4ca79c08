import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.models import jit_apply, jit_init, numpy_reference

from sr_jax.errors import UserError
from sr_jax.models import Generator
from sr_jax.models.generator import dead_up_blocks
from sr_jax.models.summary import layer_table, window_spec


def init(model, window, batch=2):
  x = jax.random.normal(jax.random.key(1), (batch, window, 1))
  return jit_init(model, x), x


@pytest.mark.parametrize("depth,width,window", [(1, 0.0625, 64), (2, 0.125, 128), (3, 0.0625, 256), (4, 0.03125, 96)])
def test_output_shape_and_dtype(depth, width, window):
  model = Generator(depth=depth, width=width)
  v, x = init(model, window)
  y = jit_apply(model)(v, x)
  assert y.shape == (2, window, 1) and y.dtype == jnp.float32
  y2 = jit_apply(model)(v, x[..., 0])  # (N, W) accepted too
  np.testing.assert_array_equal(y, y2)


def test_bfloat16_compute_keeps_float32_params_and_output():
  model = Generator(depth=2, width=0.125, dtype=jnp.bfloat16)
  v, x = init(model, 64)
  assert {p.dtype for p in jax.tree.leaves(v["params"])} == {jnp.dtype(jnp.float32)}
  y = jit_apply(model)(v, x)
  assert y.dtype == jnp.float32
  y32 = Generator(depth=2, width=0.125).apply(v, x)
  assert float(jnp.max(jnp.abs(y - y32))) < 0.05  # same network, bf16 rounding only


def test_depth4_shapes_match_the_original_worked_example():
  rows, _ = layer_table(Generator(depth=4), window_spec(1, 1024))
  shapes = {name: shape for name, shape, _ in rows}
  assert [shapes[f"down_{b}"] for b in range(1, 5)] == [(512, 128), (256, 256), (128, 512), (64, 512)]
  assert shapes["bottleneck"] == (32, 512)
  assert [shapes[f"up_{l}"] for l in range(1, 5)] == [(64, 1024), (128, 1024), (256, 512), (512, 256)]
  assert shapes["output"] == (1024, 1)


def test_original_size_parameter_count():
  _, total = layer_table(Generator(depth=8), window_spec(1, 8192))
  assert total == 103_603_458  # the original PyTorch generator at depth 8: 103.6M


def test_decode_of_encode_equals_call_exactly():
  model = Generator(depth=3, width=0.0625, dropout=0.5)
  v, x = init(model, 256)
  h, skips = jit_apply(model)(v, x, method=Generator.encode)
  y = jit_apply(model)(v, h, skips, method=Generator.decode)
  want = numpy_reference.generator(v, x)  # (G(x) is decode(*encode(x)) by construction: checked against numpy)
  assert numpy_reference.rel_err(y - x, want - x) < 1e-5
  for l in range(0, 4):  # stop at up block l, then finish from there with the original skips
    a = jit_apply(model)(v, h, skips, stop=l, method=Generator.decode)
    np.testing.assert_array_equal(jit_apply(model)(v, a, skips, start=l, method=Generator.decode), y)


def test_decode_from_a_modified_activation_changes_output():
  model = Generator(depth=3, width=0.0625)
  v, x = init(model, 256)
  h, skips = jit_apply(model)(v, x, method=Generator.encode)
  a = jit_apply(model)(v, h, skips, stop=2, method=Generator.decode)
  assert a.shape == (2, 256 // 4, 2 * 16)  # after up_2 (mirrors level 2): (W/4, 2 * channels(2))
  y = jit_apply(model)(v, a + 1.0, skips, start=2, method=Generator.decode)
  assert not np.allclose(y, jit_apply(model)(v, x))


def test_additive_input_skip():
  model = Generator(depth=2, width=0.125)
  v, x = init(model, 64)
  zero = jax.tree.map(jnp.zeros_like, v)  # all weights zero: the network adds nothing
  np.testing.assert_array_equal(jit_apply(model)(zero, x), x)


def test_dropout_train_vs_eval():
  model = Generator(depth=2, width=0.125, dropout=0.5)
  v, x = init(model, 64)
  a = jit_apply(model)(v, x, train=True, rngs={"dropout": jax.random.key(1)})
  b = jit_apply(model)(v, x, train=True, rngs={"dropout": jax.random.key(2)})
  assert not np.allclose(a, b)
  y = jit_apply(model)(v, x)  # eval mode: no dropout, the numpy forward (which has none)
  assert numpy_reference.rel_err(y - x, numpy_reference.generator(v, x) - x) < 1e-5
  assert not np.allclose(a, y)


def test_bad_window_is_one_clear_error():
  model = Generator(depth=4, width=0.03125)
  with pytest.raises(UserError, match="window 100 does not fit a depth-4 network"):
    jit_init(model, jnp.zeros((1, 100, 1)))


def test_zero_init_final_starts_as_identity_and_still_learns():
  model = Generator(depth=2, width=0.125, zero_init_final=True)
  v, x = init(model, 64)
  np.testing.assert_array_equal(jit_apply(model)(v, x), x)
  grads = jax.grad(lambda p: jnp.sum((jit_apply(model)({"params": p}, x) - 2 * x) ** 2))(v["params"])
  assert float(jnp.abs(grads["final"]["kernel"]).max()) > 0  # the final layer gets a gradient at once


@pytest.mark.parametrize("depth,window,impl", [(1, 32, "xla"), (2, 64, "xla"), (3, 128, "xla"), (3, 128, "fft")])
def test_matches_an_independent_numpy_float64_forward(depth, window, impl):
  """The whole U-Net (strided down convs, LeakyReLU, bottleneck, up convs + ReLU + subpixel + concat skips, final
  conv + subpixel + additive input skip) against tests/models/numpy_reference.py, with every weight perturbed so that
  biases matter; always runs (bench/torch_reference.py is the PyTorch comparison, only with torch installed)."""
  model = Generator(depth=depth, width=1 / 16, dropout=0.5, conv_impl=impl)
  x = jnp.asarray(np.random.default_rng(depth).standard_normal((3, window, 1)), jnp.float32)
  v = numpy_reference.perturbed(jit_init(model, x), seed=depth)
  got = np.asarray(jit_apply(model)(v, x), np.float64)
  want = numpy_reference.generator(v, x)
  assert got.shape == want.shape == (3, window, 1)
  delta, want_delta = got - np.asarray(x), want - np.asarray(x)  # what the network adds to its input
  assert np.abs(want_delta).max() > 0.1  # not a vanishing correction
  assert numpy_reference.rel_err(delta, want_delta) < 1e-5
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())


def test_leaky_up_blocks_match_numpy_and_keep_a_dead_block_learning():
  """model.up_activation=leaky_relu: the same parameters as relu's (checkpoints interchange), the numpy forward with
  leaky up blocks; and with every unit of the last up block negative on every input (its bias far below zero), the
  activations below it still reach the output, where relu's pass nothing (the music runs' dead network)."""
  x = jnp.asarray(np.random.default_rng(7).standard_normal((2, 256, 1)), jnp.float32)
  relu_model, leaky = Generator(depth=3, width=0.0625), Generator(depth=3, width=0.0625, up_activation="leaky_relu")
  v = numpy_reference.perturbed(jit_init(relu_model, x), seed=3)
  assert jax.tree.structure(jit_init(leaky, x)) == jax.tree.structure(v)
  got = np.asarray(jit_apply(leaky)(v, x), np.float64)
  want = numpy_reference.generator(v, x, up=numpy_reference.leaky_relu)
  assert numpy_reference.rel_err(got - np.asarray(x), want - np.asarray(x)) < 1e-5
  assert numpy_reference.rel_err(got - np.asarray(x), numpy_reference.generator(v, x) - np.asarray(x)) > 1e-2
  params = jax.tree.map(lambda a: a, v["params"])
  params["up_3"]["block"]["conv"]["bias"] = jnp.full_like(params["up_3"]["block"]["conv"]["bias"], -1e3)
  for model, alive in ((relu_model, False), (leaky, True)):
    h, skips = jit_apply(model)({"params": params}, x, method=Generator.encode)
    a = jit_apply(model)({"params": params}, h, skips, stop=2, method=Generator.decode)
    grad = jax.grad(lambda a: jnp.sum(model.apply({"params": params}, a, skips, start=2,
                                                   method=Generator.decode) ** 2))(a)
    assert (float(jnp.max(jnp.abs(grad))) > 0) == alive
    assert dead_up_blocks(model, params, x) == ([] if alive else ["up_3"])  # leaky blocks are never reported
  assert dead_up_blocks(relu_model, v["params"], x) == []  # a healthy relu network


def test_dead_up_blocks_takes_params_sharded_over_devices():
  """The check is compiled, so it takes params laid out over the devices (as a sharded run's state is) and the
  answer is the one of the same params on one device."""
  from jax.sharding import Mesh, NamedSharding, PartitionSpec
  x = jnp.asarray(np.random.default_rng(7).standard_normal((2, 256, 1)), jnp.float32)
  model = Generator(depth=3, width=0.0625)
  params = jax.tree.map(lambda a: a, jit_init(model, x)["params"])
  params["up_2"]["block"]["conv"]["bias"] = jnp.full_like(params["up_2"]["block"]["conv"]["bias"], -1e3)
  mesh = Mesh(np.array(jax.devices()), ("d",))

  def place(a):  # the last axis split over the devices where it divides, replicated otherwise
    split = a.ndim and a.shape[-1] % len(jax.devices()) == 0
    return jax.device_put(a, NamedSharding(mesh, PartitionSpec(*([None] * (a.ndim - 1)), "d") if split
                                           else PartitionSpec()))

  sharded = jax.tree.map(place, params)
  assert any(len(a.sharding.device_set) > 1 and not a.sharding.is_fully_replicated
             for a in jax.tree.leaves(sharded))
  assert dead_up_blocks(model, sharded, x) == dead_up_blocks(model, jax.device_get(params), x) == ["up_2"]


def test_unknown_up_activation_is_one_clear_error():
  from sr_jax import config as config_lib
  from sr_jax.models import build_generator

  c = config_lib.apply_overrides(config_lib.get_config(), "model.up_activation=gelu")
  with pytest.raises(UserError, match="model.up_activation must be one of relu, leaky_relu, got 'gelu'"):
    build_generator(c)
