"""The autoencoder whose bottleneck defines the feature loss (trained on the identity task).

down_1..down_B with BatchNorm (conv stride 2 -> BatchNorm -> LeakyReLU 0.2), the generator's bottleneck
(conv stride 2, dropout, LeakyReLU), up blocks WITHOUT concat skips whose convs output 4x the mirrored channels (so
after subpixel the width equals the generator's post-concat width), a final conv to 2 channels + subpixel, and no
input skip. Returns (bottleneck features, reconstruction).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from sr_jax.models.layers import ConvBlock, Dtype, UpBlock, as_windows, check_window, conv, level_channels, \
    level_kernel, subpixel


class AutoEncoder(nn.Module):
  depth: int = 4
  width: float = 1.0
  dropout: float = 0.5
  dtype: Dtype = jnp.float32
  conv_impl: str = "xla"  # xla | fft (see layers.conv)

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = as_windows(x)
    check_window(x.shape[1], self.depth)
    h = x.astype(self.dtype)
    for b in range(1, self.depth + 1):
      h = ConvBlock(level_channels(b, self.width), level_kernel(b), stride=2, norm=True, dtype=self.dtype,
                    conv_impl=self.conv_impl, name=f"down_{b}")(h, train)
    features = ConvBlock(level_channels(self.depth, self.width), level_kernel(self.depth), stride=2,
                         dropout=self.dropout, dtype=self.dtype, conv_impl=self.conv_impl, name="bottleneck")(h, train)
    h = features
    for l, b in enumerate(range(self.depth, 0, -1), start=1):
      h = UpBlock(4 * level_channels(b, self.width), level_kernel(b), dropout=self.dropout, dtype=self.dtype,
                  conv_impl=self.conv_impl, name=f"up_{l}")(h, None, train)
    out = subpixel(conv(2, 9, 1, self.dtype, name="final", impl=self.conv_impl)(h))
    return features.astype(jnp.float32), out.astype(jnp.float32)
