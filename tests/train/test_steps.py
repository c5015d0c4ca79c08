"""The jitted sharded steps: the same step on every mesh, no all-gather in pure data parallelism, every variant."""

import jax
import numpy as np
import pytest

from sr_jax.train import loop, sharding
from tests.train.helpers import fixed_batch, tiny_config

FULL = {"loss.lambda_adv": 0.1, "loss.adv_start_step": 0, "disc.conditional": True, "loss.lambda_feature": 0.5,
        "train.ae_steps": 0, "train.ae_checkpoint": "given", "loss.lambda_stft": 0.1, "loss.lambda_corridor": 0.05,
        "optim.optimizer": "sgd", "optim.lr_g": 1e3, "optim.lr_d": 1e3, "loss.stft_fft_sizes": (32, 64),
        "loss.stft_hop_sizes": (8, 16)}


def one_step(config, mesh_data, mesh_fsdp):
  config.mesh.data, config.mesh.fsdp = mesh_data, mesh_fsdp
  t = loop.build_training(config)
  train, state = t.train_step, t.init()
  before = jax.device_get(state)
  batch = sharding.global_batch(fixed_batch(config), t.mesh)
  new, metrics = train(state, batch)
  return before, jax.device_get(new), jax.device_get(metrics), train, state, batch


def test_same_step_on_every_mesh():
  """GAN + conditional D + AE feature loss + STFT loss, one SGD step: (old - new params) / lr is the gradient.

  The huge lr keeps the update far above the float32 rounding of the params, so the difference measures the gradient
  to ~1e-7; gradients must agree to 1e-5 relative (norm of the difference over the norm of each array)."""
  results = {m: one_step(tiny_config(**FULL), *m) for m in [(1, 1), (8, 1), (4, 2)]}
  ref_before, ref_after, ref_metrics = results[(1, 1)][:3]
  assert {"d_loss", "adv_loss", "feature_loss", "stft_loss", "corridor_loss", "rec_loss"} <= set(ref_metrics)
  for mesh, (before, after, metrics, *_) in ((m, r) for m, r in results.items() if m != (1, 1)):  # vs one device
    for k, v in ref_metrics.items():
      np.testing.assert_allclose(metrics[k], v, rtol=1e-5, atol=1e-7, err_msg=f"{k} on mesh {mesh}")
    for net in ("gen", "disc"):
      ref_grad = jax.tree.map(lambda a, b: a - b, ref_before.__dict__[net].params, ref_after.__dict__[net].params)
      grad = jax.tree.map(lambda a, b: a - b, before.__dict__[net].params, after.__dict__[net].params)
      # relative to the network's gradient norm: a conv bias before BatchNorm has a true gradient of 0 (pure noise)
      g, r = (np.concatenate([x.ravel() for x in jax.tree.leaves(t)]) for t in (grad, ref_grad))
      assert np.linalg.norm(g - r) <= 1e-5 * np.linalg.norm(r), (net, mesh, np.linalg.norm(g - r) / np.linalg.norm(r))
    # BatchNorm statistics are those of the global batch
    for a, b in zip(jax.tree.leaves(after.disc.batch_stats), jax.tree.leaves(ref_after.disc.batch_stats)):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  # the compiled steps' collectives: pure data parallelism only reduces (gradients, BatchNorm statistics) ...
  *_, train, state, batch = results[(8, 1)]
  hlo = train.lower(state, batch).compile().as_text()
  assert "all-reduce" in hlo and "all-gather" not in hlo
  # ... while fsdp gathers its sharded params for the forward pass
  *_, train, state, batch = results[(4, 2)]
  assert "all-gather" in train.lower(state, batch).compile().as_text()


VARIANTS = {
    "l2": {},
    "l1": {"loss.reconstruction": "l1", "optim.plateau": True, "optim.schedule": "warmup_cosine",
           "optim.warmup_steps": 2, "optim.grad_clip": 1.0},
    "snr": {"loss.reconstruction": "snr"},
    "gan": {"loss.lambda_adv": 0.01, "loss.adv_start_step": 2},
    "conditional_gan": {"loss.lambda_adv": 0.01, "loss.adv_start_step": 0, "disc.conditional": True},
    "patchgan": {"loss.lambda_adv": 0.01, "loss.adv_start_step": 0, "disc.kind": "patch", "disc.conditional": True},
    "ae_feature": {"loss.lambda_feature": 0.1, "train.ae_steps": 3},
    "stft": {"loss.lambda_stft": 0.1, "loss.stft_fft_sizes": (32, 64), "loss.stft_hop_sizes": (8, 16)},
    "floor": {"loss.lambda_corridor": 0.01, "loss.corridor_floor_db": -6.0, "loss.stft_fft_sizes": (32, 64),
              "loss.stft_hop_sizes": (8, 16)},
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_trains_with_decreasing_reconstruction_loss(variant):
  config = tiny_config(**{"optim.lr_g": 3e-3, "optim.lr_d": 1e-3, "optim.lr_ae": 3e-3, **VARIANTS[variant]})
  config.mesh.data = 2
  t = loop.build_training(config)
  train, state = t.train_step, t.init()
  batch = sharding.global_batch(fixed_batch(config), t.mesh)
  history = []
  for _ in range(loop.total_steps(config) - config.train.num_steps + 12):
    state, m = train(state, batch)
    history.append(jax.device_get(m))
  rec = [h["rec_loss"] for h in history if h.get("ae_phase", 0) == 0]
  assert all(np.isfinite(v) for h in history for k, v in h.items() if k.endswith("loss"))
  if variant == "snr":  # the negative SNR in dB: it falls by decibels, not by a fraction
    assert rec[-1] < rec[0] - 1.0, rec
  else:
    assert rec[-1] < 0.7 * rec[0], rec
  if "ae" in variant:  # the autoencoder learned first (identity), then stayed frozen
    ae = [h["ae_loss"] for h in history if h["ae_phase"] == 1]
    assert len(ae) == 3 and ae[-1] < ae[0]
  if "gan" in variant:
    assert history[-1]["adv_on"] == 1.0 and np.isfinite(history[-1]["d_loss"])


def test_floor_term_enters_the_generator_loss_with_its_weight():
  """g_loss = rec + lambda_corridor * corridor, and the floor term is the loss of the generator's own output."""
  from sr_jax import losses

  config = tiny_config(**{"loss.lambda_corridor": 0.25, "loss.corridor_floor_db": -6.0, "loss.stft_fft_sizes": (32,),
                          "loss.stft_hop_sizes": (8,), "model.dropout": 0.0})
  config.mesh.data = 1
  t = loop.build_training(config)
  state = t.init()
  batch = fixed_batch(config)
  y_hat = t.models.gen.apply({"params": state.gen.params}, batch["input"])
  want_floor = float(losses.spectral_corridor_loss(batch["target"], y_hat, -6.0, (32,), (8,)))
  _, m = t.train_step(state, sharding.global_batch(batch, t.mesh))
  m = jax.device_get(m)
  assert m["corridor_loss"] > 0.05  # the tiny untrained generator is far below the target in some bins
  np.testing.assert_allclose(m["corridor_loss"], want_floor, rtol=1e-5)
  np.testing.assert_allclose(m["g_loss"], m["rec_loss"] + 0.25 * m["corridor_loss"], rtol=1e-6)


@pytest.mark.parametrize("overrides, message", [
    ({"loss.corridor_floor_db": 0.0}, r"loss.corridor_floor_db=0.0 must be below 0 dB"),
    ({"loss.corridor_ceiling_db": -20.0}, r"loss.corridor_ceiling_db=-20.0 must not be below loss.corridor_floor_db=-12.0"),
    ({"loss.corridor_pool": 3},
     r"loss.corridor_pool=3 must be >= 1 and divide n_fft / 2 of every FFT size, not of \[512, 1024, 2048\]"),
])
def test_bad_floor_settings_are_refused_before_compiling(overrides, message):
  from sr_jax.errors import UserError
  from sr_jax.train import state as state_lib

  config = tiny_config(**{"loss.lambda_corridor": 0.1, **overrides})
  with pytest.raises(UserError, match=message):
    state_lib.check_config(config)
  config.loss.lambda_corridor = 0.0  # a floor that is off is not checked
  state_lib.check_config(config)


def test_a_run_shorter_than_its_warmup_only_warms_up_and_a_negative_warmup_is_refused():
  from sr_jax.errors import UserError
  from sr_jax.train import state as state_lib

  # e.g. a recipe with a 200-step warm-up shortened to 60 steps (optax alone raises: decay_steps <= warmup_steps)
  config = tiny_config(**{"optim.schedule": "warmup_cosine", "optim.warmup_steps": 200, "train.num_steps": 60})
  state_lib.check_config(config)  # allowed
  (warning,) = state_lib.config_warnings(config)
  assert warning.startswith("optim.warmup_steps=200 >= train.num_steps=60: the learning rate is still warming up")
  config.train.num_steps = 201
  assert state_lib.config_warnings(config) == []
  config.train.num_steps = 60
  sched = state_lib.learning_rate(config, 1e-3)
  np.testing.assert_allclose([sched(0), sched(30), sched(59)], [0.0, 1.5e-4, 2.95e-4], rtol=1e-5, atol=1e-12)
  config.optim.warmup_steps = 59  # the warm-up ends at step 59, then the cosine reaches 0 at step 60
  sched = state_lib.learning_rate(config, 1e-3)
  np.testing.assert_allclose([sched(0), sched(59), sched(60)], [0.0, 1e-3, 0.0], atol=1e-9)
  config.optim.warmup_steps = -1
  with pytest.raises(UserError, match=r"optim.warmup_steps must be >= 0, got -1"):
    state_lib.check_config(config)


def test_a_critic_whose_term_is_off_leaves_the_generator_updates_as_without_one():
  """Stage 1 of the shipped recipe once trained a critic alongside (lambda_adv > 0, adv_start_step never reached):
  the generator's trajectory is the one of a run without any discriminator (lambda_adv = 0), step for step, so
  dropping the critic only saves its work (bench/train_step.py: piano_r4_16k_critic vs piano_r4_16k)."""
  runs = {}
  for name, adv in (("critic", 0.1), ("none", 0.0)):
    config = tiny_config(**{"loss.lambda_adv": adv, "loss.adv_start_step": 10**9, "model.dropout": 0.0,
                            "optim.lr_g": 1e-2})
    config.mesh.data = 1
    t = loop.build_training(config)
    assert (t.models.disc is not None) == (adv > 0)
    state = t.init()
    start = jax.device_get(state.gen.params)  # the same initial generator in both runs (config.seed)
    for seed in range(3):
      state, m = t.train_step(state, sharding.global_batch(fixed_batch(config, seed), t.mesh))
    runs[name] = (jax.device_get(state.gen.params), jax.device_get(m), start)
  (critic, m_critic, _), (none, m_none, init) = runs["critic"], runs["none"]
  assert m_critic["d_loss"] > 0 and "d_loss" not in m_none  # the critic did train
  assert m_critic["adv_on"] == 0.0
  for a, b in zip(jax.tree.leaves(critic), jax.tree.leaves(none)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  moved = max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(none), jax.tree.leaves(init)))
  assert moved > 1e-3  # three steps at lr 1e-2 really moved the generator
  np.testing.assert_allclose(m_critic["rec_loss"], m_none["rec_loss"], rtol=1e-5)


MRSD = {"disc.kind": "mrsd", "disc.stft_fft_sizes": (16, 32), "disc.channels": 4}


def _bce_fake_as_real(logits):
  """-log sigmoid(logits), float64."""
  return np.logaddexp(0.0, -np.asarray(logits, np.float64))


def test_spectrogram_gan_with_feature_matching_trains_and_its_terms_match_numpy():
  """disc.kind "mrsd" with lambda_adv and lambda_fm: the first step's D loss (the initial D), adversarial and
  feature-matching terms (the updated D, as the G phase uses it) against the float64 numpy MRSD: BCE per resolution
  averaged over the resolutions, feature matching the mean over layers and resolutions of mean |D_l(y) - D_l(G(x))|;
  then a few more steps train with finite losses and a falling reconstruction loss."""
  from tests.models import numpy_reference

  lam_adv, lam_fm = 0.02, 0.1
  config = tiny_config(**{"loss.lambda_adv": lam_adv, "loss.lambda_fm": lam_fm, "loss.adv_start_step": 0,
                          "optim.lr_g": 3e-3, "optim.lr_d": 1e-3, **MRSD})
  config.mesh.data = 1
  t = loop.build_training(config)
  state = t.init()
  assert state.disc.batch_stats == {}
  batch = fixed_batch(config)
  y, y_hat = batch["target"], np.asarray(jax.jit(t.models.gen.apply)({"params": state.gen.params}, batch["input"]))
  before = {"params": jax.device_get(state.disc.params)}  # (the step donates the state's buffers)
  new, m = t.train_step(state, sharding.global_batch(batch, t.mesh))
  m = jax.device_get(m)
  assert {"d_loss", "adv_loss", "fm_loss", "rec_loss", "g_loss"} <= set(m)

  real, _, counts = numpy_reference.spectrogram_discriminator(before, y)
  fake, _, _ = numpy_reference.spectrogram_discriminator(before, y_hat)
  split = lambda a: np.split(a, np.cumsum(counts)[:-1], axis=1)
  want_d = np.mean([_bce_fake_as_real(r).mean() + _bce_fake_as_real(-f).mean() for r, f in zip(split(real),
                                                                                               split(fake))])
  after = {"params": jax.device_get(new.disc.params)}
  _, real_features, _ = numpy_reference.spectrogram_discriminator(after, y)
  fake, fake_features, _ = numpy_reference.spectrogram_discriminator(after, y_hat)
  want_adv = np.mean([_bce_fake_as_real(f).mean() for f in split(fake)])
  want_fm = np.mean([np.abs(r - f).mean() for r, f in zip(real_features, fake_features)])
  assert want_fm > 1e-3
  np.testing.assert_allclose(m["d_loss"], want_d, rtol=1e-4)
  np.testing.assert_allclose(m["adv_loss"], want_adv, rtol=1e-4)
  np.testing.assert_allclose(m["fm_loss"], want_fm, rtol=1e-4)
  np.testing.assert_allclose(m["g_loss"], m["rec_loss"] + lam_adv * m["adv_loss"] + lam_fm * m["fm_loss"], rtol=1e-6)

  history = [m]
  for _ in range(7):
    new, m = t.train_step(new, sharding.global_batch(batch, t.mesh))
    history.append(jax.device_get(m))
  assert all(np.isfinite(v) for h in history for k, v in h.items() if k.endswith("loss"))
  assert history[-1]["rec_loss"] < history[0]["rec_loss"]


def test_feature_matching_with_the_global_discriminator_waits_for_the_adversarial_switch():
  """The global D's features are its down blocks' outputs; fm_loss is reported from the first step but enters the
  generator loss only once the adversarial term is on (adv_start_step), as the adversarial term itself."""
  config = tiny_config(**{"loss.lambda_adv": 0.05, "loss.lambda_fm": 0.5, "loss.adv_start_step": 1,
                          "disc.conditional": True})
  config.mesh.data = 1
  t = loop.build_training(config)
  state = t.init()
  batch = sharding.global_batch(fixed_batch(config), t.mesh)
  for step in range(2):
    state, m = t.train_step(state, batch)
    m = jax.device_get(m)
    assert np.isfinite(m["fm_loss"]) and m["fm_loss"] > 1e-4
    on = step >= 1
    assert m["adv_on"] == float(on)
    want = m["rec_loss"] + (0.05 * m["adv_loss"] + 0.5 * m["fm_loss"] if on else 0.0)
    np.testing.assert_allclose(m["g_loss"], want, rtol=1e-6)


@pytest.mark.parametrize("overrides, message", [
    ({"loss.lambda_fm": 0.1}, r"loss.lambda_fm=0.1 must be 0 \(off\) or > 0 with a discriminator \(loss.lambda_adv > 0"),
    ({"loss.lambda_fm": -1.0, "loss.lambda_adv": 0.1}, r"loss.lambda_fm=-1.0 must be 0 \(off\) or > 0"),
    ({"loss.lambda_adv": 0.1, "disc.kind": "spectral"}, r"disc.kind must be one of \['global', 'patch', 'mrsd'\]"),
    ({"loss.lambda_adv": 0.1, **MRSD, "disc.stft_fft_sizes": (16, 18)}, r"disc.stft_fft_sizes must be distinct FFT"),
    ({"loss.lambda_adv": 0.1, **MRSD, "disc.channels": 0}, r"disc.channels must be an integer >= 1"),
    ({"loss.reconstruction": "snr", "loss.snr_max_db": 0.0}, r"loss.snr_max_db must be > 0 \(dB\), got 0.0"),
])
def test_bad_feature_matching_and_spectrogram_discriminator_settings_are_refused(overrides, message):
  from sr_jax.errors import UserError
  from sr_jax.train import state as state_lib

  config = tiny_config(**overrides)
  with pytest.raises(UserError, match=message):
    state_lib.check_config(config)
