"""train.init_from with a discriminator: a new run starts from the source run's generator AND discriminator (params
and BatchNorm statistics), with fresh optimizers at step 0; only the generator when either run has no discriminator;
a discriminator of another shape is refused."""

import jax
import numpy as np
import pytest

from sr_jax.errors import UserError
from sr_jax.train import loop
from tests.train.helpers import tiny_config


def gan_config(data_dir, **overrides):
  return tiny_config(**{"data.dir": data_dir, "data.eval_stride": 64, "loss.lambda_adv": 0.1, "loss.adv_start_step": 0,
                        "optim.lr_g": 1e-3, "optim.lr_d": 1e-3, "train.num_steps": 3, "train.eval_every": 3,
                        "train.eval_batches": 1, "checkpoint.every": 3, "log.tensorboard": False,
                        "log.progress": False, **overrides})


@pytest.fixture(scope="module")
def source(tmp_path_factory):
  """A 3-step GAN run (its networks moved away from their initial values) and its final state."""
  from sr_jax.data import corpus

  data_dir = str(tmp_path_factory.mktemp("tiny_corpus"))
  corpus.build_tiny_corpus(data_dir)
  workdir = str(tmp_path_factory.mktemp("gan_source"))
  return data_dir, workdir, jax.device_get(loop.train_and_evaluate(gan_config(data_dir), workdir))


def assert_same(a, b):
  leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
  assert jax.tree.structure(a) == jax.tree.structure(b) and len(leaves_a) > 0
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def differs(a, b):
  return any(not np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def start(data_dir, workdir, init, **overrides):
  """A run of 0 steps: the state its training loop starts from (the loop trains the state it returns)."""
  config = gan_config(data_dir, **{"train.init_from": init, "train.num_steps": 0, **overrides})
  return config, jax.device_get(loop.train_and_evaluate(config, workdir))


def test_generator_and_discriminator_start_from_the_source_run(source, tmp_path):
  data_dir, workdir, trained = source
  config, state = start(data_dir, str(tmp_path / "fine"), workdir)
  fresh = jax.device_get(loop.build_training(config).init())
  assert int(state.step) == 0
  for net in ("gen", "disc"):
    assert differs(getattr(trained, net).params, getattr(fresh, net).params)  # the source moved away from init
    assert_same(getattr(state, net).params, getattr(trained, net).params)
    assert_same(getattr(state, net).opt_state, getattr(fresh, net).opt_state)  # optimizers start fresh
  assert differs(trained.disc.batch_stats, fresh.disc.batch_stats)
  assert_same(state.disc.batch_stats, trained.disc.batch_stats)


def test_only_the_generator_when_one_run_has_no_discriminator(source, tmp_path):
  data_dir, workdir, trained = source
  _, state = start(data_dir, str(tmp_path / "no_disc"), workdir, **{"loss.lambda_adv": 0.0})
  assert state.disc is None
  assert_same(state.gen.params, trained.gen.params)
  # a source without a discriminator: this run's discriminator starts from its own initialisation
  plain = str(tmp_path / "plain_source")
  _, plain_state = start(data_dir, plain, "", **{"loss.lambda_adv": 0.0, "train.num_steps": 1})
  config, state = start(data_dir, str(tmp_path / "from_plain"), plain)
  assert_same(state.gen.params, plain_state.gen.params)
  fresh = jax.device_get(loop.build_training(config).init())
  assert_same(state.disc.params, fresh.disc.params)
  assert_same(state.disc.batch_stats, fresh.disc.batch_stats)


def test_a_discriminator_of_another_shape_is_refused(source, tmp_path):
  data_dir, workdir, _ = source
  with pytest.raises(UserError, match=r"train.init_from: the discriminator in .* has another shape .*disc.kind"):
    start(data_dir, str(tmp_path / "patch"), workdir, **{"disc.kind": "patch"})


def test_a_mask_front_end_added_to_a_generator_trained_without_one_starts_fresh(source, tmp_path):
  data_dir, workdir, trained = source
  mask = {"model.mask_channels": 8, "model.mask_fft": 32, "model.mask_hop": 8}
  config, state = start(data_dir, str(tmp_path / "masked"), workdir, **mask)
  fresh = jax.device_get(loop.build_training(config).init())
  assert set(state.gen.params) == set(trained.gen.params) | {"mask"}
  assert_same({k: v for k, v in state.gen.params.items() if k != "mask"}, trained.gen.params)
  assert_same(state.gen.params["mask"], fresh.gen.params["mask"])
  # the other way round (a generator with a mask into a config without one) is a shape mismatch
  masked_run = str(tmp_path / "masked_source")
  start(data_dir, masked_run, "", **mask, **{"train.num_steps": 1})
  with pytest.raises(UserError, match=r"train.init_from: the generator in .* has another shape"):
    start(data_dir, str(tmp_path / "unmasked"), masked_run)
  with pytest.raises(UserError, match=r"has another shape than this config's \(model.*mask_phase.*\)"):
    start(data_dir, str(tmp_path / "turned"), masked_run, **mask, **{"model.mask_phase": True})  # no turn head


def test_a_fill_added_to_a_generator_with_a_mask_starts_fresh_and_the_rest_is_loaded(source, tmp_path):
  data_dir, _, _ = source
  mask = {"model.mask_channels": 8, "model.mask_fft": 32, "model.mask_hop": 8}
  masked_run = str(tmp_path / "masked_source")
  _, trained = start(data_dir, masked_run, "", **mask, **{"train.num_steps": 1})
  config, state = start(data_dir, str(tmp_path / "filled"), masked_run, **mask, **{"model.fill_channels": 4})
  fresh = jax.device_get(loop.build_training(config).init())
  assert set(state.gen.params) == set(trained.gen.params) | {"fill"}
  assert_same({k: v for k, v in state.gen.params.items() if k != "fill"}, trained.gen.params)
  assert_same(state.gen.params["fill"], fresh.gen.params["fill"])
  filled_run = str(tmp_path / "filled_source")  # the other way round: a shape mismatch
  start(data_dir, filled_run, "", **mask, **{"model.fill_channels": 4, "train.num_steps": 1})
  with pytest.raises(UserError, match=r"has another shape than this config's \(model.*fill_layers\)"):
    start(data_dir, str(tmp_path / "unfilled"), filled_run, **mask)
