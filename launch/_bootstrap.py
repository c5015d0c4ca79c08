"""Lets `python launch/<tool>.py` run from a checkout even before `pip install -e .` (puts the repo root first)."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

import logging  # noqa: E402

# jax logs at INFO that it found no TPU plug-in on every start; that line only confuses users.
logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
