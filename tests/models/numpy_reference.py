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


def generator(variables, x):
  """(N, W) or (N, W, 1) -> (N, W, 1)."""
  p = as64(variables["params"])
  x = windows(x)
  depth = depth_of(p)
  h, skips = x, []
  for b in range(1, depth + 1):
    h = leaky_relu(conv1d(h, p[f"down_{b}"]["conv"], 2))
    skips.append(h)
  h = leaky_relu(conv1d(h, p["bottleneck"]["conv"], 2))
  for l in range(1, depth + 1):
    h = subpixel(relu(conv1d(h, p[f"up_{l}"]["block"]["conv"], 1)))
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
