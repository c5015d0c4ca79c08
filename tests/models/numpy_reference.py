"""Independent float64 numpy forward passes of sr_jax's networks, written from their definitions (the module
docstrings of sr_jax/models/*: Kuleshov et al. 2017's U-Net as the original EPFL code built it) and reading nothing
but the flax variable trees. No sr_jax code runs here, so a test that compares a network with these functions checks
the network, not the code against itself.

Conventions, channels-last (N, W, C):
  conv1d     "same" zero padding of k // 2 samples on both sides, stride s, kernel K (k, Cin, Cout), bias b:
             out[n, t, o] = b[o] + sum_{i, c} xpad[n, s t + i, c] K[i, c, o],  t = 0 .. (W + 2 (k // 2) - k) // s
  subpixel   (N, W, C) -> (N, 2W, C/2), out[n, 2 w + i, c] = x[n, w, i C/2 + c]
  BatchNorm  eval: (x - mean) / sqrt(var + 1e-5) * scale + bias with the running statistics; train: the batch's
             mean and (biased) variance over (N, W), and running <- 0.9 running + 0.1 batch
  LeakyReLU 0.2 after down blocks and the bottleneck, ReLU in up blocks; dropout off (eval mode or rate 0)

Networks (B = the number of down_* blocks in the tree):
  generator      down_b: conv stride 2, LeakyReLU (skip d_b) | bottleneck: conv stride 2, LeakyReLU |
                 up_l (mirrors b = B + 1 - l): conv stride 1, ReLU, subpixel, concat [., d_b] |
                 final: conv, subpixel, + x
  discriminator  input [x, y] on channels if conditional (condition first) | down_b: conv stride 2, BatchNorm,
                 LeakyReLU | global: flatten, dense -> (N, 1) | patch: conv stride 1 -> (N, W / 2**B, 1)
  autoencoder    down_b with BatchNorm | bottleneck | up_l: conv stride 1, ReLU, subpixel (no concat) |
                 final: conv, subpixel (no input skip) -> (bottleneck features, reconstruction)
  spectrogram    (the MRSD) for each sub-tree stft_<n>, in the tree's order: the input's log-magnitude spectrogram
  discriminator  0.5 log(|S|^2 + 1e-8) (STFT below, hop n / 4), as one channel (N, frames, bins, 1), the degraded
                 input's as a first channel if conditional | conv_0 .. conv_4: conv2d, frequency strides 1, 2, 2, 2, 1,
                 LeakyReLU | logit: conv2d -> patch logits flattened frames first, concatenated over the sub-trees
  STFT           periodic Hann w[m] = 0.5 - 0.5 cos(2 pi m / n); the signal padded by n // 2 on both sides by
                 reflection without the edge sample (zeros if it has no more than n // 2 samples); frame l starts at
                 l * hop; S[l, k] = sum_m w[m] xpad[l hop + m] exp(-2 pi i k m / n), k = 0 .. n / 2
  conv2d         (N, T, F, C), kernel K (kt, kf, Cin, Cout), zero padding kt // 2, kf // 2 on both sides, strides
                 (st, sf): out[n, t, f, o] = b[o] + sum_{i, j, c} xpad[n, st t + i, sf f + j, c] K[i, j, c, o]
"""

from __future__ import annotations

import numpy as np

BN_EPS, BN_MOMENTUM, LEAKY_SLOPE = 1e-5, 0.9, 0.2


def as64(tree):
  """A nested dict of arrays -> the same dict of float64 numpy arrays."""
  if isinstance(tree, dict) or hasattr(tree, "items"):
    return {k: as64(v) for k, v in tree.items()}
  return np.asarray(tree, np.float64)


def perturbed(variables, seed: int = 0, scale: float = 0.2):
  """A copy of a flax variable tree where every leaf matters: biases, BatchNorm scales/offsets and running means get
  random values (flax initialises them to 0 or 1), running variances are drawn from [0.5, 2], kernels get noise."""
  rng = np.random.default_rng(seed)

  def walk(tree, path):
    if isinstance(tree, dict) or hasattr(tree, "items"):
      return {k: walk(v, path + (k,)) for k, v in tree.items()}
    a = np.asarray(tree, np.float32)
    if path[-1] == "var":
      return rng.uniform(0.5, 2.0, a.shape).astype(np.float32)
    if path[-1] == "scale":
      return rng.uniform(0.5, 1.5, a.shape).astype(np.float32)
    spread = scale if path[-1] in ("bias", "mean") else scale * max(float(a.std()), 1e-3)
    return (a + spread * rng.standard_normal(a.shape)).astype(np.float32)

  return walk(variables, ())


def windows(x):
  x = np.asarray(x, np.float64)
  return x[..., None] if x.ndim == 2 else x


def conv1d(x, p, stride: int):
  """The definition above, one kernel tap at a time (float64)."""
  kernel, bias = p["kernel"], p["bias"]
  k = kernel.shape[0]
  n, w, _ = x.shape
  pad = k // 2
  xpad = np.zeros((n, w + 2 * pad, x.shape[2]))
  xpad[:, pad:pad + w] = x
  t = (w + 2 * pad - k) // stride + 1
  out = np.broadcast_to(bias, (n, t, kernel.shape[2])).copy()
  for i in range(k):
    out += xpad[:, i:i + stride * (t - 1) + 1:stride, :] @ kernel[i]
  return out


def leaky_relu(x):
  return np.where(x >= 0, x, LEAKY_SLOPE * x)


def relu(x):
  return np.maximum(x, 0.0)


def subpixel(x):
  n, w, c = x.shape
  out = np.empty((n, 2 * w, c // 2))
  out[:, 0::2] = x[:, :, :c // 2]  # i = 0: the first half of the channels at even times
  out[:, 1::2] = x[:, :, c // 2:]  # i = 1: the second half at odd times
  return out


def batch_norm(x, p, stats, train: bool):
  """(normalised x, new running statistics)."""
  if train:
    mean, var = x.mean(axis=(0, 1)), x.var(axis=(0, 1))
    new = {"mean": BN_MOMENTUM * stats["mean"] + (1 - BN_MOMENTUM) * mean,
           "var": BN_MOMENTUM * stats["var"] + (1 - BN_MOMENTUM) * var}
  else:
    mean, var, new = stats["mean"], stats["var"], stats
  return (x - mean) / np.sqrt(var + BN_EPS) * p["scale"] + p["bias"], new


def depth_of(params) -> int:
  return sum(1 for name in params if name.startswith("down_"))


def generator(variables, x, up=None):
  """(N, W) or (N, W, 1) -> (N, W, 1); `up` the up blocks' activation (default relu, the original's)."""
  up = relu if up is None else up
  p = as64(variables["params"])
  x = windows(x)
  depth = depth_of(p)
  h, skips = x, []
  for b in range(1, depth + 1):
    h = leaky_relu(conv1d(h, p[f"down_{b}"]["conv"], 2))
    skips.append(h)
  h = leaky_relu(conv1d(h, p["bottleneck"]["conv"], 2))
  for l in range(1, depth + 1):
    h = subpixel(up(conv1d(h, p[f"up_{l}"]["block"]["conv"], 1)))
    h = np.concatenate([h, skips[depth - l]], axis=-1)  # up_l mirrors level b = depth + 1 - l
  return x + subpixel(conv1d(h, p["final"], 1))


def _down_with_norm(p, stats, h, train: bool):
  new = {}
  for b in range(1, depth_of(p) + 1):
    h = conv1d(h, p[f"down_{b}"]["conv"], 2)
    h, new[f"down_{b}"] = batch_norm(h, p[f"down_{b}"]["norm"], stats[f"down_{b}"]["norm"], train)
    new[f"down_{b}"] = {"norm": new[f"down_{b}"]}
    h = leaky_relu(h)
  return h, new


def discriminator(variables, y, x=None, train: bool = False):
  """Global or patch, conditional or not (read from the tree): (logits, new batch_stats)."""
  p, stats = as64(variables["params"]), as64(variables["batch_stats"])
  h = windows(y)
  if p["down_1"]["conv"]["kernel"].shape[1] == 2:  # conditional: the degraded input first, then the candidate
    h = np.concatenate([windows(x), h], axis=-1)
  h, new = _down_with_norm(p, stats, h, train)
  if p["logit"]["kernel"].ndim == 2:  # global: flatten (time-major, then channels), dense
    return h.reshape(h.shape[0], -1) @ p["logit"]["kernel"] + p["logit"]["bias"], new
  return conv1d(h, p["logit"], 1), new  # patch


def discriminator_features(variables, y, x=None, train: bool = False):
  """A global or patch discriminator's down block outputs (after BatchNorm and LeakyReLU), level 1 first."""
  p, stats = as64(variables["params"]), as64(variables["batch_stats"])
  h = windows(y)
  if p["down_1"]["conv"]["kernel"].shape[1] == 2:
    h = np.concatenate([windows(x), h], axis=-1)
  features = []
  for b in range(1, depth_of(p) + 1):
    h = conv1d(h, p[f"down_{b}"]["conv"], 2)
    h, _ = batch_norm(h, p[f"down_{b}"]["norm"], stats[f"down_{b}"]["norm"], train)
    h = leaky_relu(h)
    features.append(h)
  return features


def stft(signal, n: int):
  """(N, W) -> complex (N, frames, n / 2 + 1), the definition above with hop n / 4, one frame at a time."""
  signal = np.asarray(signal, np.float64)
  hop, pad = n // 4, n // 2
  mode = "reflect" if signal.shape[-1] > pad else "constant"
  xpad = np.pad(signal, [(0, 0), (pad, pad)], mode=mode)
  window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)
  frames = 1 + (xpad.shape[-1] - n) // hop
  k, m = np.arange(n // 2 + 1), np.arange(n)
  basis = np.exp(-2j * np.pi * np.outer(m, k) / n)  # (n, bins), the DFT written out (no FFT)
  return np.stack([(xpad[:, l * hop:l * hop + n] * window) @ basis for l in range(frames)], axis=1)


def conv2d(x, p, strides):
  """The definition above, one kernel tap at a time (float64)."""
  kernel, bias = p["kernel"], p["bias"]
  kt, kf = kernel.shape[:2]
  st, sf = strides
  n, t, f, c = x.shape
  xpad = np.zeros((n, t + 2 * (kt // 2), f + 2 * (kf // 2), c))
  xpad[:, kt // 2:kt // 2 + t, kf // 2:kf // 2 + f] = x
  t_out, f_out = (xpad.shape[1] - kt) // st + 1, (xpad.shape[2] - kf) // sf + 1
  out = np.broadcast_to(bias, (n, t_out, f_out, kernel.shape[3])).copy()
  for i in range(kt):
    for j in range(kf):
      out += xpad[:, i:i + st * (t_out - 1) + 1:st, j:j + sf * (f_out - 1) + 1:sf, :] @ kernel[i, j]
  return out


SPECTROGRAM_FREQUENCY_STRIDES = (1, 2, 2, 2, 1)  # conv_0 .. conv_4


def spectrogram_discriminator(variables, y, x=None):
  """(logits (N, P, 1), [every conv_i output of every sub-tree], [patches per sub-tree]) of the MRSD."""
  p = as64(variables["params"])
  logits, features, counts = [], [], []
  for name, tree in p.items():  # stft_<n>, in the order the network created them
    n = int(name.split("_")[1])
    log_mag = lambda s: 0.5 * np.log(np.abs(stft(windows(s)[..., 0], n)) ** 2 + 1e-8)[..., None]
    h = log_mag(y)
    if tree["conv_0"]["kernel"].shape[2] == 2:  # conditional: the degraded input's spectrogram first
      h = np.concatenate([log_mag(x), h], axis=-1)
    for i, stride in enumerate(SPECTROGRAM_FREQUENCY_STRIDES):
      h = leaky_relu(conv2d(h, tree[f"conv_{i}"], (1, stride)))
      features.append(h)
    out = conv2d(h, tree["logit"], (1, 1))
    logits.append(out.reshape(out.shape[0], -1, 1))
    counts.append(logits[-1].shape[1])
  return np.concatenate(logits, axis=1), features, counts


def autoencoder(variables, x, train: bool = False):
  """(features (N, W / 2**(B+1), C_B), reconstruction (N, W, 1), new batch_stats)."""
  p, stats = as64(variables["params"]), as64(variables["batch_stats"])
  h, new = _down_with_norm(p, stats, windows(x), train)
  features = leaky_relu(conv1d(h, p["bottleneck"]["conv"], 2))
  h = features
  for l in range(1, depth_of(p) + 1):
    h = subpixel(relu(conv1d(h, p[f"up_{l}"]["block"]["conv"], 1)))
  return features, subpixel(conv1d(h, p["final"], 1)), new


def rel_err(got, want) -> float:
  got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
  return float(np.linalg.norm(got - want) / np.linalg.norm(want))
