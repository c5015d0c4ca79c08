"""model.conv_impl="fft": fft_conv1d against the definition and lax (values and gradients), FFTConv's params against
nn.Conv's, and networks built with "fft" against "xla" from the same params (eval, dropout, bfloat16, collaborative
sampling)."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from tests.models import jit_apply, jit_init

from configs import tiny
from sr_jax import config as config_lib
from sr_jax.errors import UserError
from sr_jax.models import AutoEncoder, Generator, PatchDiscriminator, build_generator
from sr_jax.models.fftconv import FFTConv, fast_size, fft_conv1d, fft_size
from sr_jax.models.layers import FFT_MIN_KERNEL, conv, uses_fft
from sr_jax.sampling import make_collaborative_sampler


def correlation_reference(x, kernel):
  """float64, from the definition: out[n, t, o] = sum_{i, c} x[n, t + i - k//2, c] kernel[i, c, o], x = 0 outside."""
  x, kernel = np.asarray(x, np.float64), np.asarray(kernel, np.float64)
  k, p, w = kernel.shape[0], kernel.shape[0] // 2, x.shape[1]
  padded = np.pad(x, ((0, 0), (p, p), (0, 0)))
  return sum(padded[:, i:i + w, :] @ kernel[i] for i in range(k))


def lax_conv(x, kernel):
  p = kernel.shape[0] // 2
  return lax.conv_general_dilated(x, kernel, (1,), [(p, p)], dimension_numbers=("NWC", "WIO", "NWC"))


def rel_err(a, b) -> float:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def perturbed(params, seed=3, scale=0.05):
  """Every param plus noise: nonzero biases and final conv (the init has zeros there)."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda p: p + scale * rng.standard_normal(p.shape).astype(np.float32), params)


def data(shape_x, shape_k, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal(shape_x).astype(np.float32)
  kernel = (rng.standard_normal(shape_k) / np.sqrt(shape_k[0] * shape_k[1])).astype(np.float32)
  return jnp.asarray(x), jnp.asarray(kernel)


_fft_conv = jax.jit(fft_conv1d)
_lax_conv = jax.jit(lax_conv)


@pytest.mark.parametrize("k", [9, 17, 33, 65])
@pytest.mark.parametrize("w", [1, 7, 40, 128])  # W < k, W ~ k, W > k
def test_fft_conv_is_the_cross_correlation(k, w):
  x, kernel = data((2, w, 3), (k, 3, 5))
  ref = correlation_reference(x, kernel)
  out = _fft_conv(x, kernel)
  assert out.shape == (2, w, 5) and out.dtype == jnp.float32
  assert rel_err(out, ref) < 1e-5
  assert rel_err(_lax_conv(x, kernel), ref) < 1e-5  # the same semantics as lax (not a flipped kernel)


def test_fft_conv_single_channels_and_an_asymmetric_kernel():
  # one tap at offset +3: out[t] = 2 x[t + 3]: a flipped kernel or a wrong shift would move it
  kernel = np.zeros((17, 1, 1), np.float32)
  kernel[8 + 3] = 2.0
  x = jnp.arange(1.0, 21.0).reshape(1, 20, 1)
  expected = np.concatenate([2 * np.arange(4.0, 21.0), np.zeros(3)])
  np.testing.assert_allclose(np.asarray(_fft_conv(x, jnp.asarray(kernel)))[0, :, 0], expected, atol=1e-4)


def test_fft_sizes_are_fast_and_large_enough():
  assert [fast_size(m) for m in (1, 7, 11, 272, 289, 1028)] == [1, 8, 12, 288, 300, 1080]
  for w in (1, 3, 64, 256, 512, 1000):
    for k in (9, 17, 33, 65):
      n = fft_size(w, k)
      assert n >= max(w + k // 2, k)
      rest = n
      for prime in (2, 3, 5):
        while rest % prime == 0:
          rest //= prime
      assert rest == 1


def test_fft_conv_rejects_even_kernels_and_bad_shapes():
  with pytest.raises(ValueError, match="odd kernel"):
    fft_conv1d(jnp.zeros((1, 8, 2)), jnp.zeros((4, 2, 3)))
  with pytest.raises(ValueError, match="kernel"):
    fft_conv1d(jnp.zeros((1, 8, 2)), jnp.zeros((5, 3, 3)))


@pytest.mark.parametrize("k,w", [(17, 50), (65, 20)])
def test_gradients_match_lax(k, w):
  x, kernel = data((2, w, 4), (k, 4, 3), seed=1)

  def grads(f):
    return jax.jit(jax.grad(lambda x, kernel: jnp.sum(f(x, kernel) ** 2), argnums=(0, 1)))(x, kernel)

  for got, want in zip(grads(fft_conv1d), grads(lax_conv)):
    assert rel_err(got, want) < 1e-5


@pytest.mark.parametrize("zero_init", [False, True])
def test_fft_conv_module_has_nn_conv_params(zero_init):
  x, _ = data((2, 30, 4), (1, 1, 1))
  fft, xla = conv(6, 17, 1, jnp.float32, zero_init=zero_init, impl="fft"), conv(6, 17, 1, jnp.float32,
                                                                                zero_init=zero_init)
  assert isinstance(fft, FFTConv) and isinstance(xla, nn.Conv)
  v_fft, v_xla = jax.jit(fft.init)(jax.random.key(0), x), jax.jit(xla.init)(jax.random.key(0), x)
  assert jax.tree.structure(v_fft) == jax.tree.structure(v_xla)
  jax.tree.map(np.testing.assert_array_equal, v_fft, v_xla)  # same names, shapes, initialisers, values
  assert v_fft["params"]["kernel"].shape == (17, 4, 6) and v_fft["params"]["bias"].shape == (6,)
  assert (float(jnp.abs(v_fft["params"]["kernel"]).max()) == 0) == zero_init
  v = {"params": perturbed(v_xla["params"])}  # a nonzero bias too
  assert rel_err(jax.jit(fft.apply)(v, x), jax.jit(xla.apply)(v, x)) < 1e-5


def test_which_convs_use_fft():
  assert FFT_MIN_KERNEL == 17
  assert uses_fft(17, 1, "fft") and uses_fft(65, 1, "fft")
  assert not uses_fft(9, 1, "fft") and not uses_fft(65, 2, "fft") and not uses_fft(18, 1, "fft")
  assert not uses_fft(65, 1, "xla")
  with pytest.raises(UserError, match="model.conv_impl must be one of"):
    uses_fft(65, 1, "cudnn")


@functools.cache
def _pair(window=128, dropout=0.0):
  """(xla generator, fft generator, perturbed params, x): depth 2, so the up blocks' kernels are 33 and 65."""
  xla = Generator(depth=2, width=0.0625, dropout=dropout)
  fft = Generator(depth=2, width=0.0625, dropout=dropout, conv_impl="fft")
  x = jax.random.normal(jax.random.key(1), (2, window, 1))
  return xla, fft, {"params": perturbed(jit_init(xla, x)["params"])}, x


def test_generator_fft_same_params_and_output():
  xla, fft, v, x = _pair()
  v_xla, v_fft = jit_init(xla, x), jit_init(fft, x)
  assert jax.tree.structure(v_xla) == jax.tree.structure(v_fft)
  jax.tree.map(np.testing.assert_array_equal, v_xla, v_fft)  # the same init: checkpoints are interchangeable
  assert "fft" in str(jax.make_jaxpr(lambda v, x: fft.apply(v, x))(v, x))  # up blocks: kernels 33, 65
  assert "fft" not in str(jax.make_jaxpr(lambda v, x: xla.apply(v, x))(v, x))
  y_xla, y_fft = jit_apply(xla)(v, x), jit_apply(fft)(v, x)
  assert rel_err(y_fft - x, y_xla - x) < 1e-4  # (gradients through the generator: the collaborative test)


def test_generator_fft_train_mode_with_dropout():
  xla, fft, v, x = _pair(dropout=0.5)
  rngs = {"dropout": jax.random.key(7)}
  y_fft = jit_apply(fft)(v, x, train=True, rngs=rngs)
  assert rel_err(y_fft - x, jit_apply(xla)(v, x, train=True, rngs=rngs) - x) < 1e-4  # the same masks
  assert not np.allclose(y_fft, jit_apply(fft)(v, x))  # dropout acted


def test_generator_fft_bfloat16():
  _, fft, v, x = _pair()
  bf16 = Generator(depth=2, width=0.0625, conv_impl="fft", dtype=jnp.bfloat16)
  y = jit_apply(bf16)(v, x)
  assert y.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(y)))
  y32 = jit_apply(fft)(v, x)
  assert rel_err(y - x, y32 - x) < 0.05  # bf16 rounding between the layers only
  y_xla16 = jit_apply(Generator(depth=2, width=0.0625, dtype=jnp.bfloat16))(v, x)
  assert rel_err(y - x, y_xla16 - x) < 0.05


def test_other_networks_keep_their_params():
  x = jax.ShapeDtypeStruct((1, 256, 1), jnp.float32)
  for make in (lambda impl: AutoEncoder(depth=3, width=0.0625, conv_impl=impl),
               lambda impl: PatchDiscriminator(depth=2, width=0.0625, head_kernel=17, conv_impl=impl)):
    shapes = [jax.tree.map(lambda a: a.shape, jax.eval_shape(make(impl).init, jax.random.key(0), x))
              for impl in ("xla", "fft")]
    assert shapes[0] == shapes[1]


def test_builder_reads_conv_impl_with_a_default():
  c = tiny.get_config()
  assert build_generator(c).conv_impl == "xla"
  c.model.conv_impl = "fft"
  assert build_generator(c).conv_impl == "fft"
  old = c.to_dict()  # a config saved before the knob existed: completed with the defaults when it is read
  del old["model"]["conv_impl"]
  assert build_generator(config_lib.complete(old)).conv_impl == "xla"
  c.model.conv_impl = "nope"
  with pytest.raises(UserError, match="model.conv_impl"):
    build_generator(c)


def test_collaborative_sampling_with_fft_generator():
  from sr_jax.models import Discriminator  # noqa: PLC0415

  xla, fft, v, _ = _pair(window=64, dropout=0.5)
  disc = Discriminator(depth=2, width=0.0625, dropout=0.5)
  x = 0.3 * jnp.sin(jnp.linspace(0, 60, 64))[None, :, None] * jnp.ones((4, 1, 1))
  x = x + 0.05 * jax.random.normal(jax.random.key(2), x.shape)
  disc_vars = jax.jit(disc.init)(jax.random.key(1), x)
  out = [make_collaborative_sampler(g, disc, eta=1.0, max_steps=2, layer=1, step_size=1.0)(v["params"], disc_vars, x)
         for g in (xla, fft)]
  assert int(out[1][1]["iterations"]) == 2
  assert rel_err(out[1][0] - x, out[0][0] - x) < 1e-3
  np.testing.assert_allclose(out[1][1]["prob"], out[0][1]["prob"], rtol=1e-4)
