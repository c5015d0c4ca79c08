"""train.eval_chains: validation on named chains beside data.chain, each logged as valid/NAME/..., scored on that
chain's windows of the valid split; the main validation is what it is without them; a bad spec is one UserError."""

import jax
import numpy as np
import pytest

from configs import tiny
from sr_jax.data import pipeline
from sr_jax.errors import UserError
from sr_jax.train import loop
from sr_jax.train.writer import read_history

CHAINS = "clean=none;noisy=noise white 10"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  from sr_jax.data import corpus

  folder = str(tmp_path_factory.mktemp("tiny_corpus"))
  corpus.build_tiny_corpus(folder)
  return folder


def config_for(data_dir, chains=""):
  c = tiny.get_config()
  c.data.dir, c.train.num_steps, c.train.eval_every, c.checkpoint.every = data_dir, 2, 2, 2
  c.train.eval_batches = 2
  c.train.eval_chains = chains
  c.log.progress = False  # (log.tensorboard on: metrics.jsonl is written with the events)
  return c


def capped_snr_db(target, estimate, cap_db=30.0):
  """numpy float64 per window: 10 log10(E_s / (E_e + 10^(-cap/10) E_s))."""
  t, e = np.asarray(target, np.float64), np.asarray(estimate, np.float64)
  es, ee = np.sum(t * t, axis=1), np.sum((t - e) ** 2, axis=1)
  return 10 * np.log10(es / (ee + 10 ** (-cap_db / 10) * es))


@pytest.fixture(scope="module")
def runs(data_dir, tmp_path_factory):
  with_chains = str(tmp_path_factory.mktemp("with_chains"))
  without = str(tmp_path_factory.mktemp("without"))
  state = jax.device_get(loop.train_and_evaluate(config_for(data_dir, CHAINS), with_chains))
  loop.train_and_evaluate(config_for(data_dir), without)
  return state, read_history(with_chains), read_history(without), with_chains


def last(history, key):
  steps, values = history[key]
  assert list(steps) == [2]
  return float(values[-1])


def test_each_named_chain_is_scored_on_its_own_windows_of_the_valid_split(runs, data_dir):
  state, history, _, workdir = runs
  assert last(history, "valid/clean/input_lsd") == 0.0  # nothing degraded: the input is the target
  assert last(history, "valid/clean/input_snr_capped") == pytest.approx(30.0, abs=1e-4)
  assert "valid/noisy/spline_lsd" not in history  # the spline baseline is data.chain's only
  config = config_for(data_dir, CHAINS)
  gen = loop.build_training(config).models.gen
  batches = pipeline.eval_batches(loop.with_chain(config, "noise white 10"), "valid", workdir, max_batches=2)
  rows = {"input": [], "model": []}
  for batch in batches:
    keep = batch["mask"] > 0
    x, y = batch["input"][keep, :, 0], batch["target"][keep, :, 0]
    out = np.asarray(gen.apply({"params": state.gen.params}, batch["input"]))[keep, :, 0]
    rows["input"].append(capped_snr_db(y, x))
    rows["model"].append(capped_snr_db(y, out))
  for name, values in rows.items():
    want = np.concatenate(values).mean()
    assert last(history, f"valid/noisy/{name}_snr_capped") == pytest.approx(want, abs=2e-3), name
  assert 5.0 < last(history, "valid/noisy/input_snr_capped") < 15.0  # white noise at 10 dB SNR per file


def test_the_main_validation_is_unchanged_by_named_chains(runs):
  _, history, plain, _ = runs
  main = sorted(k for k in plain if k.startswith("valid/"))
  assert "valid/model_lsd" in main and "valid/spline_lsd" in main
  for key in main:
    assert last(history, key) == pytest.approx(last(plain, key), rel=1e-6), key
  assert not any(k.startswith("valid/clean/") for k in plain)


@pytest.mark.parametrize("spec, message", [
    ("noise white 10", r"train.eval_chains: --chains='noise white 10' is neither a file nor NAME=CHAIN"),
    ("a=noise white 10;a=none", r"train.eval_chains: --chains piece 2: chain name 'a' is given twice"),
    ("up=sample 4000 22050", r"train.eval_chains: the chain 'sample 4000 22050' makes 22050 Hz targets but the model"),
])
def test_a_bad_spec_is_one_error_before_anything_is_prepared(spec, message, data_dir, tmp_path, monkeypatch):
  def prepared(*a, **k):
    raise AssertionError("data prepared before the config error was found")

  monkeypatch.setattr(pipeline, "train_iterator", prepared)
  with pytest.raises(UserError, match=message):
    loop.train_and_evaluate(config_for(data_dir, spec), str(tmp_path / "w"))
  assert not (tmp_path / "w").exists()
