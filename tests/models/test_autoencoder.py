import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.models import jit_apply, jit_init, numpy_reference

from sr_jax.models import AutoEncoder
from sr_jax.models.summary import layer_table, window_spec


@pytest.mark.parametrize("depth,width,window", [(1, 0.0625, 64), (3, 0.0625, 256), (4, 0.03125, 96)])
def test_shapes(depth, width, window):
  ae = AutoEncoder(depth=depth, width=width)
  x = jax.random.normal(jax.random.key(0), (2, window, 1))
  v = jit_init(ae, x)
  feats, rec = jit_apply(ae)(v, x)
  assert rec.shape == (2, window, 1) and rec.dtype == jnp.float32
  c = max(2, 2 * round(min(2 ** (6 + depth), 512) * width / 2))
  assert feats.shape == (2, window // 2 ** (depth + 1), c)


def test_up_widths_equal_generator_post_concat_widths():
  rows, _ = layer_table(AutoEncoder(depth=4), window_spec(1, 1024))
  shapes = {n: s for n, s, _ in rows}
  assert [shapes[f"up_{l}"] for l in range(1, 5)] == [(64, 1024), (128, 1024), (256, 512), (512, 256)]


def test_no_input_skip():
  ae = AutoEncoder(depth=2, width=0.125)
  x = jax.random.normal(jax.random.key(0), (1, 64, 1))
  v = jit_init(ae, x)
  zero = jax.tree.map(jnp.zeros_like, v)
  _, rec = jit_apply(ae)(zero, x)
  np.testing.assert_array_equal(rec, np.zeros_like(x))  # a generator would return x here


def test_original_size_parameter_count():
  _, total = layer_table(AutoEncoder(depth=8), window_spec(1, 8192))
  assert total == 189_731_586  # 189.7M as the original


@pytest.mark.parametrize("train", [False, True])
def test_matches_an_independent_numpy_float64_forward(train):
  """Features and reconstruction (and the BatchNorm statistics a train-mode call updates) against
  tests/models/numpy_reference.py; dropout 0, every weight perturbed."""
  ae = AutoEncoder(depth=3, width=1 / 16, dropout=0.0)
  x = jax.random.normal(jax.random.key(2), (3, 128, 1))
  v = numpy_reference.perturbed(jit_init(ae, x), seed=5)
  want_feats, want_rec, want_stats = numpy_reference.autoencoder(v, x, train=train)
  if train:
    (feats, rec), new = jit_apply(ae)(v, x, train=True, rngs={"dropout": jax.random.key(0)}, mutable=["batch_stats"])
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), dict(new["batch_stats"]),
                 want_stats)
  else:
    feats, rec = jit_apply(ae)(v, x)
  assert feats.shape == want_feats.shape == (3, 8, 32) and rec.shape == want_rec.shape == (3, 128, 1)
  assert numpy_reference.rel_err(feats, want_feats) < 1e-5
  assert numpy_reference.rel_err(rec, want_rec) < 1e-5
  np.testing.assert_allclose(rec, want_rec, rtol=0, atol=1e-5 * np.abs(want_rec).max())
