"""Where the bundled configs (`configs/`) and shipped models (`pretrained/`) are, in a checkout or an installed package.

A checkout keeps them beside the package (`<root>/configs`, `<root>/pretrained`); `pip install .` copies them into it
(`sr_jax/configs`, `sr_jax/pretrained`, see setup.py). `--config=NAME` and `--model=NAME` resolve through here, so
the commands work from any folder.
"""

from __future__ import annotations

import importlib.util
import os
from types import ModuleType

from sr_jax.errors import UserError

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
CONFIGS, MODELS = "configs", "pretrained"


def bundled_dir(kind: str) -> str | None:
  """The folder of `kind` (CONFIGS or MODELS): inside the installed package first, else beside it in a checkout."""
  for folder in (os.path.join(PACKAGE_DIR, kind), os.path.join(os.path.dirname(PACKAGE_DIR), kind)):
    if os.path.isdir(folder):
      return folder
  return None


def config_names() -> list[str]:
  folder = bundled_dir(CONFIGS)
  if folder is None:
    return []
  return sorted(n[:-3] for n in os.listdir(folder) if n.endswith(".py") and not n.startswith("_"))


def model_names() -> list[str]:
  folder = bundled_dir(MODELS)
  if folder is None:
    return []
  return sorted(n for n in os.listdir(folder) if os.path.isdir(os.path.join(folder, n, "state")))


def config_path(name: str) -> str:
  """A config file's path: `name` itself when it is a file, else the bundled config `name` (with or without .py,
  with or without a leading configs/)."""
  path = os.path.expanduser(name)
  if os.path.isfile(path):
    return path
  base = os.path.basename(path)
  base = base[:-3] if base.endswith(".py") else base
  folder = bundled_dir(CONFIGS)
  if folder is not None and os.path.dirname(path) in ("", "configs") and base in config_names():
    return os.path.join(folder, base + ".py")
  raise UserError(f"--config {name}: no such file and no bundled config of that name (bundled: "
                  f"{', '.join(config_names()) or 'none'})")


def model_path(name: str) -> str:
  """The folder of the shipped model `name` (e.g. piano_r4_16k)."""
  folder = bundled_dir(MODELS)
  if folder is not None and name in model_names():
    return os.path.join(folder, name)
  raise UserError(f"--model {name}: no shipped model of that name (shipped: {', '.join(model_names()) or 'none'}; "
                  "--checkpoint=DIR loads a folder)")


def load_config_file(path: str) -> ModuleType:
  """The config file at `path` executed as a module (config files are read by path, as config_flags reads them)."""
  spec = importlib.util.spec_from_file_location(f"_sr_jax_config_{os.path.splitext(os.path.basename(path))[0]}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def resolve_config_flag(value: str) -> str:
  """`--config` value `PATH_OR_NAME[:ARG]` with PATH_OR_NAME resolved to a file (config_flags reads files only)."""
  name, sep, arg = value.partition(":")
  return config_path(name) + sep + arg


def resolve_argv(argv: list[str]) -> list[str]:
  """argv with every `--config=NAME[:ARG]` (or `--config NAME`) resolved to a bundled config file's path, and a
  leading `~` of any `--flag=~/...` value expanded (a shell expands it only where a word starts with it)."""
  out, i = [], 0
  while i < len(argv):
    a = argv[i]
    if a.startswith("--") and "=~" in a:
      name, value = a.split("=", 1)
      a = f"{name}={os.path.expanduser(value)}"
    if a.startswith("--config="):
      out.append("--config=" + resolve_config_flag(a[len("--config="):]))
    elif a == "--config" and i + 1 < len(argv):
      out += [a, resolve_config_flag(argv[i + 1])]
      i += 1
    else:
      out.append(a)
    i += 1
  return out
