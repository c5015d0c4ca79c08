"""The spectral mask front-end (sr_jax.models.mask) against a numpy float64 forward built on scipy's STFT, and inside
the generator."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.signal

from tests.models import jit_apply, jit_init, numpy_reference

from sr_jax.errors import UserError
from sr_jax.models import Generator, SpectralMask, build_generator
from sr_jax.models.mask import GAIN_BIAS, LOG_POWER_FLOOR, PHASE_MAX_GAIN, check_mask_settings
from sr_jax.models.summary import layer_table, window_spec
from sr_jax.train import state as state_lib
from tests.train.helpers import tiny_config


def gelu(x):  # flax's default: the tanh approximation
  return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def layer_norm(x, p):
  mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
  return (x - mean) / np.sqrt(var + 1e-6) * p["scale"] + p["bias"]


def dilated_conv(x, p, dilation):
  """'SAME' conv over frames (axis 0) with kernel 3 and zero padding: y[t] = sum_k x[t + (k - 1) d] @ W[k] + b."""
  frames = len(x)
  padded = np.pad(x, ((dilation, dilation), (0, 0)))
  return sum(padded[k * dilation:k * dilation + frames] @ p["kernel"][k] for k in range(3)) + p["bias"]


def numpy_mask(params, x, n_fft, hop, layers, phase=False):
  """One signal (W,) through the front-end in float64, its STFT and inverse from scipy.signal."""
  p = numpy_reference.as64(params)
  window = scipy.signal.get_window("hann", n_fft)
  _, _, z = scipy.signal.stft(x, window=window, nperseg=n_fft, noverlap=n_fft - hop, boundary="even", padded=False,
                              detrend=False)
  spectrum = z.T * window.sum()  # (frames, bins), unnormalised
  features = np.log(np.abs(spectrum) ** 2 + LOG_POWER_FLOOR)
  h = (features - features.mean()) @ p["in"]["kernel"] + p["in"]["bias"]
  for b in range(layers):
    h = h + dilated_conv(gelu(layer_norm(h, p[f"norm_{b}"])), p[f"block_{b + 1}"], 2 ** (b % 4))
  logits = gelu(layer_norm(h, p["norm_out"])) @ p["out"]["kernel"] + p["out"]["bias"]
  gains = 1 / (1 + np.exp(-logits))
  if phase:  # magnitude 2 sigmoid(out), turned by the angle of (1 + a) + i b
    turn = gelu(layer_norm(h, p["norm_out"])) @ p["turn"]["kernel"] + p["turn"]["bias"]
    a, b = np.split(turn, 2, axis=-1)
    gains = PHASE_MAX_GAIN * gains * np.exp(1j * np.arctan2(b, 1 + a))
  _, y = scipy.signal.istft((spectrum * gains).T / window.sum(), window=window, nperseg=n_fft, noverlap=n_fft - hop)
  return y[:len(x)], gains


@pytest.mark.parametrize("n_fft,hop,layers,phase", [(64, 16, 5, False), (32, 16, 0, False), (128, 32, 2, False),
                                                    (64, 16, 3, True), (32, 16, 0, True)])
def test_matches_an_independent_numpy_float64_forward(n_fft, hop, layers, phase):
  model = SpectralMask(n_fft=n_fft, hop=hop, channels=12, layers=layers, phase=phase)
  x = np.random.default_rng(n_fft).standard_normal((2, 512)).astype(np.float32)
  v = numpy_reference.perturbed(jit_init(model, jnp.asarray(x)), seed=layers, scale=1.0)
  v["params"]["out"]["bias"] = jnp.asarray(np.random.default_rng(1).normal(0, 1, n_fft // 2 + 1), jnp.float32)
  got = np.asarray(jit_apply(model)(v, jnp.asarray(x)), np.float64)
  _, got_gains = jax.jit(lambda v, x: model.apply(v, x, method=SpectralMask.gains))(v, jnp.asarray(x))
  for i in range(2):
    want, want_gains = numpy_mask(v["params"], x[i].astype(np.float64), n_fft, hop, layers, phase)
    size = np.abs(want_gains) / (PHASE_MAX_GAIN if phase else 1)
    assert 1e-3 < size.min() and size.max() < 0.999 and size.std() > 0.1  # gains that matter
    assert not phase or np.std(np.angle(want_gains)) > 0.3  # and turns that matter
    np.testing.assert_allclose(np.asarray(got_gains[i]), want_gains, atol=2e-5)
    np.testing.assert_allclose(got[i], want, atol=1e-5 * np.abs(want).max())
    assert np.sqrt(np.mean((want - x[i]) ** 2)) > 0.2 * np.sqrt(np.mean(x[i] ** 2))  # it changed the signal


def test_starts_almost_transparent_and_all_pass_gains_return_the_input():
  model = SpectralMask(n_fft=64, hop=16, channels=16, layers=2)
  x = jnp.asarray(np.random.default_rng(0).standard_normal((3, 1024)), jnp.float32)
  v = jit_init(model, x)
  _, gains = jax.jit(lambda v, x: model.apply(v, x, method=SpectralMask.gains))(v, x)
  assert float(jnp.mean(gains)) > 0.9 and float(jnp.min(gains)) > 0.5  # sigmoid(GAIN_BIAS + small logits)
  assert 1 / (1 + np.exp(-GAIN_BIAS)) > 0.98
  out_layer = dict(v["params"]["out"], kernel=jnp.zeros_like(v["params"]["out"]["kernel"]),
                   bias=jnp.full_like(v["params"]["out"]["bias"], 40.0))  # every gain 1 to float32 rounding
  all_pass = {"params": dict(v["params"], out=out_layer)}
  np.testing.assert_allclose(np.asarray(jit_apply(model)(all_pass, x)), np.asarray(x), atol=2e-5)


def test_a_phase_mask_starts_as_the_identity_and_a_quarter_turn_gives_minus_sine():
  """Hand-worked: a gain of i on every bin turns cos(w t) (w on a bin's centre) into Re(i e^{iwt}) = -sin(w t)."""
  model = SpectralMask(n_fft=64, hop=16, channels=16, layers=2, phase=True)
  t = np.arange(1024)
  x = jnp.asarray(np.stack([np.cos(2 * np.pi * 5 / 64 * t), np.random.default_rng(0).standard_normal(1024)]),
                  jnp.float32)
  v = jit_init(model, x)
  _, gains = jax.jit(lambda v, x: model.apply(v, x, method=SpectralMask.gains))(v, x)
  np.testing.assert_allclose(np.asarray(gains), 1.0, atol=1e-6)  # zero-initialised heads: exactly the identity
  np.testing.assert_allclose(np.asarray(jit_apply(model)(v, x)), np.asarray(x), atol=2e-5)
  turn = dict(v["params"]["turn"], bias=jnp.concatenate([jnp.full(33, -1.0), jnp.full(33, 1.0)]))  # (1 + a, b) = (0, 1)
  quarter = {"params": dict(v["params"], turn=turn)}
  out = np.asarray(jit_apply(model)(quarter, x))
  inner = slice(64, -64)  # the ends see the centred STFT's mirrored padding, whose turn is not a sine's
  np.testing.assert_allclose(out[0, inner], -np.sin(2 * np.pi * 5 / 64 * t[inner]), atol=2e-5)


def test_a_phase_mask_learns_a_delay_that_a_real_mask_cannot():
  """A 3-sample delay turns bin k by 3 w_k: the best real gain is max(cos, 0) per bin, far from the target, while the
  complex gain represents it exactly (Adam, 300 steps, the same tiny network)."""
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((8, 1024)), jnp.float32)
  y = jnp.roll(x, 3, axis=-1)
  left = {}
  for phase in (False, True):
    model = SpectralMask(n_fft=64, hop=16, channels=8, layers=0, phase=phase)
    v, tx = jit_init(model, x), optax.adam(3e-2)
    loss = lambda v: jnp.mean((model.apply(v, x)[:, 64:-64] - y[:, 64:-64]) ** 2) / jnp.mean(y ** 2)  # noqa: B023

    @jax.jit
    def step(v, s):
      g = jax.grad(loss)(v)  # noqa: B023
      u, s = tx.update(g, s, v)  # noqa: B023
      return optax.apply_updates(v, u), s

    s = tx.init(v)
    for _ in range(300):
      v, s = step(v, s)
    left[phase] = float(loss(v))
  assert left[False] > 0.5 and left[True] < 1e-2, left


def test_gains_do_not_depend_on_the_input_level():
  model = SpectralMask(n_fft=64, hop=16, channels=16, layers=2)
  x = jnp.asarray(np.random.default_rng(1).standard_normal((1, 1024)), jnp.float32)
  v = numpy_reference.perturbed(jit_init(model, x), seed=1, scale=1.0)
  gains = jax.jit(lambda v, x: model.apply(v, x, method=SpectralMask.gains)[1])
  np.testing.assert_allclose(np.asarray(gains(v, 0.01 * x)), np.asarray(gains(v, x)), atol=5e-3)  # float32
  other = jnp.asarray(np.random.default_rng(2).standard_normal((1, 1024)), jnp.float32)
  assert float(jnp.abs(gains(v, other) - gains(v, x)).max()) > 0.1  # while another signal gets other gains


def test_generator_with_a_mask_runs_the_unet_on_the_masked_input():
  gen = Generator(depth=2, width=0.125, dropout=0.0, zero_init_final=True, mask_channels=8, mask_fft=32, mask_hop=8,
                  mask_layers=2)
  x = jnp.asarray(np.random.default_rng(2).standard_normal((2, 256, 1)), jnp.float32)
  v = numpy_reference.perturbed(jit_init(gen, x), seed=2, scale=1.0)
  v["params"]["final"] = jax.tree.map(jnp.zeros_like, v["params"]["final"])  # the U-Net adds nothing
  mask = SpectralMask(n_fft=32, hop=8, channels=8, layers=2)
  masked = jit_apply(mask)({"params": v["params"]["mask"]}, x[..., 0])
  assert float(jnp.sqrt(jnp.mean((masked - x[..., 0]) ** 2))) > 0.05  # the mask does something
  np.testing.assert_allclose(np.asarray(jit_apply(gen)(v, x))[..., 0], np.asarray(masked), atol=1e-6)
  h, skips = jax.jit(lambda v, x: gen.apply(v, x, method=Generator.encode))(v, x)
  np.testing.assert_allclose(np.asarray(skips[0])[..., 0], np.asarray(masked), atol=1e-6)  # the additive skip too


def test_mask_settings_mistakes_are_one_clear_error():
  check_mask_settings(512, 128, 256, 6, 8192)  # the recipes' settings run
  for settings, match in (((500, 128, 256, 6, 8192), "multiple of model.mask_hop"),
                          ((128, 128, 256, 6, 8192), "at least twice"), ((512, 128, 256, 6, 8000), "data.window"),
                          ((512, 128, 256, -1, 8192), "mask_layers")):
    with pytest.raises(UserError, match=match):
      check_mask_settings(*settings)
  config = tiny_config(**{"model.mask_channels": 8, "model.mask_fft": 40, "model.mask_hop": 16})  # window 64
  with pytest.raises(UserError, match="model.mask_fft must be a multiple of model.mask_hop"):
    state_lib.check_config(config)
  with pytest.raises(UserError, match="model.mask_fft must be a multiple of model.mask_hop"):
    build_generator(config)
  for key, value, match in (("model.mask_channels", -1, "mask_channels must be >= 0"),
                            ("optim.mask_lr_scale", 0.0, "mask_lr_scale must be > 0")):
    with pytest.raises(UserError, match=match):
      state_lib.check_config(tiny_config(**{key: value}))


def test_mask_lr_scale_multiplies_only_the_mask_updates():
  """Adam's first step moves every weight by lr * g / (|g| + eps), i.e. by lr against the sign of its gradient: the
  mask's by mask_lr_scale times that."""
  config = tiny_config(**{"optim.schedule": "constant", "optim.grad_clip": 0.0, "optim.mask_lr_scale": 5.0})
  params = {"mask": {"w": jnp.ones(3)}, "down_1": {"w": jnp.ones(3)}}
  grads = {"mask": {"w": jnp.array([1.0, -2.0, 3.0])}, "down_1": {"w": jnp.array([-1.0, 2.0, 0.5])}}
  tx = state_lib.make_optimizers(config).gen
  updates, _ = tx.update(grads, tx.init(params), params)
  lr = config.optim.lr_g
  np.testing.assert_allclose(np.asarray(updates["mask"]["w"]), -5 * lr * np.sign([1.0, -2.0, 3.0]), rtol=1e-5)
  np.testing.assert_allclose(np.asarray(updates["down_1"]["w"]), -lr * np.sign([-1.0, 2.0, 0.5]), rtol=1e-5)
  plain = state_lib.make_optimizers(tiny_config(**{"optim.schedule": "constant", "optim.grad_clip": 0.0})).gen
  updates, _ = plain.update(grads, plain.init(params), params)
  np.testing.assert_allclose(np.asarray(updates["mask"]["w"]), -lr * np.sign([1.0, -2.0, 3.0]), rtol=1e-5)


def test_layer_table_lists_the_mask_first_with_its_hand_counted_weights():
  """in: bins*C + C; per block LayerNorm 2C + conv 3*C*C + C; norm_out 2C; out C*bins + bins."""
  gen = Generator(depth=2, width=0.125, mask_channels=8, mask_fft=32, mask_hop=8, mask_layers=3)
  rows, total = layer_table(gen, window_spec(1, 256))
  bins, c = 17, 8
  want = bins * c + c + 3 * (2 * c + 3 * c * c + c) + 2 * c + c * bins + bins
  assert rows[0] == ("mask", (256,), want)
  _, without = layer_table(Generator(depth=2, width=0.125), window_spec(1, 256))
  assert total == without + want
  rows, _ = layer_table(Generator(depth=2, width=0.125, mask_channels=8, mask_fft=32, mask_hop=8, mask_layers=3,
                                  mask_phase=True), window_spec(1, 256))
  assert rows[0] == ("mask", (256,), want + c * 2 * bins + 2 * bins)  # the turn head: dense C -> 2 bins
