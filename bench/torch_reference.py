r"""A PyTorch implementation of sr_jax's generator, discriminator, autoencoder encoder and train step, for speed
comparisons only (bench/train_step.py). torch is a bench extra: nothing in sr_jax/ imports it.

Same layer sizes and kernels as sr_jax.models (level_channels/level_kernel), zero padding kernel // 2, LeakyReLU 0.2,
dropout, Kuleshov's subpixel, concat skips and the additive input skip; NCW layout (PyTorch's native Conv1d).
Subpixel in NCW: out[n, c, 2w + i] = x[n, i * C/2 + c, w] (the channels-last rule of sr_jax.models.subpixel).

`make_step(config, device="cpu")` runs on any torch device. With config.model.dtype == "bfloat16" the forward
passes and losses run under `torch.autocast(device, dtype=torch.bfloat16)` (convs and their gradients in bf16,
params, Adam and the losses' reductions in float32), which is what sr_jax's model.dtype=bfloat16 does. On CUDA:
cuDNN autotuning (`cudnn.benchmark`), TF32 allowed for float32 (XLA's default precision on GPU), and the fused
Adam kernel (XLA fuses sr_jax's optax update too). On CPU the default (unfused) Adam, float32 unless bf16 is asked.

  python bench/torch_reference.py --check     # parameter count at depth 8, and the output of a small generator
                                              # against sr_jax's with the same weights
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sr_jax import losses  # noqa: E402
from sr_jax.models.layers import level_channels, level_kernel  # noqa: E402  (pure python, no jax work)


def subpixel(x: torch.Tensor) -> torch.Tensor:
  """(N, C, W) -> (N, C/2, 2W) with out[n, c, 2w + i] = x[n, i * C/2 + c, w]."""
  n, c, w = x.shape
  return x.reshape(n, 2, c // 2, w).permute(0, 2, 3, 1).reshape(n, c // 2, 2 * w)


def conv(cin: int, cout: int, kernel: int, stride: int) -> nn.Conv1d:
  return nn.Conv1d(cin, cout, kernel, stride=stride, padding=kernel // 2)


class Generator(nn.Module):
  """sr_jax.models.Generator in PyTorch: x (N, 1, W) -> (N, 1, W)."""

  def __init__(self, depth: int = 4, width: float = 1.0, dropout: float = 0.5):
    super().__init__()
    ch = [level_channels(b, width) for b in range(1, depth + 1)]
    ks = [level_kernel(b) for b in range(1, depth + 1)]
    self.down = nn.ModuleList(conv(1 if b == 0 else ch[b - 1], ch[b], ks[b], 2) for b in range(depth))
    self.bottleneck = conv(ch[-1], ch[-1], ks[-1], 2)
    self.up = nn.ModuleList(conv(ch[-1] if b == depth - 1 else 2 * ch[b + 1], 2 * ch[b], ks[b], 1)
                            for b in range(depth - 1, -1, -1))
    self.final = conv(2 * ch[0], 2, 9, 1)
    self.dropout = nn.Dropout(dropout)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    h, skips = x, []
    for layer in self.down:
      h = F.leaky_relu(layer(h), 0.2)
      skips.append(h)
    h = F.leaky_relu(self.dropout(self.bottleneck(h)), 0.2)
    for layer, skip in zip(self.up, reversed(skips)):
      h = torch.cat([subpixel(F.relu(self.dropout(layer(h)))), skip], dim=1)
    return x + subpixel(self.final(h))

  def load_flax(self, params) -> "Generator":
    """Copies sr_jax generator params (flax kernels (k, in, out)) into this module (Conv1d weights (out, in, k))."""
    depth = len(self.down)
    pairs = [(self.down[b], params[f"down_{b + 1}"]["conv"]) for b in range(depth)]
    pairs += [(self.bottleneck, params["bottleneck"]["conv"]), (self.final, params["final"])]
    pairs += [(self.up[l], params[f"up_{l + 1}"]["block"]["conv"]) for l in range(depth)]
    with torch.no_grad():
      for layer, p in pairs:
        layer.weight.copy_(torch.from_numpy(np.asarray(p["kernel"]).transpose(2, 1, 0).copy()))
        layer.bias.copy_(torch.from_numpy(np.asarray(p["bias"]).copy()))
    return self


class DownPath(nn.Module):
  """conv stride 2 -> BatchNorm -> LeakyReLU 0.2 per level (the discriminator's and the autoencoder's encoder)."""

  def __init__(self, depth: int, width: float, cin: int = 1):
    super().__init__()
    layers = []
    for b in range(1, depth + 1):
      cout, k = level_channels(b, width), level_kernel(b)
      layers += [conv(cin, cout, k, 2), nn.BatchNorm1d(cout, momentum=0.1, eps=1e-5), nn.LeakyReLU(0.2)]
      cin = cout
    self.net = nn.Sequential(*layers)
    self.channels = cin

  def forward(self, x):
    return self.net(x)


class Discriminator(nn.Module):
  """sr_jax.models.Discriminator (global): down path, flatten, dropout, linear -> (N, 1) logits."""

  def __init__(self, depth: int, width: float, window: int, dropout: float = 0.5):
    super().__init__()
    self.down = DownPath(depth, width)
    self.dropout = nn.Dropout(dropout)
    self.logit = nn.Linear(self.down.channels * (window // 2 ** depth), 1)

  def forward(self, y):
    return self.logit(self.dropout(self.down(y).flatten(1)))


class Encoder(nn.Module):
  """The half of sr_jax.models.AutoEncoder the feature loss uses: down path + bottleneck -> features.

  (The decoder's output is unused by the train step; XLA removes it from sr_jax's compiled step too.)
  """

  def __init__(self, depth: int, width: float, dropout: float = 0.5):
    super().__init__()
    self.down = DownPath(depth, width)
    self.bottleneck = conv(self.down.channels, self.down.channels, level_kernel(depth), 2)
    self.dropout = nn.Dropout(dropout)

  def forward(self, y):
    return F.leaky_relu(self.dropout(self.bottleneck(self.down(y))), 0.2)


_WINDOWS: dict = {}


def hann_window(n_fft: int, device) -> torch.Tensor:
  """torch.hann_window(n_fft) (periodic, float32) on `device`, made once per (n_fft, device)."""
  key = (n_fft, str(device))
  if key not in _WINDOWS:
    _WINDOWS[key] = torch.hann_window(n_fft, device=device)
  return _WINDOWS[key]


def mr_stft_loss(y, y_hat, fft_sizes, hop_sizes, sc_weight=1.0, mag_weight=1.0, eps=1e-7):
  """sr_jax.losses.multi_resolution_stft_loss for (N, 1, W) tensors (float32: sr_jax computes it in float32).

  torch.stft is an FFT; sr_jax computes the same STFT as a matmul with DFT bases (so that it shards), which XLA's
  cost analysis counts as FLOPs: quickstart's STFT terms are 3.4 of its step's 79 counted GFLOP (the FFT does
  fewer), so its gflops_per_s credits sr_jax with ~4% more work than torch does for the same loss.
  """
  total = 0.0
  y, y_hat = y.float(), y_hat.float()
  for n_fft, hop in zip(fft_sizes, hop_sizes):
    window = hann_window(n_fft, y.device)
    mags = [torch.stft(s[:, 0], n_fft, hop, window=window, center=True, pad_mode="reflect",
                       return_complex=True).abs() for s in (y, y_hat)]
    # the same floor on the denominator as sr_jax: the STFT norm of a -60 dB white-noise window
    floor = losses.stft_noise_norm(y.shape[-1], n_fft, hop, losses.STFT_SC_FLOOR_DB)
    sc = torch.linalg.norm(mags[0] - mags[1], dim=(-2, -1)) / torch.clamp(torch.linalg.norm(mags[0], dim=(-2, -1)),
                                                                           min=floor)
    log_l1 = (torch.log(mags[0] + eps) - torch.log(mags[1] + eps)).abs().mean()
    total = total + sc_weight * sc.mean() + mag_weight * log_l1
  return total / len(fft_sizes)


def parameter_count(module: nn.Module) -> int:
  return sum(p.numel() for p in module.parameters())


def make_step(config, device="cpu"):
  """A train step equivalent to sr_jax.train.steps' generator phase: returns (step(x, y) -> g_loss, modules).

  x, y: (N, 1, W) float32 on `device`. Adam on G (and D) with sr_jax's lr and betas (optim.lr_g / lr_d, b1, b2;
  eps 1e-8 in both); D: BCE real/fake update, then G gets rec + lambda_adv * BCE(D(y_hat)) + lambda_feature *
  |E(y) - E(y_hat)|^2 (frozen encoder, eval mode) + lambda_stft * MR-STFT. model.dtype == "bfloat16": the
  forward passes under bf16 autocast. The step returns without waiting for the device (CUDA is asynchronous):
  synchronise before reading a clock.
  """
  m, lc, o = config.model, config.loss, config.optim
  if o.optimizer != "adam" or o.grad_clip > 0 or o.schedule != "constant" or o.plateau:
    raise ValueError("the torch reference has constant-lr Adam only (no clipping, schedule or plateau)")
  device = torch.device(device)
  cuda = device.type == "cuda"
  if m.dtype not in ("float32", "bfloat16"):
    raise ValueError(f"model.dtype must be float32 or bfloat16, got {m.dtype!r}")
  bf16 = m.dtype == "bfloat16"
  if cuda:
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cuda.matmul.allow_tf32 = True
  adam = {"fused": True} if cuda else {}
  width = lambda w: m.width if w is None or w < 0 else w  # noqa: E731
  depth = lambda d: m.depth if d is None or d < 0 else d  # noqa: E731
  gen = Generator(m.depth, m.width, m.dropout).to(device).train()
  opt_g = torch.optim.Adam(gen.parameters(), lr=o.lr_g, betas=(o.b1, o.b2), **adam)
  disc = enc = opt_d = None
  if lc.lambda_adv > 0:
    if config.disc.kind != "global" or config.disc.conditional:
      raise ValueError("the torch reference has the global, unconditional discriminator only")
    disc = Discriminator(depth(config.disc.depth), width(config.disc.width), config.data.window,
                         config.disc.dropout).to(device).train()
    opt_d = torch.optim.Adam(disc.parameters(), lr=o.lr_d, betas=(o.b1, o.b2), **adam)
  if lc.lambda_feature > 0:
    enc = Encoder(depth(config.ae.depth), width(config.ae.width), config.ae.dropout).to(device).eval()
    enc.requires_grad_(False)
  rec = F.mse_loss if lc.reconstruction == "l2" else F.l1_loss
  bce = F.binary_cross_entropy_with_logits

  def amp():
    if bf16:
      return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()

  def step(x, y):
    with amp():
      y_hat = gen(x)
    if disc is not None:
      with amp():
        real, fake = disc(y), disc(y_hat.detach())
        d_loss = bce(real.float(), torch.ones_like(real, dtype=torch.float32)) + \
            bce(fake.float(), torch.zeros_like(fake, dtype=torch.float32))
      opt_d.zero_grad(set_to_none=True)
      d_loss.backward()
      opt_d.step()
    with amp():
      loss = rec(y_hat.float(), y)
      if disc is not None:
        disc.requires_grad_(False)  # sr_jax differentiates the G loss w.r.t. y_hat only
        logits = disc(y_hat).float()
        loss = loss + lc.lambda_adv * bce(logits, torch.ones_like(logits))
        disc.requires_grad_(True)
      if enc is not None:
        with torch.no_grad():
          target = enc(y)
        loss = loss + lc.lambda_feature * F.mse_loss(enc(y_hat).float(), target.float())
      if lc.lambda_stft > 0:
        loss = loss + lc.lambda_stft * mr_stft_loss(y, y_hat, lc.stft_fft_sizes, lc.stft_hop_sizes,
                                                    lc.stft_sc_weight, lc.stft_mag_weight)
    opt_g.zero_grad(set_to_none=True)
    loss.backward()
    opt_g.step()
    return loss.detach()

  return step, {"gen": gen, "disc": disc, "enc": enc}


def check(depth: int = 3, width: float = 0.125, window: int = 256) -> float:
  """Max |torch - sr_jax| of a generator with the same weights in eval mode (prints it with the depth-8 count)."""
  import jax
  import jax.numpy as jnp

  from sr_jax.models import Generator as JaxGenerator

  big = parameter_count(Generator(8, 1.0))
  print(f"torch generator parameters at depth 8, width 1: {big:,} (sr_jax: 103,603,458)")
  g = JaxGenerator(depth=depth, width=width)
  x = np.random.default_rng(0).standard_normal((2, window, 1)).astype(np.float32)
  params = g.init({"params": jax.random.PRNGKey(0)}, jnp.asarray(x))["params"]
  leaves, tree = jax.tree.flatten(params)  # nonzero biases too (flax initialises them at 0)
  keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
  params = jax.tree.unflatten(tree, [p + 0.05 * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)])
  want = np.asarray(g.apply({"params": params}, jnp.asarray(x)))
  tg = Generator(depth, width).load_flax(jax.device_get(params)).eval()
  with torch.no_grad():
    got = tg(torch.from_numpy(x.transpose(0, 2, 1).copy())).numpy().transpose(0, 2, 1)
  err = float(np.max(np.abs(got - want)))
  print(f"depth {depth} width {width} window {window}: max |torch - sr_jax| = {err:.2e} "
        f"(output scale {np.max(np.abs(want)):.2f})")
  return err


if __name__ == "__main__":
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--check", action="store_true", help="compare with sr_jax's generator")
  if parser.parse_args().check:
    sys.exit(0 if check() < 1e-4 else 1)
  parser.print_help()
