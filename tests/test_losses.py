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


def test_snr_loss_matches_numpy_and_weighs_every_example_alike():
  target, output = _rng_pair((3, 500, 1), seed=2)
  target[1], output[1] = 1e-2 * target[0], 1e-2 * output[0]  # window 0, 40 dB quieter: the same SNR
  floor = 10.0 ** (losses.SNR_LOSS_FLOOR_DB / 10.0)
  want = np.mean([10 * np.log10((np.mean((t - o) ** 2) + floor) / (np.mean(t ** 2) + floor))
                  for t, o in zip(target, output)])
  t, o = _f32(target, output)
  np.testing.assert_allclose(losses.snr_loss(t, o), want, rtol=1e-5)
  np.testing.assert_allclose(losses.reconstruction_loss(t, o, "snr"), want, rtol=1e-5)
  # hand-worked: target 1, output 0.9 -> SNR = 10 log10(1 / 0.01) = 20 dB (the floor moves it by < 1e-5 dB)
  np.testing.assert_allclose(losses.snr_loss(jnp.ones((1, 8)), jnp.full((1, 8), 0.9)), -20.0, atol=1e-4)
  # the quiet window pulls on its output as hard, relative to its level, as the loud one does (L2: 1e4 times less)
  grad = jax.grad(losses.snr_loss, argnums=1)(t, o)
  g0 = np.linalg.norm(np.asarray(grad[0])) * np.sqrt(np.mean(target[0] ** 2))
  g1 = np.linalg.norm(np.asarray(grad[1])) * np.sqrt(np.mean(target[1] ** 2))
  np.testing.assert_allclose(g1, g0, rtol=5e-3)  # the floor: 1e-8 against the quiet error's 1e-5
  # a silent target with a silent output: finite, zero loss, finite gradient
  zero = jnp.zeros((1, 16))
  assert float(losses.snr_loss(zero, zero)) == 0.0
  assert np.all(np.isfinite(np.asarray(jax.grad(losses.snr_loss, argnums=1)(zero, zero))))


def test_snr_loss_soft_cap_matches_numpy_and_stops_exact_examples_pulling():
  target, output = _rng_pair((2, 400, 1), seed=5)
  floor, tau = 10.0 ** (losses.SNR_LOSS_FLOOR_DB / 10.0), 10.0 ** (-30.0 / 10.0)
  want = np.mean([10 * np.log10((np.mean((t - o) ** 2) + tau * np.mean(t ** 2) + floor) / (np.mean(t ** 2) + floor))
                  for t, o in zip(target.astype(np.float64), output.astype(np.float64))])
  t, o = _f32(target, output)
  np.testing.assert_allclose(losses.snr_loss(t, o, 30.0), want, rtol=1e-5)
  np.testing.assert_allclose(losses.reconstruction_loss(t, o, "snr", 30.0), want, rtol=1e-5)
  # hand-worked: an exact output scores the cap, -10 log10(1 / 1e-3) = -30 dB; an error at the cap's power -27 dB
  one = jnp.ones((1, 8))
  np.testing.assert_allclose(losses.snr_loss(one, one, 30.0), -30.0, atol=1e-3)
  np.testing.assert_allclose(losses.snr_loss(one, one + np.sqrt(1e-3), 30.0), -10 * np.log10(500.0), atol=1e-3)
  # an almost exact example (60 dB) against a 10 dB one: uncapped it pulls ~150x harder than the 10 dB one, capped a third as hard
  rng = np.random.default_rng(0)
  clean = rng.normal(size=(2, 4096, 1)) * 0.1
  noisy = clean + np.stack([1e-4, 0.1 / np.sqrt(10.0)])[:, None, None] * rng.normal(size=(2, 4096, 1))
  norms = {}
  for cap in (None, 30.0):
    g = np.asarray(jax.grad(losses.snr_loss, argnums=1)(*_f32(clean, noisy), cap))
    norms[cap] = np.linalg.norm(g[0]) / np.linalg.norm(g[1])
  assert norms[None] > 100 and norms[30.0] < 0.5, norms


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


def numpy_mr_stft(target, output, fft_sizes, hop_sizes, sc_weight=1.0, mag_weight=1.0, eps=1e-7, sc_floor_db=-60.0):
  """float64 reference: per example and resolution, with numpy norms (spectral.stft is tested on its own). The SC
  denominator is max(||M||_F, floor), floor = the expected STFT norm of white noise at sc_floor_db dB RMS (every bin
  of every frame: E|S|^2 = rms^2 sum(w^2)); sc_floor_db=None: the formula without a floor, ||M||_F + eps."""
  total = []
  for n_fft, hop in zip(fft_sizes, hop_sizes):
    sc, mag = [], []
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    for t, o in zip(target, output):
      mt, mo = np.abs(spectral.stft(t, n_fft, hop)), np.abs(spectral.stft(o, n_fft, hop))
      if sc_floor_db is None:
        denominator = np.linalg.norm(mt) + eps
      else:
        denominator = max(np.linalg.norm(mt), 10 ** (sc_floor_db / 20) * np.sqrt(mt.size * np.sum(hann**2)))
      sc.append(np.linalg.norm(mt - mo) / denominator)
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


def _white(rms, shape, seed):
  return rms * np.random.default_rng(seed).standard_normal(shape)


def test_stft_noise_norm_is_the_stft_norm_of_white_noise():
  # hand-worked: W = 2048, n_fft 512, hop 128: 17 frames, 257 bins, sum of the periodic Hann squared = 3/8 * 512
  np.testing.assert_allclose(losses.stft_noise_norm(2048, 512, 128, -60.0), 1e-3 * np.sqrt(17 * 257 * 192), rtol=1e-9)
  # and the mean STFT energy of 400 windows of white noise at -60 dB (float64 numpy) is its square
  noise = _white(1e-3, (400, 2048), seed=20)
  for n_fft, hop in ((512, 128), (2048, 512)):
    energy = np.mean(np.abs(spectral.stft(noise, n_fft, hop)) ** 2, axis=0).sum()
    np.testing.assert_allclose(energy, losses.stft_noise_norm(2048, n_fft, hop, -60.0) ** 2, rtol=0.02)


def test_multi_resolution_stft_loss_matches_numpy_at_every_level():
  """Windows at -20, -45, -70 dB RMS and a silent one (outputs: the target + noise 10 dB below it, or at -90 dB for
  the silent one) against the float64 reference; the two above the floor also against the formula without one."""
  levels = (-20.0, -45.0, -70.0)
  target = np.stack([_white(10 ** (db / 20), 2048, seed=21 + i) for i, db in enumerate(levels)] + [np.zeros(2048)])
  error_db = np.array([db - 10 for db in levels] + [-90.0])
  output = target + 10 ** (error_db[:, None] / 20) * np.random.default_rng(25).standard_normal((4, 2048))
  t, o = _f32(target, output)
  sizes, hops = (512, 1024, 2048), (128, 256, 512)
  np.testing.assert_allclose(losses.multi_resolution_stft_loss(t, o), numpy_mr_stft(target, output, sizes, hops),
                             rtol=1e-4)
  np.testing.assert_allclose(losses.multi_resolution_stft_loss(t[:2], o[:2], sc_floor_db=-50.0),
                             numpy_mr_stft(target[:2], output[:2], sizes, hops, sc_floor_db=-50.0), rtol=1e-4)
  # normal-level windows: the same loss as without a floor (||M||_F + 1e-7), to float32 rounding
  np.testing.assert_allclose(losses.multi_resolution_stft_loss(t[:2], o[:2]),
                             numpy_mr_stft(target[:2], output[:2], sizes, hops, sc_floor_db=None), rtol=1e-5)


@pytest.mark.parametrize("target_db", [None, -80.0])  # an all-zero target window, and one at -80 dB RMS
def test_multi_resolution_stft_loss_is_bounded_on_silent_targets(target_db):
  """Below the -60 dB floor, SC is the output's error in units of a -60 dB window: ~RMS(error) / 1e-3.

  A normal output (white noise at -20 dB RMS) gives SC = 0.1 / 1e-3 = 100 (E||M_hat||_F^2 = rms^2 * frames * bins *
  sum(w^2), the floor's formula at 40 dB more). LogMag against a silent target is E log((|S_hat| + 1e-7) / 1e-7):
  |S_hat|^2 / (rms^2 sum(w^2)) is exponential with mean 1, whose log has mean -gamma, so LogMag = log(rms
  sqrt(sum(w^2)) / 1e-7) - gamma / 2 (~16.5); against the -80 dB target it is ~log(0.1 / 1e-4) = 6.9 (60 dB apart).
  The gradient of SC with respect to each example's output has norm ||grad ||A x|| / F|| ~ 1 / (N 1e-3 sqrt(W)):
  the STFT A scales every signal's norm by the same factor sqrt(frames * bins * sum(w^2) / W) as it scales the floor.
  (LogMag's gradient grows as 1 / M_hat where the output itself is near silent, in any window: not bounded here.)
  Without the floor (the bare ||M||_F + 1e-7) the zero target gives SC ~ 1e8 here, and 3e5 for a -90 dB residual."""
  n, width, sizes, hops = 2, 2048, (512, 1024, 2048), (128, 256, 512)
  target = np.zeros((n, width)) if target_db is None else _white(10 ** (target_db / 20), (n, width), seed=26)
  # a -90 dB residual: SC = 10**(-30 / 20) on silence; on the -80 dB target less (||M_hat| - |M|| <= |S_residual|
  # per bin, and about half its energy: only its component in phase with the target's bin counts)
  for output, want_sc in ((_white(0.1, (n, width), seed=27), 100.0),  # a normal output
                          (target + _white(10 ** (-90 / 20), (n, width), seed=28), 10 ** (-30 / 20))):
    t, o = _f32(target, output)
    loss = lambda sc_weight, mag_weight, o: losses.multi_resolution_stft_loss(t, o, sizes, hops, sc_weight, mag_weight)
    sc, sc_grad = jax.value_and_grad(functools.partial(loss, 1.0, 0.0))(o)
    value, grad = jax.value_and_grad(functools.partial(loss, 1.0, 1.0))(o)
    assert np.isfinite(float(value)) and np.all(np.isfinite(np.asarray(grad)))
    grad_bound = 1 / (n * 1e-3 * np.sqrt(width))  # per example
    sc_grad_norm = np.linalg.norm(np.asarray(sc_grad), axis=-1)
    assert np.all(sc_grad_norm < 1.1 * grad_bound)
    if target_db is None or want_sc == 100.0:  # the error is (nearly) the output: SC and its gradient at the bound
      np.testing.assert_allclose(float(sc), want_sc, rtol=0.05)
      np.testing.assert_allclose(sc_grad_norm, grad_bound, rtol=0.1)
    else:
      assert 0.5 * want_sc < float(sc) < want_sc
    if want_sc == 100.0:  # LogMag's gradient, 1 / (M_hat + 1e-7) per bin, is small against a normal output's M_hat
      assert np.all(np.linalg.norm(np.asarray(grad), axis=-1) < 1.3 * grad_bound)
    np.testing.assert_allclose(float(value), numpy_mr_stft(target, output, sizes, hops), rtol=1e-4)
    assert float(value) - float(sc) < np.log(1 + width / 2 / 1e-7)  # LogMag <= log(1 + max|S| / 1e-7), |x| <= 1
  windows = np.array([np.sum((0.5 - 0.5 * np.cos(2 * np.pi * np.arange(k) / k)) ** 2) for k in sizes])
  if target_db is None:
    want_mag = np.mean(np.log(0.1 * np.sqrt(windows) / 1e-7)) - np.euler_gamma / 2
  else:
    want_mag = np.log(0.1 / 10 ** (target_db / 20))
  mag = float(loss(0.0, 1.0, _f32(_white(0.1, (n, width), seed=27))[0]))
  np.testing.assert_allclose(mag, want_mag, rtol=0.03)


def test_everything_jits():
  """Each loss under jax.jit against its float64 numpy value (not against its own eager call)."""
  target, output = _rng_pair((2, 1500, 1), seed=8)
  t, o = _f32(target, output)
  l2, l1 = np.mean((target - output) ** 2), np.mean(np.abs(target - output))
  stft = numpy_mr_stft(target[..., 0], output[..., 0], (512, 1024, 2048), (128, 256, 512))
  for fn, want in ((losses.l2_loss, l2), (losses.l1_loss, l1), (losses.feature_loss, l2),
                   (losses.multi_resolution_stft_loss, stft)):
    np.testing.assert_allclose(jax.jit(fn)(t, o), want, rtol=1e-5)
  recon = jax.jit(losses.reconstruction_loss, static_argnames="kind")
  np.testing.assert_allclose(recon(t, o, kind="l1"), l1, rtol=1e-5)
  want_d = np.mean(-_log_sigmoid(target)) + np.mean(-_log_sigmoid(-output))
  np.testing.assert_allclose(jax.jit(losses.discriminator_loss)(t, o), want_d, rtol=1e-5)
  np.testing.assert_allclose(jax.jit(losses.generator_adversarial_loss)(o), np.mean(-_log_sigmoid(output)), rtol=1e-5)


def numpy_floor(target, output, floor_db, fft_sizes, hop_sizes, pool=1, ceiling_db=None, eps=1e-7):
  """float64 reference of the spectral corridor, per resolution with numpy's rfft-based STFT, bands by a loop."""
  a = 10.0 ** (floor_db / 20.0)
  terms = []
  for n_fft, hop in zip(fft_sizes, hop_sizes):
    pt, po = (np.abs(spectral.stft(x, n_fft, hop)) ** 2 for x in (target, output))
    bands = [slice(b, b + pool) for b in range(0, n_fft // 2, pool)]
    bt = np.stack([np.sqrt(pt[..., s].sum(-1)) for s in bands], -1)
    bo = np.stack([np.sqrt(po[..., s].sum(-1)) for s in bands], -1)
    below = np.mean(np.maximum(np.log(np.sqrt((a * bt) ** 2 + eps**2)) - np.log(np.sqrt(bo**2 + eps**2)), 0))
    above = 0.0
    if ceiling_db is not None:
      c = 10.0 ** (ceiling_db / 20.0)
      mt, mo = np.sqrt(pt[..., :-1]), np.sqrt(po[..., :-1])
      above = np.mean(np.maximum(np.log(np.sqrt(mo**2 + eps**2)) - np.log(np.sqrt((c * mt) ** 2 + eps**2)), 0))
    terms.append(below + above)
  return np.mean(terms)


def test_spectral_corridor_loss_matches_numpy():
  target, output = _rng_pair((3, 3000), seed=11)
  output = output * np.linspace(0.01, 1.0, 3000)  # quiet at the start: below the floor there, above it later
  t, o = _f32(target, output)
  got = float(losses.spectral_corridor_loss(t, o, -9.0))
  want = numpy_floor(target, output, -9.0, (512, 1024, 2048), (128, 256, 512))
  assert want > 0.1
  np.testing.assert_allclose(got, want, rtol=1e-4)
  got = losses.spectral_corridor_loss(t[..., None], o[..., None], -3.0, (256,), (64,))
  np.testing.assert_allclose(got, numpy_floor(target, output, -3.0, (256,), (64,)), rtol=1e-4)
  got = losses.spectral_corridor_loss(t, o, -6.0, (256, 512), (64, 128), pool=16)
  np.testing.assert_allclose(got, numpy_floor(target, output, -6.0, (256, 512), (64, 128), pool=16), rtol=1e-4)
  got = losses.spectral_corridor_loss(t, o, -6.0, (256, 512), (64, 128), pool=16, ceiling_db=-3.0)
  want = numpy_floor(target, output, -6.0, (256, 512), (64, 128), pool=16, ceiling_db=-3.0)
  assert want > numpy_floor(target, output, -6.0, (256, 512), (64, 128), pool=16) + 0.1  # the ceiling adds
  np.testing.assert_allclose(got, want, rtol=1e-4)


def test_spectral_floor_pools_bins_into_bands():
  """One bin far below the floor inside a band that meets it costs nothing once pooled."""
  t = np.zeros((1, 1024))
  n = np.arange(1024)
  t[0] = np.sin(2 * np.pi * 64 * n / 256) + np.sin(2 * np.pi * 66 * n / 256)  # bins 64 and 66 at n_fft 256
  o = np.sin(2 * np.pi * 64 * n / 256) + 0.01 * np.sin(2 * np.pi * 66 * n / 256)  # bin 66 at -40 dB
  common = 0.01 * np.random.default_rng(13).standard_normal(1024)  # the same noise in both fills every other band
  t32, o32 = _f32(t + common, (o + common)[None])
  per_bin = float(losses.spectral_corridor_loss(t32, o32, -20.0, (256,), (64,), pool=1))
  pooled = float(losses.spectral_corridor_loss(t32, o32, -20.0, (256,), (64,), pool=8))  # bins 64..71 share a band
  assert per_bin > 0.01  # bin 66 alone: log(0.1 / 0.01) = 2.3 in 1 of 128 bins
  assert pooled == 0.0
  with pytest.raises(UserError,
                     match=r"pool=3 must be >= 1 and divide n_fft / 2 of every FFT size, not of \[256\]"):
    losses.spectral_corridor_loss(t32, o32, -6.0, (256,), (64,), pool=3)


def test_spectral_corridor_loss_hand_worked_and_one_sided():
  target = jnp.asarray(np.random.default_rng(12).standard_normal((2, 2048)), jnp.float32)
  # at or above the floor (-12 dB = amplitude 0.251): zero, and zero gradient, whatever the phase
  for above in (target, 0.3 * target, -target, 3.0 * target):
    value, grad = jax.value_and_grad(lambda o: losses.spectral_corridor_loss(target, o, -12.0))(above)
    assert float(value) == 0.0
    np.testing.assert_array_equal(np.asarray(grad), 0.0)
  # 0.1 x the target: every bin log(0.251 / 0.1) = 0.921 below the floor
  np.testing.assert_allclose(losses.spectral_corridor_loss(target, 0.1 * target, -12.0),
                             np.log(10 ** (-12 / 20) / 0.1), rtol=1e-4)
  # a silent output against a silent target costs nothing; silent output gets a finite gradient
  zeros = jnp.zeros_like(target)
  assert float(losses.spectral_corridor_loss(zeros, zeros)) == 0.0
  grad = jax.grad(lambda o: losses.spectral_corridor_loss(target, o))(zeros)
  assert np.all(np.isfinite(np.asarray(grad)))
  with pytest.raises(UserError, match=r"floor_db=0.0 must be below 0 dB"):
    losses.spectral_corridor_loss(target, target, 0.0)


def test_spectral_ceiling_makes_a_corridor():
  target = jnp.asarray(np.random.default_rng(14).standard_normal((2, 2048)), jnp.float32)
  # 3x the target: free under the floor alone, log 3 above a 0 dB ceiling, log(3 / 2) above a +6.02 dB one
  assert float(losses.spectral_corridor_loss(target, 3 * target, -12.0, pool=16)) == 0.0
  np.testing.assert_allclose(losses.spectral_corridor_loss(target, 3 * target, -12.0, pool=16, ceiling_db=0.0),
                             np.log(3), rtol=1e-4)
  np.testing.assert_allclose(
      losses.spectral_corridor_loss(target, 3 * target, -12.0, pool=16, ceiling_db=20 * np.log10(2)), np.log(1.5),
      rtol=1e-4)
  # inside the corridor: nothing; below it: the floor's term alone
  assert float(losses.spectral_corridor_loss(target, 0.5 * target, -12.0, pool=16, ceiling_db=0.0)) == 0.0
  np.testing.assert_allclose(losses.spectral_corridor_loss(target, 0.1 * target, -12.0, pool=16, ceiling_db=0.0),
                             np.log(10 ** (-12 / 20) / 0.1), rtol=1e-4)
  # noise where the target is silent is pushed down (log of its level over the 1e-7 magnitude of silence)
  noise = jnp.asarray(1e-3 * np.random.default_rng(15).standard_normal((2, 2048)), jnp.float32)
  assert float(losses.spectral_corridor_loss(jnp.zeros_like(noise), noise, -12.0, pool=16, ceiling_db=0.0)) > 5.0
  with pytest.raises(UserError, match=r"ceiling_db=-20.0 must not be below floor_db=-12.0"):
    losses.spectral_corridor_loss(target, target, -12.0, ceiling_db=-20.0)
