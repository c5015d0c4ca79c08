"""sr_jax: audio super-resolution and restoration (Kuleshov et al. 2017 U-Net, GANs, collaborative sampling)."""

from sr_jax.errors import UserError

__version__ = "0.1.0"
__all__ = ["UserError", "__version__"]
