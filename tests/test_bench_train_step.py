"""bench/train_step.py and bench/torch_reference.py: peak lookup, derived columns, merged tables, the s2d conv, and
that the PyTorch reference's step is sr_jax's (same loss, same Adam update) on a tiny model."""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import train_step  # noqa: E402  (bench/ is a namespace package: no __init__.py)
from configs import tiny  # noqa: E402


@pytest.mark.parametrize("kind, peak", [
    ("NVIDIA H100 80GB HBM3", 989.0), ("NVIDIA H100 PCIe", 756.0), ("NVIDIA H100 NVL", 835.0),
    ("NVIDIA H200", 989.0), ("NVIDIA GH200 480GB", 989.0), ("NVIDIA A100-SXM4-80GB", 312.0),
    ("NVIDIA A100 80GB PCIe", 312.0), ("NVIDIA L4", 121.0), ("NVIDIA L40S", 362.0), ("TPU v5 lite", 197.0),
    ("TPU v5", 459.0), ("TPU v4", 275.0), ("cpu", None), ("NVIDIA GeForce RTX 3090", None), ("", None)])
def test_peak_by_device_kind(kind, peak):
  assert train_step.peak_tflops_for(kind, "bfloat16") == peak
  assert train_step.peak_tflops_for(kind, "float32") is None  # only bf16 peaks are tabled


def test_derive_gpu_row():
  row = train_step.derive({"name": "l2_d8", "step_s": 0.05, "torch_step_s": 0.1, "flops": 2e13,
                           "samples": 64 * 8192, "roofline_gflops_per_s": 8e5, "peak_tflops": 1000.0})
  assert row["samples_per_s"] == pytest.approx(64 * 8192 / 0.05)
  assert row["gflop"] == pytest.approx(2e4)
  assert row["gflops_per_s"] == pytest.approx(4e5)
  assert row["tflops_per_s"] == pytest.approx(400.0)
  assert row["peak_fraction"] == pytest.approx(0.4)
  assert row["roofline_fraction"] == pytest.approx(0.5)
  assert row["torch_tflops_per_s"] == pytest.approx(200.0)
  assert row["torch_peak_fraction"] == pytest.approx(0.2)
  assert row["speedup_vs_torch"] == pytest.approx(2.0)


def test_derive_without_peak_or_torch():
  row = train_step.derive({"name": "cpu", "step_s": 2.0, "flops": 1e10, "samples": 100}, roofline=1e10)
  assert row["roofline_fraction"] == pytest.approx(0.5)  # the roofline argument where the row has none
  assert row["gflops_per_s"] == pytest.approx(5.0)
  for key in ("peak_fraction", "torch_tflops_per_s", "torch_peak_fraction", "speedup_vs_torch"):
    assert key not in row
  matmul = train_step.derive({"name": "matmul", "gflops_per_s": 500e3, "peak_tflops": 1000.0})
  assert matmul["peak_fraction"] == pytest.approx(0.5)


def test_merge_rows_joins_by_name():
  jax_doc = {"rows": [{"name": "matmul", "gflops_per_s": 7e5},
                      {"name": "l2_d8 b64", "step_s": 0.05, "flops": 2e13, "samples": 10, "peak_tflops": 989.0,
                       "load_1m": 1.0}]}
  torch_doc = {"rows": [{"name": "l2_d8 b64", "torch_step_s": 0.2, "torch_device": "cuda", "load_1m": 3.0,
                         "peak_tflops": None}]}
  rows = train_step.merge_rows([jax_doc, torch_doc])
  assert [r["name"] for r in rows] == ["matmul", "l2_d8 b64"]
  both = rows[1]
  assert both["load_1m"] == 1.0 and both["peak_tflops"] == 989.0  # the first file's values win
  assert both["speedup_vs_torch"] == pytest.approx(4.0)
  assert both["torch_tflops_per_s"] == pytest.approx(100.0)
  assert both["torch_peak_fraction"] == pytest.approx(100.0 / 989.0)


def test_columns_for():
  assert train_step.columns_for([{"name": "a"}], show_peak=False) == train_step.COLUMNS  # the CPU table
  cols = train_step.columns_for([{"name": "a", "peak_tflops": 1.0}], show_peak=False)
  assert cols[cols.index("roofline_fraction") + 1:][:3] == ["tflops_per_s", "peak_tflops", "peak_fraction"]
  assert cols[cols.index("speedup_vs_torch") + 1:][:2] == ["torch_tflops_per_s", "torch_peak_fraction"]
  assert train_step.columns_for([{"name": "a"}], show_peak=True) == cols


def test_space_to_depth_conv_is_the_stride_2_conv():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 64, 3))
  for kernel in (9, 17):
    plain = train_step.layers.conv(5, kernel, 2, jnp.float32)
    params = plain.init(jax.random.PRNGKey(1), x)
    params = jax.tree.map(lambda p: p + 0.1, params)  # a nonzero bias too
    want = plain.apply(params, x)
    got = train_step.SpaceToDepthConv(5, kernel).apply(params, x)
    assert got.shape == want.shape == (2, 32, 5)
    np.testing.assert_allclose(got, want, atol=1e-5)


def _tiny_stft_config():
  c = tiny.get_config()
  c.loss.lambda_stft = 0.1
  c.loss.stft_fft_sizes, c.loss.stft_hop_sizes = (64, 128), (16, 32)  # torch's reflect pad needs n_fft/2 < window
  c.train.batch_size = 4
  return c


def test_torch_step_is_the_sr_jax_step():
  """Same weights and batch: the torch reference's loss (L2 + MR-STFT) is sr_jax's, and one Adam step moves the
  generator's weights the same way (same lr and betas)."""
  torch = pytest.importorskip("torch")
  from bench import torch_reference  # noqa: PLC0415
  from sr_jax.train import state as state_lib, steps as steps_lib  # noqa: PLC0415

  c = _tiny_stft_config()
  models, opts = state_lib.build_models(c), state_lib.make_optimizers(c)

  def perturbed_state():  # nonzero final conv and biases (the init has zeros); jitted: eager init is slower
    state = state_lib.init_state(c, models, opts)
    leaves, tree = jax.tree.flatten(state.gen.params)
    keys = jax.random.split(jax.random.PRNGKey(2), len(leaves))
    params = jax.tree.unflatten(tree, [p + 0.05 * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)])
    return state.replace(gen=state.gen.replace(params=params, opt_state=opts.gen.init(params)))

  state = jax.jit(perturbed_state)()
  params = state.gen.params
  data = train_step.random_batch(c)
  train, _ = steps_lib.make_steps(c, models, opts)
  new, metrics = jax.jit(train)(state, {k: jnp.asarray(v) for k, v in data.items()})

  step, modules = torch_reference.make_step(c)
  modules["gen"].load_flax(jax.device_get(params))
  before = modules["gen"].down[0].weight.detach().clone()
  x, y = (torch.from_numpy(data[k].transpose(0, 2, 1).copy()) for k in ("input", "target"))
  loss = float(step(x, y))
  assert metrics["stft_loss"] > 0.1 * metrics["rec_loss"]  # the STFT term is a real part of the loss
  assert loss == pytest.approx(float(metrics["g_loss"]), rel=1e-4)

  moved_torch = (modules["gen"].down[0].weight.detach() - before).numpy().transpose(2, 1, 0)
  moved_jax = np.asarray(new.gen.params["down_1"]["conv"]["kernel"] - params["down_1"]["conv"]["kernel"])
  # Adam's first step is lr * g / (|g| + eps) ~ lr * sign(g): the same lr and the same gradients give the same move.
  assert np.median(np.abs(moved_jax)) == pytest.approx(c.optim.lr_g, rel=0.05)
  assert np.mean(np.abs(moved_torch - moved_jax) < 0.05 * c.optim.lr_g) > 0.98


def test_torch_step_bfloat16_autocast_runs():
  torch = pytest.importorskip("torch")
  from bench import torch_reference  # noqa: PLC0415

  data = train_step.random_batch(_tiny_stft_config())
  x, y = (torch.from_numpy(data[k].transpose(0, 2, 1).copy()) for k in ("input", "target"))
  losses = {}
  for dtype in ("float32", "bfloat16"):  # the same initial weights (same seed), the same batch
    c = _tiny_stft_config()
    c.model.dtype = dtype
    torch.manual_seed(0)
    step, _ = torch_reference.make_step(c, "cpu")
    losses[dtype] = float(step(x, y))
  assert np.isfinite(losses["bfloat16"])
  assert losses["bfloat16"] != losses["float32"]  # autocast really computed in bfloat16 ...
  assert losses["bfloat16"] == pytest.approx(losses["float32"], rel=0.05)  # ... to bfloat16's precision
