"""Lets `python launch/<tool>.py` run from a checkout even before `pip install -e .` (puts the repo root first)."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)
