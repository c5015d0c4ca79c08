r"""Prints every network of a config: one table per network (layer, output shape, params) and the totals.

  python launch/describe.py --config=configs/default.py
  python launch/describe.py --config=configs/default.py:depth=4,window=1024
  python launch/describe.py --config=configs/default.py --config.model.width=0.25

Shapes come from jax.eval_shape: nothing is allocated, so the 100M-parameter original runs instantly.
"""

from absl import app
from ml_collections import config_flags

from sr_jax import resources
from sr_jax.errors import exit_on_user_error
from sr_jax.models import build_autoencoder, build_discriminator, build_generator, check_window
from sr_jax.models.summary import format_table, layer_table, window_spec

_CONFIG = config_flags.DEFINE_config_file(
    "config", resources.config_path("default"),
    "Config file, or the name of a bundled one (configs/NAME.py), with overrides: NAME:key=value,...")


def describe(config) -> str:
  window = config.data.window
  check_window(window, config.model.depth)
  x = window_spec(1, window)
  nets = [("generator", build_generator(config), (x,))]
  disc = build_discriminator(config)
  nets.append(("discriminator", disc, (x, x) if disc.conditional else (x,)))
  nets.append(("autoencoder", build_autoencoder(config), (x,)))
  tables, totals = [], []
  for name, net, inputs in nets:
    rows, total = layer_table(net, *inputs)
    tables.append(format_table(f"{name}: {type(net).__name__} (window {window})", rows, total))
    totals.append(f"{name} params: {total:,}")
  return "\n\n".join(tables) + "\n\n" + "\n".join(totals)


@exit_on_user_error
def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  print(describe(_CONFIG.value))

