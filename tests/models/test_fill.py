"""The spectral fill (sr_jax.models.fill) against a numpy float64 forward built on scipy's STFT, and inside the
generator."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal

from tests.models import jit_apply, jit_init, numpy_reference
from tests.models.test_mask import dilated_conv, gelu, layer_norm

from sr_jax.errors import UserError
from sr_jax.models import Generator, SpectralFill, build_generator
from sr_jax.models.fill import FILL_BIAS, FILL_MAX_LOG
from sr_jax.models.mask import LOG_POWER_FLOOR
from sr_jax.models.summary import layer_table, window_spec
from sr_jax.train import state as state_lib
from tests.train.helpers import tiny_config


def scipy_stft(x, n_fft, hop):
  window = scipy.signal.get_window("hann", n_fft)
  _, _, z = scipy.signal.stft(x, window=window, nperseg=n_fft, noverlap=n_fft - hop, boundary="even", padded=False,
                              detrend=False)
  return z.T * window.sum(), window  # (frames, bins), unnormalised


def numpy_fill(params, y, n_fft, hop, layers):
  """One signal (W,) through the fill in float64: (output, fill magnitudes); phases uniform in [0, 2 pi) from
  numpy's default_rng(0), the module's documented draw."""
  p = numpy_reference.as64(params)
  spectrum, window = scipy_stft(y, n_fft, hop)
  power = np.abs(spectrum) ** 2
  ref = np.log(power.mean() + LOG_POWER_FLOOR)
  h = (np.log(power + LOG_POWER_FLOOR) - ref) @ p["in"]["kernel"] + p["in"]["bias"]
  for b in range(layers):
    h = h + dilated_conv(gelu(layer_norm(h, p[f"norm_{b}"])), p[f"block_{b + 1}"], 2 ** (b % 4))
  logits = gelu(layer_norm(h, p["norm_out"])) @ p["out"]["kernel"] + p["out"]["bias"]
  magnitude = np.exp(0.5 * ref + np.minimum(logits, FILL_MAX_LOG))
  phases = np.random.default_rng(0).uniform(0.0, 2.0 * np.pi, magnitude.shape)
  _, fill = scipy.signal.istft((magnitude * np.exp(1j * phases)).T / window.sum(), window=window, nperseg=n_fft,
                               noverlap=n_fft - hop)
  return y + fill[:len(y)], magnitude


def magnitudes(model):
  return jax.jit(lambda v, x: model.apply(v, x, method=SpectralFill.magnitudes))


@pytest.mark.parametrize("n_fft,hop,layers", [(64, 16, 3), (32, 16, 0), (128, 32, 2)])
def test_matches_an_independent_numpy_float64_forward(n_fft, hop, layers):
  model = SpectralFill(n_fft=n_fft, hop=hop, channels=12, layers=layers)
  y = np.random.default_rng(n_fft).standard_normal((2, 512)).astype(np.float32)
  y[1] *= 0.01  # another level
  v = numpy_reference.perturbed(jit_init(model, jnp.asarray(y)), seed=layers, scale=1.0)
  v["params"]["out"]["bias"] = jnp.asarray(np.random.default_rng(1).normal(-3, 1, n_fft // 2 + 1), jnp.float32)
  got = np.asarray(jit_apply(model)(v, jnp.asarray(y)), np.float64)
  got_magnitudes = np.asarray(magnitudes(model)(v, jnp.asarray(y)))
  for i in range(2):
    want, want_magnitudes = numpy_fill(v["params"], y[i].astype(np.float64), n_fft, hop, layers)
    assert want_magnitudes.std() > 0.2 * want_magnitudes.mean()  # magnitudes that differ per bin
    np.testing.assert_allclose(got_magnitudes[i], want_magnitudes, rtol=2e-4)
    fill = want - y[i]
    assert np.sqrt(np.mean(fill ** 2)) > 0.02 * np.sqrt(np.mean(y[i] ** 2))  # it added something
    np.testing.assert_allclose(got[i] - y[i], fill, atol=1e-4 * np.abs(fill).max())


def test_starts_forty_db_under_the_mean_bin_power_on_every_bin():
  """Hand-worked: kernel 0, bias -4.6: every magnitude is exp(-4.6) sqrt(mean |S|^2), a power 40 dB under the
  mean bin power."""
  model = SpectralFill(n_fft=64, hop=16, channels=8, layers=2)
  y = np.random.default_rng(3).standard_normal((2, 1024)).astype(np.float32) * np.array([[1.0], [0.05]], np.float32)
  v = jit_init(model, jnp.asarray(y))
  got = np.asarray(magnitudes(model)(v, jnp.asarray(y)))
  for i in range(2):
    spectrum, _ = scipy_stft(y[i].astype(np.float64), 64, 16)
    mean_power = np.mean(np.abs(spectrum) ** 2)
    np.testing.assert_allclose(got[i], np.exp(FILL_BIAS) * np.sqrt(mean_power), rtol=1e-4)
  assert 10 * np.log10(np.exp(2 * FILL_BIAS)) == pytest.approx(-40.0, abs=0.05)


def test_the_fill_scales_with_the_level_and_passes_gradients_to_the_output_unchanged():
  model = SpectralFill(n_fft=64, hop=16, channels=8, layers=2)
  y = jnp.asarray(np.random.default_rng(4).standard_normal((1, 1024)), jnp.float32)
  v = numpy_reference.perturbed(jit_init(model, y), seed=4, scale=1.0)
  fill = jax.jit(lambda v, y: model.apply(v, y) - y)
  np.testing.assert_allclose(np.asarray(fill(v, 0.01 * y)), 0.01 * np.asarray(fill(v, y)), atol=1e-7, rtol=1e-3)
  tangent = jnp.asarray(np.random.default_rng(5).standard_normal((1, 1024)), jnp.float32)
  _, out_tangent = jax.jvp(lambda y: model.apply(v, y), (y,), (tangent,))
  np.testing.assert_array_equal(np.asarray(out_tangent), np.asarray(tangent))  # the fill's features: stopped


def test_generator_with_a_fill_adds_it_to_the_unet_output_and_decode_keeps_it():
  gen = Generator(depth=2, width=0.125, dropout=0.0, zero_init_final=True, fill_channels=8, mask_fft=32, mask_hop=8,
                  fill_layers=2)
  x = jnp.asarray(np.random.default_rng(6).standard_normal((2, 256, 1)), jnp.float32)
  v = numpy_reference.perturbed(jit_init(gen, x), seed=6, scale=1.0)
  v["params"]["final"] = jax.tree.map(jnp.zeros_like, v["params"]["final"])  # the U-Net gives back its input
  v["params"]["fill"]["out"]["bias"] = jnp.full_like(v["params"]["fill"]["out"]["bias"], -1.0)  # a loud fill
  want = jit_apply(SpectralFill(n_fft=32, hop=8, channels=8, layers=2))({"params": v["params"]["fill"]}, x[..., 0])
  assert float(jnp.sqrt(jnp.mean((want - x[..., 0]) ** 2))) > 0.05  # the fill does something
  np.testing.assert_allclose(np.asarray(jit_apply(gen)(v, x))[..., 0], np.asarray(want), atol=1e-6)
  h, skips = jax.jit(lambda v, x: gen.apply(v, x, method=Generator.encode))(v, x)
  decoded = jax.jit(lambda v, h, s: gen.apply(v, h, s, start=1, stop=None, method=Generator.decode))(
      v, jax.jit(lambda v, h, s: gen.apply(v, h, s, stop=1, method=Generator.decode))(v, h, skips), skips)
  np.testing.assert_allclose(np.asarray(decoded)[..., 0], np.asarray(want), atol=1e-6)  # collaborative sampling's path


def test_fill_gain_db_scales_the_fill_outside_training_only():
  """model.fill_gain_db -12: with train=False the output is the U-Net's (the same generator without a fill) plus
  10^(-12/20) = 0.2512 times the fill; with train=True (dropout 0: the same U-Net) the whole fill."""
  kwargs = dict(depth=2, width=0.125, dropout=0.0, mask_fft=32, mask_hop=8)
  x = jnp.asarray(np.random.default_rng(7).standard_normal((2, 256, 1)), jnp.float32)
  full_gen = Generator(**kwargs, fill_channels=8, fill_layers=2)
  v = numpy_reference.perturbed(jit_init(full_gen, x), seed=7, scale=1.0)
  v["params"]["fill"]["out"]["bias"] = jnp.full_like(v["params"]["fill"]["out"]["bias"], -1.0)
  unet = np.asarray(jit_apply(Generator(**kwargs))({"params": {k: p for k, p in v["params"].items() if k != "fill"}},
                                                   x), np.float64)
  fill = np.asarray(jit_apply(full_gen)(v, x), np.float64) - unet
  assert np.sqrt(np.mean(fill ** 2)) > 0.05
  lowered = Generator(**kwargs, fill_channels=8, fill_layers=2, fill_gain_db=-12.0)
  np.testing.assert_allclose(np.asarray(jit_apply(lowered)(v, x)), unet + 0.2511886 * fill, atol=1e-6)
  trained = jax.jit(lambda v, x: lowered.apply(v, x, train=True, rngs={"dropout": jax.random.key(0)}))(v, x)
  np.testing.assert_allclose(np.asarray(trained), unet + fill, atol=1e-6)


def test_fill_settings_mistakes_are_one_clear_error():
  for key, value, match in (("model.fill_channels", -1, "fill_channels must be >= 0"),
                            ("model.fill_layers", -1, "fill_layers >= 0")):
    with pytest.raises(UserError, match=match):
      state_lib.check_config(tiny_config(**{"model.fill_channels": 8, "model.mask_fft": 32, "model.mask_hop": 16,
                                            key: value}))
  with pytest.raises(UserError, match="model.fill_gain_db must be a finite number of dB, got nan"):
    build_generator(tiny_config(**{"model.fill_channels": 8, "model.mask_fft": 32, "model.mask_hop": 16,
                                   "model.fill_gain_db": float("nan")}))
  config = tiny_config(**{"model.fill_channels": 8, "model.mask_fft": 40, "model.mask_hop": 16})
  with pytest.raises(UserError, match="spectral fill.*model.mask_fft must be a multiple of model.mask_hop"):
    build_generator(config)


def test_mask_lr_scale_multiplies_the_fill_updates_too():
  config = tiny_config(**{"optim.schedule": "constant", "optim.grad_clip": 0.0, "optim.mask_lr_scale": 5.0})
  params = {"fill": {"w": jnp.ones(2)}, "down_1": {"w": jnp.ones(2)}}
  grads = {"fill": {"w": jnp.array([1.0, -2.0])}, "down_1": {"w": jnp.array([-1.0, 2.0])}}
  tx = state_lib.make_optimizers(config).gen
  updates, _ = tx.update(grads, tx.init(params), params)
  lr = config.optim.lr_g
  np.testing.assert_allclose(np.asarray(updates["fill"]["w"]), -5 * lr * np.array([1.0, -1.0]), rtol=1e-5)
  np.testing.assert_allclose(np.asarray(updates["down_1"]["w"]), -lr * np.array([-1.0, 1.0]), rtol=1e-5)


def test_layer_table_counts_the_fills_weights_by_hand():
  """in: bins*C + C; per block LayerNorm 2C + conv 3*C*C + C; norm_out 2C; out C*bins + bins."""
  gen = Generator(depth=2, width=0.125, fill_channels=8, mask_fft=32, mask_hop=8, fill_layers=3)
  rows, total = layer_table(gen, window_spec(1, 256))
  bins, c = 17, 8
  want = bins * c + c + 3 * (2 * c + 3 * c * c + c) + 2 * c + c * bins + bins
  assert rows[-3:] == [("final", (128, 2), rows[-3][2]), ("fill", (256,), want), ("output", (256, 1), 0)]
  _, without = layer_table(Generator(depth=2, width=0.125), window_spec(1, 256))
  assert total == without + want
