"""The `sr-jax` command: one subcommand per tool, each with the absl flags of its module here.

  sr-jax enhance in.wav out.wav                  # the default model, music_16k
  sr-jax enhance --model=piano_r4_16k --input=in.wav --output=out.wav
  sr-jax evaluate --model=piano_r4_16k --data=clean/ --report=reports/x
  sr-jax train --config=quickstart --workdir=runs/quickstart
  sr-jax SUBCOMMAND --help

`launch/<tool>.py` runs the same module from a checkout. `--config=NAME` names a bundled config (configs/NAME.py) or
any config file; `--model=NAME` a shipped model (pretrained/NAME).
"""

from __future__ import annotations

import importlib
import logging
import sys

# subcommand -> (module in sr_jax.cli, one line of help)
SUBCOMMANDS = {
    "enhance": ("enhance", "enhance audio files with a trained or shipped model"),
    "evaluate": ("evaluate", "enhance clean files' degraded copies and write metrics and a report"),
    "train": ("train", "train a model from a config (rerun to resume)"),
    "recipe": ("recipe", "run every stage of a recipe config in order, resuming where it stopped"),
    "describe": ("describe", "print every network of a config: layers, shapes, parameters"),
    "degrade": ("degrade", "apply a degradation chain to audio files"),
    "make-corpus": ("make_corpus", "build the piano corpus from the music21 scores"),
    "shape": ("shape", "shape a run's discriminator for collaborative sampling"),
    "export": ("export", "export a run's networks and config for inference"),
}


def usage() -> str:
  width = max(map(len, SUBCOMMANDS))
  lines = [f"  {name:<{width}}  {doc}" for name, (_, doc) in SUBCOMMANDS.items()]
  return ("usage: sr-jax SUBCOMMAND [--flags]   (sr-jax SUBCOMMAND --help for its flags)\n\nsubcommands:\n"
          + "\n".join(lines))


def run(module_name: str, argv: list[str] | None = None, prog: str | None = None) -> None:
  """Runs `sr_jax.cli.<module_name>`'s absl main with `argv` (flags only; bundled config names resolved)."""
  from absl import app

  from sr_jax import resources
  from sr_jax.errors import UserError

  # jax logs at INFO that it found no TPU plug-in on every start; that line only confuses users.
  logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
  argv = list(sys.argv[1:] if argv is None else argv)
  try:
    argv = resources.resolve_argv(argv)
  except UserError as e:
    _fail(str(e))
  module = importlib.import_module(f"sr_jax.cli.{module_name}")
  sys.modules["__main__"].__doc__ = module.__doc__  # absl's --help prints the main module's docstring
  app.run(module.main, argv=[prog or sys.argv[0]] + argv, flags_parser=_parse_flags)


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a bad flag or config override ending in one `error:` line (absl prints a usage
  block; ml_collections raises a traceback for an undeclared config key)."""
  from absl import flags

  from sr_jax.errors import UserError

  try:
    return flags.FLAGS(argv)
  except UserError as e:
    _fail(str(e))
  except flags.Error as e:
    message = str(e)
    if "Traceback" in message:  # config_flags wraps an error raised inside the config file with its traceback
      last = [line for line in message.splitlines() if line.strip()][-1]
      message = f"--config: {last.split(': ', 1)[-1] if last.startswith(('sr_jax.', 'UserError')) else last}"
    _fail(message)
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    overrides = [a[len("--config."):].split("=", 1)[0] for a in argv[1:] if a.startswith("--config.")]
    config = _load_config(argv)
    missing = [k for k in overrides if config is not None and not _declared(config, k)]
    if missing:
      _fail(f"unknown config key {missing[0]!r} (--config.{missing[0]}): the keys are declared in sr_jax/config.py")
    _fail(f"bad config override: {e}")
  return []


def _load_config(argv: list[str]):
  """The config that `--config=PATH[:ARG]` names, or None."""
  from sr_jax import resources

  values = [a[len("--config="):] for a in argv if a.startswith("--config=")]
  if not values:
    return None
  path, _, arg = values[-1].partition(":")
  try:
    return resources.load_config_file(path).get_config(arg or None)
  except Exception:  # noqa: BLE001  (only to word the error better; the parse error is reported either way)
    return None


def _declared(config, path: str) -> bool:
  node = config
  for part in path.split("."):
    if not hasattr(node, "keys") or part not in node:
      return False
    node = node[part]
  return True


def _fail(message: str) -> None:
  print(f"error: {message}", file=sys.stderr)
  sys.exit(2)


def main() -> None:
  """The `sr-jax` console command."""
  args = sys.argv[1:]
  if not args or args[0] in ("-h", "--help", "help"):
    print(usage())
    sys.exit(0 if args else 2)
  name = args[0]
  if name not in SUBCOMMANDS:
    print(f"error: unknown subcommand {name!r}\n{usage()}", file=sys.stderr)
    sys.exit(2)
  run(SUBCOMMANDS[name][0], args[1:], prog=f"sr-jax {name}")


if __name__ == "__main__":
  main()
