"""The generator: the 1D U-Net of Kuleshov et al. 2017 as the original EPFL code built it.

  x (N, W, 1)
  mask                  (model.mask_channels > 0) a gain per STFT bin of x (sr_jax.models.mask); x is then the
                        masked input everywhere below, the additive skip included
  down_1 .. down_B      conv stride 2 (channels(b), kernel(b)), LeakyReLU 0.2           -> skips d_1 .. d_B
  bottleneck            conv stride 2 (channels(B), kernel(B)), dropout, LeakyReLU 0.2
  up_1 .. up_B          up_l mirrors level b = B + 1 - l: conv stride 1 to 2 * channels(b), dropout, ReLU (or
                        model.up_activation), subpixel, concat with d_b                 -> (W / 2**(b-1), 2 * channels(b))
  final                 conv to 2 channels (kernel 9), subpixel, + x (additive input skip)
  fill                  (model.fill_channels > 0) noise of a learned level per STFT bin added to the output
                        (sr_jax.models.fill)

The two halves are exposed for collaborative sampling (sr_jax.sampling):
  h, skips = G.apply(v, x, method=Generator.encode)                  # h = bottleneck output
  a_l = G.apply(v, h, skips, stop=l, method=Generator.decode)        # activation after up block l
  y = G.apply(v, a_l, skips, start=l, method=Generator.decode)       # finish from there, original skips
and `G(x) == decode(*encode(x))` exactly.

`dead_up_blocks` names the ReLU up blocks whose every unit is 0 on a batch: nothing below such a block reaches the
output (training warns of it at each validation).
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from sr_jax.models.fill import SpectralFill
from sr_jax.models.mask import SpectralMask
from sr_jax.models.layers import ConvBlock, Dtype, UpBlock, as_windows, check_window, conv, level_channels, \
    level_kernel, subpixel


SPECTRAL_PARTS = ("mask", "fill")  # the optional STFT-domain submodules' names in the params (model.mask_/fill_*)


class Generator(nn.Module):
  """1D U-Net with subpixel upsampling and an additive input skip. Input/output (N, W, 1), W % 2**(B+1) == 0."""

  depth: int = 4
  width: float = 1.0
  dropout: float = 0.5
  dtype: Dtype = jnp.float32
  zero_init_final: bool = False  # True: the final conv starts at zero, so G starts as the identity (G(x) = x)
  conv_impl: str = "xla"  # xla | fft: how big stride-1 convs are computed (same params; see layers.conv)
  up_activation: str = "relu"  # the up blocks' activation: relu | leaky_relu (see layers.UpBlock)
  mask_channels: int = 0  # > 0: the spectral mask front-end (sr_jax.models.mask) with these channels; 0: none
  mask_fft: int = 512
  mask_hop: int = 128
  mask_layers: int = 6
  mask_phase: bool = False  # the mask's gain complex (a phase turn per bin), see sr_jax.models.mask
  fill_channels: int = 0  # > 0: the spectral fill (sr_jax.models.fill) after the output, on the mask's STFT
  fill_layers: int = 4
  fill_gain_db: float = 0.0  # the fill's level with train=False re its trained level (model.fill_gain_db)

  def setup(self):
    b_ = self.depth
    self.down = [ConvBlock(level_channels(b, self.width), level_kernel(b), stride=2, dtype=self.dtype,
                           conv_impl=self.conv_impl, name=f"down_{b}") for b in range(1, b_ + 1)]
    self.bottleneck = ConvBlock(level_channels(b_, self.width), level_kernel(b_), stride=2, dropout=self.dropout,
                                dtype=self.dtype, conv_impl=self.conv_impl, name="bottleneck")
    self.up = [UpBlock(2 * level_channels(b, self.width), level_kernel(b), dropout=self.dropout, dtype=self.dtype,
                       conv_impl=self.conv_impl, activation=self.up_activation, name=f"up_{b_ + 1 - b}")
               for b in range(b_, 0, -1)]
    self.final = conv(2, 9, 1, self.dtype, name="final", zero_init=self.zero_init_final, impl=self.conv_impl)
    if self.mask_channels > 0:
      self.mask = SpectralMask(self.mask_fft, self.mask_hop, self.mask_channels, self.mask_layers, self.mask_phase,
                               self.dtype, name="mask")
    if self.fill_channels > 0:
      self.fill = SpectralFill(self.mask_fft, self.mask_hop, self.fill_channels, self.fill_layers, self.dtype,
                               name="fill")

  def encode(self, x, train: bool = False):
    """x (N, W) or (N, W, 1) -> (h, skips): h the bottleneck output, skips = (x, d_1, ..., d_B) (x masked, with a
    mask front-end)."""
    x = as_windows(x).astype(jnp.float32)
    check_window(x.shape[1], self.depth)
    if self.mask_channels > 0:
      x = self.mask(x[..., 0])[..., None]
    skips = [x]
    h = x.astype(self.dtype)
    for block in self.down:
      h = block(h, train)
      skips.append(h)
    return self.bottleneck(h, train), tuple(skips)

  def decode(self, h, skips, start: int = 0, stop: int | None = None, train: bool = False):
    """Runs up blocks start+1 .. stop on `h` (the activation after up block `start`; 0 = the bottleneck).

    With stop=None it also runs the final layer and the input skip and returns the output (N, W, 1) float32;
    otherwise it returns the activation after up block `stop`.
    """
    b_ = self.depth
    stop_l = b_ if stop is None else stop
    if not 0 <= start <= stop_l <= b_:
      raise ValueError(f"decode needs 0 <= start <= stop <= depth={b_}, got start={start}, stop={stop}")
    for l in range(start + 1, stop_l + 1):
      h = self.up[l - 1](h, skips[b_ + 1 - l], train)
    if stop is not None:
      return h
    y = skips[0] + subpixel(self.final(h)).astype(jnp.float32)
    if self.fill_channels > 0:
      y = self.fill(y[..., 0], 0.0 if train else self.fill_gain_db)[..., None]
    return y

  def __call__(self, x, train: bool = False):
    h, skips = self.encode(x, train)
    return self.decode(h, skips, train=train)


def dead_up_blocks(gen: Generator, params, x) -> list[str]:
  """The names of `gen`'s up blocks whose activation output is 0 everywhere on the windows x (N, W[, 1]) (ReLU up
  blocks only: a leaky one is never 0 everywhere). Such a block passes no gradient and no signal from the levels
  below it: the network is as deep as the blocks above the lowest dead one. Compiled, so that `params` may be sharded
  across the processes of a multi-host run (every process calls it; each gets the same answer)."""
  if gen.up_activation != "relu":
    return []
  alive = _up_block_activity(gen)(params, jnp.asarray(x))
  return [name for name in sorted(alive, key=lambda n: int(n[3:])) if not bool(alive[name])]


@functools.lru_cache(maxsize=8)
def _up_block_activity(gen: Generator):
  """A compiled (params, x) -> {up block name: whether any unit of its activation output is nonzero on x}."""

  def activity(params, x):
    _, state = gen.apply({"params": params}, as_windows(x), mutable=["intermediates"],
                         capture_intermediates=lambda module, method: isinstance(module, ConvBlock) and
                         method == "__call__")
    found = state["intermediates"]
    return {n: jnp.any(found[n]["block"]["__call__"][0] != 0) for n in found if n.startswith("up_")}

  return jax.jit(activity)
