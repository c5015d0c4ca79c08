import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.models import jit_apply, jit_init

from sr_jax.models import ConditionalDiscriminator, Discriminator, PatchDiscriminator
from sr_jax.models.summary import layer_table, window_spec


def x_of(batch, window, seed=0):
  return jax.random.normal(jax.random.key(seed), (batch, window, 1))


@pytest.mark.parametrize("depth,width,window", [(1, 0.0625, 32), (3, 0.0625, 256), (4, 0.03125, 128)])
def test_global_logits_shape(depth, width, window):
  d = Discriminator(depth=depth, width=width)
  v = jit_init(d, x_of(3, window))
  out = jit_apply(d)(v, x_of(3, window))
  assert out.shape == (3, 1) and out.dtype == jnp.float32


def test_conditional_uses_the_condition():
  d = ConditionalDiscriminator(depth=2, width=0.125, dropout=0.0)
  y, x = x_of(2, 64, 0), x_of(2, 64, 1)
  v = jit_init(d, y, x)
  assert v["params"]["down_1"]["conv"]["kernel"].shape == (65, 2, 16)  # candidate + condition channels
  assert not np.allclose(jit_apply(d)(v, y, x), jit_apply(d)(v, y, x * 0))
  with pytest.raises(ValueError, match="needs the degraded input"):
    jit_apply(d)(v, y)


@pytest.mark.parametrize("conditional", [False, True])
def test_patch_logits_one_per_patch(conditional):
  d = PatchDiscriminator(depth=3, width=0.0625, conditional=conditional)
  y = x_of(2, 256)
  args = (y, y) if conditional else (y,)
  v = jit_init(d, *args)
  out = jit_apply(d)(v, *args)
  assert out.shape == (2, 256 // 8, 1)
  # fully convolutional: a longer window gives more patches with the same params
  long = x_of(2, 512)
  assert jit_apply(d)(v, *((long, long) if conditional else (long,))).shape == (2, 64, 1)


def test_patch_receptive_field_is_what_one_logit_sees():
  d = PatchDiscriminator(depth=2, width=0.125, head_kernel=3)
  assert d.receptive_field() == 2 * (2 * (3 - 1) + 33 - 1) + 65  # hand-worked: 137
  y = x_of(1, 1024)
  v = jit_init(d, y)
  # gradient of one logit w.r.t. the input is nonzero exactly on a span <= the receptive field
  g = jax.grad(lambda y: jit_apply(d)(v, y)[0, 128, 0])(y)
  nz = np.nonzero(np.asarray(g[0, :, 0]))[0]
  assert 0 < nz[-1] - nz[0] + 1 <= d.receptive_field()
  assert nz[-1] - nz[0] + 1 > d.receptive_field() - 2 * 4  # up to stride alignment


def test_batchnorm_stats_update_only_when_mutable():
  d = Discriminator(depth=2, width=0.125)
  y = x_of(4, 64) * 3 + 1
  v = jit_init(d, y)
  stats = v["batch_stats"]
  out, new = jit_apply(d)(v, y, train=True, rngs={"dropout": jax.random.key(1)}, mutable=["batch_stats"])
  changed = jax.tree.map(lambda a, b: not np.allclose(a, b), stats, new["batch_stats"])
  assert all(jax.tree.leaves(changed))
  # eval mode uses the running averages and does not need (or change) them
  e1 = jit_apply(d)(v, y)
  e2 = jit_apply(d)(v, y)
  np.testing.assert_array_equal(e1, e2)
  with pytest.raises(Exception, match="batch_stats"):  # train mode without mutable collections is refused
    jit_apply(d)(v, y, train=True, rngs={"dropout": jax.random.key(1)})


def test_original_size_parameter_count():
  _, total = layer_table(Discriminator(depth=8), window_spec(1, 8192))
  assert total == 15_141_121  # 15.1M as the original
