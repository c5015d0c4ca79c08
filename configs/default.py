"""The defaults (sr_jax/config.py), as a config file: `--config=default` or `--config=configs/default.py:depth=4`."""

from sr_jax.config import apply_overrides, get_config  # noqa: F401
