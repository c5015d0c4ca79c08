import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.models import jit_apply, jit_init, numpy_reference

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
  # eval mode uses the running averages (numpy: normalised by them, not by the batch's statistics)
  v = numpy_reference.perturbed(v)
  want, _ = numpy_reference.discriminator(v, y)
  np.testing.assert_allclose(jit_apply(d)(v, y), want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
  with pytest.raises(Exception, match="batch_stats"):  # train mode without mutable collections is refused
    jit_apply(d)(v, y, train=True, rngs={"dropout": jax.random.key(1)})


def test_original_size_parameter_count():
  _, total = layer_table(Discriminator(depth=8), window_spec(1, 8192))
  assert total == 15_141_121  # 15.1M as the original


CASES = {
    "global": lambda: Discriminator(depth=3, width=1 / 16, dropout=0.0),
    "conditional": lambda: ConditionalDiscriminator(depth=2, width=1 / 16, dropout=0.0),
    "patch": lambda: PatchDiscriminator(depth=3, width=1 / 16, head_kernel=5),
    "conditional_patch": lambda: PatchDiscriminator(depth=2, width=1 / 16, conditional=True),
}


@pytest.mark.parametrize("kind", sorted(CASES))
@pytest.mark.parametrize("train", [False, True])
def test_logits_match_an_independent_numpy_float64_forward(kind, train):
  """Logits (and, in train mode, the updated BatchNorm running statistics) against tests/models/numpy_reference.py:
  eval mode normalises by the running statistics, train mode (as in every GAN step; dropout 0 here) by the batch's."""
  d = CASES[kind]()
  y, x = x_of(4, 64, 0), x_of(4, 64, 1) * 0.5
  args = (y, x) if d.conditional else (y,)
  v = numpy_reference.perturbed(jit_init(d, *args), seed=3)
  want, want_stats = numpy_reference.discriminator(v, *args, train=train)
  if train:
    got, new = jit_apply(d)(v, *args, train=True, rngs={"dropout": jax.random.key(0)}, mutable=["batch_stats"])
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), dict(new["batch_stats"]),
                 want_stats)
  else:
    got = jit_apply(d)(v, *args)
  assert got.shape == want.shape == ((4, 1) if kind in ("global", "conditional") else (4, 64 // 2 ** d.depth, 1))
  assert np.std(want) > 0.05  # logits that differ between windows and patches
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
  if d.conditional:  # the condition enters first on the channels: swapping candidate and condition changes D
    swapped, _ = numpy_reference.discriminator(v, x, y, train=train)
    assert not np.allclose(swapped, want, atol=1e-3)
