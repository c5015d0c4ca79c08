import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.models import jit_apply, jit_init

from sr_jax.errors import UserError
from sr_jax.models import Generator
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
  np.testing.assert_array_equal(y, jit_apply(model)(v, x))
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
  np.testing.assert_array_equal(jit_apply(model)(v, x), jit_apply(model)(v, x))
  np.testing.assert_array_equal(jit_apply(model)(v, x, train=True, rngs={"dropout": jax.random.key(1)}), a)


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
