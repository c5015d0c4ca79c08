"""The quickstart: a small model (3.5M params) trained on the built-in piano corpus in a few minutes on 2 CPU cores.

Super-resolution 4 kHz -> 16 kHz (`sample 4000 16000`), L2 + multi-resolution STFT loss, depth 4 at 1/4 width,
2048-sample windows. The corpus (30 minutes of synthesised piano) is built on first use (about a minute).
  python launch/train.py --config=configs/quickstart.py --workdir=runs/quickstart
"""

from sr_jax import config as defaults


def get_config(arg: str | None = None):
  c = defaults.get_config()
  c.model.depth = 4
  c.model.width = 0.25  # channels 32, 64, 128, 128
  c.model.dropout = 0.0
  c.model.zero_init_final = True  # start from the input (as good as the soxr interpolation), learn the residual
  c.data.source = "corpus"
  c.data.window = 2048
  c.data.stride = 1024
  c.data.eval_stride = 2048
  c.data.workers = 0  # on 2 cores, worker processes cost more than reading cached windows
  c.loss.lambda_stft = 0.01
  c.optim.lr_g = 3e-4
  c.train.batch_size = 16
  c.train.num_steps = 400
  c.train.eval_every = 100
  c.train.eval_batches = 8
  c.train.log_every = 10
  c.log.audio_every = 200
  c.checkpoint.every = 100
  defaults.apply_overrides(c, arg)
  return c
