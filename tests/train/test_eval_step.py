"""The validation numbers: eval_step's masked sums and loop.evaluate's means against LSD, SNR and the reconstruction
loss written out here in numpy float64 from their definitions, on the same windows, with the generator's output
from the independent numpy forward (tests/models/numpy_reference.py)."""

import jax
import numpy as np
import pytest

from sr_jax.train import loop, sharding
from tests.models import numpy_reference
from tests.train.helpers import fixed_batch, tiny_config

N_FFT, HOP = 2048, 512


def power_spectrogram(x, n_fft=N_FFT, hop=HOP):
  """|S|^2, (frames, n_fft // 2 + 1), of one signal: periodic Hann window, unnormalised one-sided DFT (torch.stft's
  defaults), centred: n_fft // 2 samples on each side, mirrored without repeating the edge sample (torch's "reflect")
  or, for a signal of at most n_fft // 2 samples (too short to mirror), zeros as sr_jax.spectral does; frame l
  starts at sample l * hop of the padded signal."""
  x = np.asarray(x, np.float64)
  p = n_fft // 2
  if len(x) > p:
    padded = np.concatenate([x[p:0:-1], x, x[-2:-p - 2:-1]])
  else:
    padded = np.concatenate([np.zeros(p), x, np.zeros(p)])
  n = np.arange(n_fft)
  window = 0.5 - 0.5 * np.cos(2 * np.pi * n / n_fft)
  frames = np.stack([padded[l * hop:l * hop + n_fft] for l in range(1 + (len(padded) - n_fft) // hop)])
  return np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2  # bins 0 .. n_fft // 2 of sum_n w x e^(-2 pi i k n / N)


def lsd(y, y_hat):
  """X = log10(|S|^2 + 1e-8); per frame the RMS over frequency of X - X_hat; the mean over frames."""
  diff = np.log10(power_spectrogram(y) + 1e-8) - np.log10(power_spectrogram(y_hat) + 1e-8)
  return float(np.mean(np.sqrt(np.mean(diff ** 2, axis=1))))


def snr(y, y_hat):
  y, y_hat = np.asarray(y, np.float64), np.asarray(y_hat, np.float64)
  return float(10 * np.log10(np.sum(y ** 2) / np.sum((y - y_hat) ** 2)))


def snr_capped(y, y_hat, cap_db=30.0):
  """SNR counting each window up to cap_db: signal over (error + 10^(-cap/10) signal)."""
  y, y_hat = np.asarray(y, np.float64), np.asarray(y_hat, np.float64)
  signal = np.sum(y ** 2)
  return float(10 * np.log10(signal / (np.sum((y - y_hat) ** 2) + 10 ** (-cap_db / 10) * signal)))


def batch_of(config, seed, mask):
  """fixed_batch's windows with a faint broadband floor in the target (far bins well above float32's rounding), a
  stand-in spline baseline, and `mask`."""
  b = fixed_batch(config, seed)
  rng = np.random.default_rng(100 + seed)
  b["target"] = (b["target"] + 3e-3 * rng.standard_normal(b["target"].shape)).astype(np.float32)
  b["baseline"] = (0.8 * b["input"] + 0.02 * rng.standard_normal(b["input"].shape)).astype(np.float32)
  b["mask"] = np.asarray(mask, np.float32)
  return b


def numpy_sums(params, batch):
  """What eval_step returns, from the definitions: masked sums over the windows, and the count."""
  y_hat = numpy_reference.generator({"params": params}, batch["input"])
  out = {"count": float(np.sum(batch["mask"]))}
  for name, est in (("model", y_hat), ("input", batch["input"]), ("spline", batch["baseline"])):
    out[f"{name}_lsd"] = sum(m * lsd(y[:, 0], e[:, 0]) for m, y, e in zip(batch["mask"], batch["target"], est))
    out[f"{name}_snr"] = sum(m * snr(y[:, 0], e[:, 0]) for m, y, e in zip(batch["mask"], batch["target"], est))
    out[f"{name}_snr_capped"] = sum(m * snr_capped(y[:, 0], e[:, 0])
                                    for m, y, e in zip(batch["mask"], batch["target"], est))
  out["rec_loss"] = sum(m * np.mean((y - e) ** 2) for m, y, e in zip(batch["mask"], batch["target"], y_hat))
  return out


def test_numpy_lsd_and_snr_by_hand():
  """The references themselves: a signal against itself, a scaled copy (LSD = 2 |log10 a| where the floor is far
  below), and Parseval for one frame of a zero-padded window."""
  y = np.random.default_rng(0).standard_normal(3000)
  assert lsd(y, y) == 0.0
  assert lsd(y, 2 * y) == pytest.approx(2 * np.log10(2), rel=1e-6)
  assert snr(y, 0.5 * y) == pytest.approx(10 * np.log10(4))
  assert snr_capped(y, y) == pytest.approx(30.0)  # exact: the cap itself
  assert snr_capped(y, 0.5 * y) == pytest.approx(-10 * np.log10(0.25 + 1e-3))  # 6.02 dB counts as 6.00
  short = y[:64]  # one frame, the window's centre 1024 .. 1087 of the padded signal
  window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(1024, 1088) / N_FFT)
  power = power_spectrogram(short)
  assert power.shape == (1, N_FFT // 2 + 1)
  both_sides = 2 * power[0].sum() - power[0, 0] - power[0, -1]
  assert both_sides / N_FFT == pytest.approx(np.sum((short * window) ** 2), rel=1e-9)


@pytest.mark.parametrize("window", [512, 2048])  # too short to mirror (zero padding: the tiny runs) / mirrored
def test_eval_step_and_evaluate_match_numpy_on_the_same_windows(window):
  config = tiny_config(**{"data.window": window, "data.stride": window // 2})
  t = loop.build_training(config)
  state = t.init()
  params = jax.device_get(state.gen.params)
  batches = [batch_of(config, 0, [1, 1, 1, 0, 1, 1, 0, 1]), batch_of(config, 1, [1] * 8)]
  sums = [numpy_sums(params, b) for b in batches]
  got = jax.device_get(t.eval_step(state, sharding.global_batch(batches[0], t.mesh)))
  assert set(got) == set(sums[0])
  for k, want in sums[0].items():
    np.testing.assert_allclose(got[k], want, rtol=1e-5, err_msg=k)
  assert abs(sums[0]["model_lsd"] - sums[0]["input_lsd"]) > 0.05  # the model's output is not its input
  # loop.evaluate: means over the unmasked windows of all batches
  means = loop.evaluate(t.eval_step, state, batches, t.mesh)
  count = sums[0]["count"] + sums[1]["count"]
  assert count == 14
  for k in sums[0]:
    if k != "count":
      np.testing.assert_allclose(means[k], (sums[0][k] + sums[1][k]) / count, rtol=1e-5, err_msg=k)
