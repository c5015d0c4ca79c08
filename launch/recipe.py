"""`sr-jax recipe` from a checkout (before or without installing): see sr_jax/cli/recipe.py."""

import _bootstrap  # noqa: F401  (repo root on sys.path)

from sr_jax.cli import run

if __name__ == "__main__":
  run("recipe")
