"""Shared set-up for the training tests: a tiny config and a fixed batch of degraded/clean windows."""

import numpy as np

from configs import tiny


def tiny_config(**overrides):
  c = tiny.get_config()
  c.model.depth, c.model.width, c.data.window, c.data.stride = 2, 1 / 16, 64, 32
  c.disc.patch_depth = 2
  c.ae.dropout = c.disc.dropout = 0.0
  c.train.batch_size = 8
  for path, value in overrides.items():
    node = c
    *parents, leaf = path.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return c


def fixed_batch(config, seed=0):
  """A sine mixture (target) and a smoothed, noisier version of it (input)."""
  rng = np.random.default_rng(seed)
  b, w = config.train.batch_size, config.data.window
  t = np.arange(w) / 16000
  f = rng.uniform(200, 3000, (b, 3, 1))
  target = (0.3 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6, (b, 3, 1)))).sum(1)
  kernel = np.ones(4) / 4
  inp = np.stack([np.convolve(x, kernel, mode="same") for x in target]) + 0.01 * rng.normal(size=(b, w))
  return {"input": inp[..., None].astype(np.float32), "target": target[..., None].astype(np.float32),
          "mask": np.ones((b,), np.float32)}
