"""Test set-up, before jax is imported anywhere: 8 fake CPU devices, and XLA's CPU backend at optimisation level 0.

Level 0 skips LLVM's optimisation passes: the tiny test networks compile ~2.5x faster and run correctly, only
slower (which tests do not measure; speed lives in bench/).
"""

import os

_flags = os.environ.get("XLA_FLAGS", "")
for _flag in ("--xla_force_host_platform_device_count=8", "--xla_backend_optimization_level=0"):
  if _flag.split("=")[0] not in _flags:
    _flags = f"{_flags} {_flag}".strip()
os.environ["XLA_FLAGS"] = _flags
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
