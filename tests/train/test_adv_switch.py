"""When the adversarial term switches on: at loss.adv_start_step, or (loss.adv_start_d_loss > 0) at the first step whose
running discriminator loss (EMA 0.99 from log 4, updated with that step's D loss) is below the threshold; never
before, and latched after."""

import jax
import numpy as np

from sr_jax.train import loop, sharding, steps as steps_lib
from tests.train.helpers import fixed_batch, tiny_config

LAMBDA, STEPS = 0.1, 9


def run(**overrides):
  """STEPS train steps of a small GAN on one batch: per-step metrics and the final state."""
  config = tiny_config(**{"loss.lambda_adv": LAMBDA, "model.dropout": 0.0, "optim.lr_g": 1e-3, "optim.lr_d": 3e-3,
                          **overrides})
  config.mesh.data = 1
  t = loop.build_training(config)
  state, history = t.init(), []
  for step in range(STEPS):
    state, m = t.train_step(state, sharding.global_batch(fixed_batch(config), t.mesh))
    history.append({k: float(v) for k, v in jax.device_get(m).items()})
  return history, jax.device_get(state)


def running_d_loss(d_losses):
  """The EMA after each step, in float64: ema <- 0.99 ema + 0.01 d_loss, from log 4 (the loss of a D at chance)."""
  ema, out = np.log(4.0), []
  for d in d_losses:
    ema = steps_lib.EMA * ema + (1 - steps_lib.EMA) * d
    out.append(ema)
  return np.array(out)


def check_generator_loss(history, first_on):
  for i, m in enumerate(history):
    want = m["rec_loss"] + (LAMBDA * m["adv_loss"] if i >= first_on else 0.0)
    np.testing.assert_allclose(m["g_loss"], want, rtol=1e-6, err_msg=f"step {i}")
    assert m["adv_loss"] > 0.1  # the term exists at every step; only its weight switches


def test_the_adversarial_term_switches_on_at_the_right_step_and_not_before():
  assert steps_lib.EMA == 0.99
  # by step count: generator step 5 (0-based) is the first with the term
  by_step, _ = run(**{"loss.adv_start_step": 5, "loss.adv_start_d_loss": -1.0})
  assert [m["adv_on"] for m in by_step] == [0.0] * 5 + [1.0] * (STEPS - 5)
  check_generator_loss(by_step, 5)
  # by the running D loss: steps 0..5 of that run had no adversarial term yet, so their D losses are those of any run
  # until it switches; pick the threshold half-way between the EMA before and after step k
  d = np.array([m["d_loss"] for m in by_step])
  ema = running_d_loss(d)
  assert ema[5] < np.log(4.0) - 0.01, ema  # the critic learns: its running loss falls from log 4
  k = 3
  gap = ema[:k].min() - ema[k]  # the first step below the threshold is k
  assert gap > 1e-3, ema  # far above the float32 rounding of the EMA
  threshold = float(ema[k] + gap / 2)
  by_loss, final = run(**{"loss.adv_start_step": 0, "loss.adv_start_d_loss": threshold})
  np.testing.assert_allclose([m["d_loss"] for m in by_loss[:k + 1]], d[:k + 1], rtol=1e-5)
  assert [m["adv_on"] for m in by_loss] == [0.0] * k + [1.0] * (STEPS - k)  # off at steps 0..k-1 (adv_start_step
  check_generator_loss(by_loss, k)  # 0 is ignored while the loss rule is on), on from step k and latched after
  # the state's running loss is the float64 recursion over this run's D losses
  np.testing.assert_allclose(final.d_loss_ema, running_d_loss([m["d_loss"] for m in by_loss])[-1], rtol=1e-5)
  assert bool(final.adv_on)
