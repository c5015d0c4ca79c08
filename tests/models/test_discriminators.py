import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.models import jit_apply, jit_init, numpy_reference

from sr_jax.models import ConditionalDiscriminator, Discriminator, PatchDiscriminator, SpectrogramDiscriminator
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


# ----- multi-resolution spectrogram discriminator (disc.kind "mrsd") and feature matching -----------------------------

MRSD_SIZES, MRSD_WINDOW = (16, 32), 64


def mrsd(conditional=False):
  return SpectrogramDiscriminator(fft_sizes=MRSD_SIZES, channels=4, conditional=conditional)


def mrsd_inputs(conditional):
  y, x = x_of(3, MRSD_WINDOW, 0) * 0.3, x_of(3, MRSD_WINDOW, 1) * 0.2
  return (y, x) if conditional else (y,)


@pytest.mark.parametrize("conditional", [False, True])
def test_spectrogram_discriminator_matches_an_independent_numpy_float64_forward(conditional):
  """Logits and every conv layer's features of a tiny MRSD against numpy_reference.spectrogram_discriminator (its own
  STFT as a written-out DFT, its own 2-D convolution); the patches per resolution against `patch_counts`."""
  d = mrsd(conditional)
  args = mrsd_inputs(conditional)
  v = numpy_reference.perturbed(jit_init(d, *args), seed=5)
  assert "batch_stats" not in v  # no BatchNorm
  want, want_features, want_counts = numpy_reference.spectrogram_discriminator(v, *args)
  got, features = jit_apply(d)(v, *args, return_features=True)
  # window 64: n = 16 -> 17 frames x 2 frequency patches, n = 32 -> 9 frames x 3 (hand-worked from the strides)
  assert want_counts == [34, 27] and d.patch_counts(MRSD_WINDOW) == (34, 27)
  assert got.shape == want.shape == (3, 61, 1) and got.dtype == jnp.float32
  assert np.std(want) > 0.05
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
  assert len(features) == len(want_features) == 2 * 5
  for i, (a, b) in enumerate(zip(features, want_features)):
    assert a.shape == b.shape, i
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max(), err_msg=f"feature {i}")
  np.testing.assert_array_equal(jit_apply(d)(v, *args), got)  # the same logits without the features
  if conditional:
    with pytest.raises(ValueError, match="needs the degraded input"):
      jit_apply(d)(v, args[0])


def test_spectrogram_discriminator_gradient_reaches_the_waveform():
  """The STFT is inside the network: d(logits)/d(waveform) is finite and nonzero, and a directional derivative equals
  the central difference of the float64 numpy reference; a silent window's gradient is finite (the power floor)."""
  d = mrsd()
  (y,) = mrsd_inputs(False)
  v = numpy_reference.perturbed(jit_init(d, y), seed=2)
  weights = np.random.default_rng(0).standard_normal((3, 61, 1))
  score = lambda y: jnp.sum(jit_apply(d)(v, y) * weights)
  g = np.asarray(jax.jit(jax.grad(score))(y))
  assert np.all(np.isfinite(g)) and np.mean(g != 0) > 0.95
  direction = np.random.default_rng(1).standard_normal(y.shape)
  eps = 1e-6  # small: the LeakyReLU kinks and the log make larger differences inexact
  ref = lambda y: np.sum(numpy_reference.spectrogram_discriminator(v, y)[0] * weights)
  y64 = np.asarray(y, np.float64)
  want = (ref(y64 + eps * direction) - ref(y64 - eps * direction)) / (2 * eps)
  np.testing.assert_allclose(np.sum(g * direction), want, rtol=1e-3)
  silent = np.asarray(jax.jit(jax.grad(score))(jnp.zeros_like(y)))
  assert np.all(np.isfinite(silent))


def test_spectrogram_discriminator_passes_the_training_steps_empty_batch_stats_through():
  """The train step applies every D with {"params", "batch_stats"} in train mode, batch_stats mutable: the MRSD has
  none, gets an empty collection and hands it back; train mode changes nothing (no dropout, no BatchNorm)."""
  d = mrsd()
  (y,) = mrsd_inputs(False)
  v = jit_init(d, y)
  out, upd = jit_apply(d)({"params": v["params"], "batch_stats": {}}, y, train=True,
                          rngs={"dropout": jax.random.key(0)}, mutable=["batch_stats"])
  assert dict(upd) == {"batch_stats": {}}
  np.testing.assert_array_equal(out, jit_apply(d)(v, y))


def test_spectrogram_discriminator_parameter_count_and_builder():
  """Per resolution (channels C = 32, kernels 3 x 9 then 3 x 3): conv_0 3*9*1*C + C, conv_1..3 3*9*C*C + C each,
  conv_4 3*3*C*C + C, logit 3*3*C + 1 = 896 + 3 * 27,680 + 9,248 + 289 = 93,473; conditional conv_0 has 2 inputs."""
  from sr_jax.config import get_config
  from sr_jax.errors import UserError
  from sr_jax.models import build_discriminator

  config = get_config()
  config.disc.kind = "mrsd"
  d = build_discriminator(config)
  assert isinstance(d, SpectrogramDiscriminator) and d.fft_sizes == (512, 1024, 2048) and d.channels == 32
  rows, total = layer_table(d, window_spec(1, 8192))
  assert total == 3 * 93_473
  assert [r[:2] for r in rows] == [("stft_512", (65, 33, 1)), ("stft_1024", (33, 65, 1)), ("stft_2048", (17, 129, 1)),
                                   ("output", (65 * 33 + 33 * 65 + 17 * 129, 1))]
  config.disc.conditional = True
  _, total = layer_table(build_discriminator(config), window_spec(1, 8192), window_spec(1, 8192))
  assert total == 3 * (93_473 + 3 * 9 * 32)
  for key, value in (("stft_fft_sizes", (512, 510)), ("stft_fft_sizes", (64, 64)), ("stft_fft_sizes", ()),
                     ("channels", 0)):
    bad = get_config()
    bad.disc.kind, bad.disc[key] = "mrsd", value
    with pytest.raises(UserError, match=f"disc.{key} must be"):
      build_discriminator(bad)


@pytest.mark.parametrize("kind", ["global", "conditional_patch"])
def test_global_and_patch_features_are_their_down_block_outputs(kind):
  """return_features=True: the same logits and, as features, each down block's output (after BatchNorm and
  LeakyReLU) against the numpy reference."""
  d = CASES[kind]()
  y, x = x_of(4, 64, 0), x_of(4, 64, 1) * 0.5
  args = (y, x) if d.conditional else (y,)
  v = numpy_reference.perturbed(jit_init(d, *args), seed=4)
  logits, features = jit_apply(d)(v, *args, return_features=True)
  np.testing.assert_array_equal(logits, jit_apply(d)(v, *args))
  want = numpy_reference.discriminator_features(v, *args)
  assert len(features) == len(want) == d.depth
  for a, b in zip(features, want):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max())


def test_feature_matching_loss_hand_computed():
  """Two feature maps: mean |r - f| = (0.5 + 2 + 1 + 1) / 4 = 1.125 and |0.5 - (-1)| = 1.5; the loss is their mean,
  1.3125. Its gradient reaches only the output's features: sign(f - r) / (4 * 2) and -1 / 2; none the target's."""
  from sr_jax import losses

  real = [jnp.array([[1.0, 2.0], [3.0, 4.0]]), jnp.array([[0.5]])]
  fake = [jnp.array([[1.5, 0.0], [2.0, 5.0]]), jnp.array([[-1.0]])]
  np.testing.assert_allclose(losses.feature_matching_loss(real, fake), 1.3125, rtol=1e-7)
  g_real, g_fake = jax.grad(losses.feature_matching_loss, argnums=(0, 1))(real, fake)
  assert all(np.all(np.asarray(g) == 0) for g in g_real)
  np.testing.assert_allclose(g_fake[0], [[0.125, -0.125], [-0.125, 0.125]])
  np.testing.assert_allclose(g_fake[1], [[-0.5]])
  with pytest.raises(ValueError, match="same"):
    losses.feature_matching_loss(real, fake[:1])


def test_grouped_adversarial_losses_weigh_every_resolution_alike():
  """Groups of 1 and 2 patches. Real logits 0 | ln 3, ln 3 and fake 0 | -ln 3, -ln 3: BCE log 2 + log 2 for the first
  group, log(4/3) + log(4/3) for the second (sigmoid(ln 3) = 3/4), so the D loss is log 2 + log(4/3) = log(8/3)
  (the mean over all patches would weigh the second group twice). Generator: log 2 | -log sigmoid(-ln 3) = log 4."""
  from sr_jax import losses

  ln3 = np.log(3.0)
  real = jnp.array([[[0.0], [ln3], [ln3]]])
  fake = jnp.array([[[0.0], [-ln3], [-ln3]]])
  np.testing.assert_allclose(losses.grouped_discriminator_loss(real, fake, (1, 2)), np.log(8 / 3), rtol=1e-6)
  np.testing.assert_allclose(losses.grouped_generator_adversarial_loss(fake, (1, 2)), 1.5 * np.log(2), rtol=1e-6)
  # without groups: the plain losses over all patches
  np.testing.assert_allclose(losses.grouped_discriminator_loss(real, fake), (2 * np.log(2) + 4 * np.log(4 / 3)) / 3,
                             rtol=1e-6)
  with pytest.raises(ValueError, match="do not add up"):
    losses.grouped_generator_adversarial_loss(fake, (1, 1))


def test_collaborative_sampling_and_shaping_run_with_the_spectrogram_discriminator():
  """Collaborative sampling needs only D's logits: with a conditional MRSD, eta = 0 gives G(x) exactly, K steps lower
  every window's -log D(y) (the mean of the patches' probabilities over all resolutions), and one shaping step
  updates the MRSD (its batch_stats stay empty)."""
  import optax

  from sr_jax.models import Generator
  from sr_jax.sampling import make_collaborative_sampler, window_scores
  from sr_jax.sampling.shaping import make_shaping_step
  from sr_jax.train.state import NetState

  gen, disc = Generator(depth=2, width=1 / 16, dropout=0.0), mrsd(conditional=True)
  t = np.arange(MRSD_WINDOW) / 16000
  rng = np.random.default_rng(0)
  x = jnp.asarray((0.3 * np.sin(2 * np.pi * rng.uniform(300, 3000, (4, 1)) * t))[..., None], jnp.float32)
  gen_params = jit_init(gen, x)["params"]
  disc_vars = {"params": jit_init(disc, x, x)["params"], "batch_stats": {}}
  sampler = make_collaborative_sampler(gen, disc, eta=1.0, max_steps=3, layer=1, step_size=1.0)
  plain = jit_apply(gen)({"params": gen_params}, x)
  y0, info0 = sampler(gen_params, disc_vars, x, eta=0.0)
  np.testing.assert_array_equal(y0, plain)
  y, info = sampler(gen_params, disc_vars, x)
  scores = jax.jit(lambda y: window_scores(disc, disc_vars, y, x))
  (before, p_before), (after, p_after) = scores(plain), scores(y)
  np.testing.assert_array_equal(info["steps"], 3)
  assert np.all(np.asarray(after) < np.asarray(before))
  np.testing.assert_allclose(info["prob"], p_after, rtol=1e-5)
  np.testing.assert_allclose(info0["prob"], p_before, rtol=1e-5)

  tx = optax.sgd(1e-2)
  state = NetState(disc_vars["params"], {}, tx.init(disc_vars["params"]))
  step = jax.jit(make_shaping_step(sampler, tx))
  new, m = step(gen_params, state, {"input": x, "target": x * 1.1}, jax.random.key(0), *sampler.knobs())
  assert np.isfinite(m["d_loss"]) and new.batch_stats == {}
  moved = jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), new.params, state.params)
  assert min(jax.tree.leaves(moved)) > 0
