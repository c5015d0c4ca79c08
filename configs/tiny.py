"""A model of a few seconds for tests and smoke runs: depth 3, 1/16 width, 512-sample windows.

Data: a tiny synthetic piano corpus (10 short files) generated on first use in a second or two.
"""

from sr_jax import config as defaults


def get_config(arg: str | None = None):
  c = defaults.get_config()
  c.model.depth = 3
  c.model.width = 1 / 16  # channels 8, 16, 32
  c.model.dropout = 0.0
  c.disc.patch_depth = 3
  c.data.source = "tiny"
  c.data.window = 512
  c.data.stride = 256
  c.data.eval_stride = 256
  c.data.workers = 0
  c.train.batch_size = 8
  c.train.num_steps = 20
  c.train.eval_every = 10
  c.train.eval_batches = 2
  c.train.log_every = 5
  c.log.audio_every = 10
  c.checkpoint.every = 10
  defaults.apply_overrides(c, arg)
  return c
