"""Tests for sr_jax.losses: each loss against a float64 numpy computation, hand-worked values, jit and grads."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sr_jax import losses, spectral
from sr_jax.errors import UserError


def _rng_pair(shape, seed=0, noise=0.3):
  rng = np.random.default_rng(seed)
  target = rng.standard_normal(shape)
  output = target + noise * rng.standard_normal(shape)
  return target, output


def _f32(*arrays):
  return [jnp.asarray(a, jnp.float32) for a in arrays]


def _log_sigmoid(z):
  return -np.logaddexp(0.0, -z)  # log sigma(z), float64


def test_l2_l1_and_by_name_match_numpy():
  target, output = _rng_pair((4, 1000, 1))
  t, o = _f32(target, output)
  want_l2, want_l1 = np.mean((target - output) ** 2), np.mean(np.abs(target - output))
  np.testing.assert_allclose(losses.l2_loss(t, o), want_l2, rtol=1e-5)
  np.testing.assert_allclose(losses.l1_loss(t, o), want_l1, rtol=1e-5)
  np.testing.assert_allclose(losses.reconstruction_loss(t, o, "l2"), want_l2, rtol=1e-5)
  np.testing.assert_allclose(losses.reconstruction_loss(t, o, "l1"), want_l1, rtol=1e-5)
  np.testing.assert_allclose(losses.l2_loss(jnp.zeros(4), jnp.full(4, 2.0)), 4.0)
  np.testing.assert_allclose(losses.l1_loss(jnp.zeros(4), jnp.asarray([1.0, -1.0, 3.0, -3.0])), 2.0)


def test_feature_loss_matches_numpy():
  target, output = _rng_pair((4, 16, 32), seed=1)
  t, o = _f32(target, output)
  np.testing.assert_allclose(losses.feature_loss(t, o), np.mean((target - output) ** 2), rtol=1e-5)
  np.testing.assert_allclose(losses.feature_loss(t, o, kind="l1"), np.mean(np.abs(target - output)), rtol=1e-5)


@pytest.mark.parametrize("fn", [losses.reconstruction_loss, losses.feature_loss])
def test_bad_kind_is_user_error_naming_allowed_values(fn):
  with pytest.raises(UserError, match=r"unknown .*kind 'l3'; allowed: 'l1', 'l2'"):
    fn(jnp.zeros(3), jnp.zeros(3), "l3")


def test_shape_mismatch_raises_instead_of_broadcasting():
  with pytest.raises(ValueError, match="shapes differ"):
    losses.l2_loss(jnp.zeros((2, 8)), jnp.zeros((2, 8, 1)))
  with pytest.raises(ValueError, match="shapes differ"):
    losses.multi_resolution_stft_loss(jnp.zeros((2, 800)), jnp.zeros((2, 900)))


def test_gan_losses_match_numpy():
  rng = np.random.default_rng(2)
  real, fake = 3 * rng.standard_normal((4, 7, 1)), 3 * rng.standard_normal((4, 7, 1))
  r, f = _f32(real, fake)
  want_d = np.mean(-_log_sigmoid(real)) + np.mean(-_log_sigmoid(-fake))  # 1 - sigma(z) = sigma(-z)
  np.testing.assert_allclose(losses.discriminator_loss(r, f), want_d, rtol=1e-5)
  np.testing.assert_allclose(losses.generator_adversarial_loss(f), np.mean(-_log_sigmoid(fake)), rtol=1e-5)


def test_gan_losses_hand_worked_and_stable():
  zeros = jnp.zeros((2, 5, 1))
  np.testing.assert_allclose(losses.discriminator_loss(zeros, zeros), 2 * np.log(2), rtol=1e-6)
  np.testing.assert_allclose(losses.generator_adversarial_loss(zeros), np.log(2), rtol=1e-6)
  big = jnp.full((3,), 1e4)
  assert float(losses.discriminator_loss(big, -big)) == pytest.approx(0.0, abs=1e-6)  # perfect discriminator
  np.testing.assert_allclose(losses.discriminator_loss(-big, big), 2e4, rtol=1e-6)  # finite, not inf
  np.testing.assert_allclose(losses.generator_adversarial_loss(-big), 1e4, rtol=1e-6)
  grads = jax.grad(losses.discriminator_loss, argnums=(0, 1))(-big, big)
  assert all(np.all(np.isfinite(np.asarray(g))) for g in grads)
  assert np.all(np.isfinite(np.asarray(jax.grad(losses.generator_adversarial_loss)(-big))))


def numpy_mr_stft(target, output, fft_sizes, hop_sizes, sc_weight=1.0, mag_weight=1.0, eps=1e-7):
  """float64 reference: per example and resolution, with numpy norms (spectral.stft is tested on its own)."""
  total = []
  for n_fft, hop in zip(fft_sizes, hop_sizes):
    sc, mag = [], []
    for t, o in zip(target, output):
      mt, mo = np.abs(spectral.stft(t, n_fft, hop)), np.abs(spectral.stft(o, n_fft, hop))
      sc.append(np.linalg.norm(mt - mo) / (np.linalg.norm(mt) + eps))
      mag.append(np.mean(np.abs(np.log(mt + eps) - np.log(mo + eps))))
    total.append(sc_weight * np.mean(sc) + mag_weight * np.mean(mag))
  return np.mean(total)


def test_multi_resolution_stft_loss_matches_numpy():
  target, output = _rng_pair((3, 4000), seed=3)
  t, o = _f32(target, output)
  got = losses.multi_resolution_stft_loss(t, o)
  want = numpy_mr_stft(target, output, (512, 1024, 2048), (128, 256, 512))
  np.testing.assert_allclose(got, want, rtol=1e-5)
  got = losses.multi_resolution_stft_loss(t[..., None], o[..., None], (256,), (64,), sc_weight=0.3, mag_weight=2.0)
  np.testing.assert_allclose(got, numpy_mr_stft(target, output, (256,), (64,), 0.3, 2.0), rtol=1e-5)


def test_multi_resolution_stft_loss_hand_worked():
  target = jnp.asarray(np.random.default_rng(4).standard_normal((2, 3000)), jnp.float32)
  assert float(losses.multi_resolution_stft_loss(target, target)) == 0.0
  # output = 2 * target: |S_hat| = 2 |S| so SC = 1 and the log-magnitude term is log 2 (up to eps = 1e-7)
  np.testing.assert_allclose(losses.multi_resolution_stft_loss(target, 2 * target), 1 + np.log(2), rtol=1e-5)
  # terms and weights add linearly
  sc = losses.multi_resolution_stft_loss(target, 2 * target, sc_weight=1.0, mag_weight=0.0)
  mag = losses.multi_resolution_stft_loss(target, 2 * target, sc_weight=0.0, mag_weight=1.0)
  np.testing.assert_allclose([sc, mag], [1.0, np.log(2)], rtol=1e-5)


@pytest.mark.parametrize("case", ["both_silent", "silent_target", "identical"])
def test_multi_resolution_stft_loss_gradient_is_finite(case):
  signal = jnp.asarray(np.random.default_rng(5).standard_normal((2, 2048, 1)), jnp.float32)
  zeros = jnp.zeros_like(signal)
  cases = {"both_silent": (zeros, zeros), "silent_target": (zeros, signal), "identical": (signal, signal)}
  target, output = cases[case]
  value, grad = jax.value_and_grad(lambda o: losses.multi_resolution_stft_loss(target, o))(output)
  assert np.isfinite(float(value))
  assert grad.shape == output.shape and np.all(np.isfinite(np.asarray(grad)))
  if case == "both_silent":  # zero magnitudes get a zero gradient (not NaN from |S|' = S / |S|)
    np.testing.assert_array_equal(np.asarray(grad), 0.0)


def test_multi_resolution_stft_loss_gradient_matches_finite_difference():
  target, output = _rng_pair((1, 600), seed=6)
  t, o = _f32(target, output)
  loss = functools.partial(losses.multi_resolution_stft_loss, t, fft_sizes=(128,), hop_sizes=(32,))
  direction = jnp.asarray(np.random.default_rng(7).standard_normal((1, 600)), jnp.float32)
  analytic = float(jnp.sum(jax.grad(loss)(o) * direction))
  step = 1e-6
  numeric = (
      numpy_mr_stft(target, output + step * np.asarray(direction, np.float64), (128,), (32,))
      - numpy_mr_stft(target, output - step * np.asarray(direction, np.float64), (128,), (32,))
  ) / (2 * step)
  np.testing.assert_allclose(analytic, numeric, rtol=1e-3)


def test_everything_jits():
  target, output = _f32(*_rng_pair((2, 1500, 1), seed=8))
  for fn in (losses.l2_loss, losses.l1_loss, losses.feature_loss, losses.multi_resolution_stft_loss):
    np.testing.assert_allclose(jax.jit(fn)(target, output), fn(target, output), rtol=1e-6)
  recon = jax.jit(losses.reconstruction_loss, static_argnames="kind")
  np.testing.assert_allclose(recon(target, output, kind="l1"), losses.l1_loss(target, output), rtol=1e-6)
  np.testing.assert_allclose(
      jax.jit(losses.discriminator_loss)(target, output), losses.discriminator_loss(target, output), rtol=1e-6
  )
  np.testing.assert_allclose(
      jax.jit(losses.generator_adversarial_loss)(output), losses.generator_adversarial_loss(output), rtol=1e-6
  )
