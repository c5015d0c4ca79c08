import jax.numpy as jnp
import numpy as np
import pytest

from sr_jax.errors import UserError
from sr_jax.models import check_window, level_channels, level_kernel, subpixel


def subpixel_reference(x):
  """From the definition: (N, W, C) -> (N, 2W, C/2), out[n, 2w + i, c] = x[n, w, i * C/2 + c]."""
  n, w, c = x.shape
  out = np.zeros((n, 2 * w, c // 2), x.dtype)
  for b in range(n):
    for t in range(w):
      for i in range(2):
        for ch in range(c // 2):
          out[b, 2 * t + i, ch] = x[b, t, i * (c // 2) + ch]
  return out


@pytest.mark.parametrize("shape", [(1, 3, 2), (2, 5, 4), (3, 4, 8)])
def test_subpixel_matches_numpy_definition(shape):
  x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
  np.testing.assert_array_equal(np.asarray(subpixel(jnp.asarray(x))), subpixel_reference(x))


def test_subpixel_hand_worked():
  # two channels [a, b] at each time step interleave into one: a0 b0 a1 b1
  x = jnp.array([[[1.0, 10.0], [2.0, 20.0]]])
  np.testing.assert_array_equal(np.asarray(subpixel(x))[0, :, 0], [1.0, 10.0, 2.0, 20.0])


def test_subpixel_odd_channels_rejected():
  with pytest.raises(ValueError, match="even number of channels"):
    subpixel(jnp.zeros((1, 4, 3)))


def test_level_sizes_follow_the_original():
  assert [level_channels(b) for b in range(1, 9)] == [128, 256, 512, 512, 512, 512, 512, 512]
  assert [level_kernel(b) for b in range(1, 9)] == [65, 33, 17, 9, 9, 9, 9, 9]
  assert [level_channels(b, 1 / 16) for b in range(1, 4)] == [8, 16, 32]
  assert all(level_channels(b, 0.001) == 2 for b in range(1, 9))  # even and >= 2 at any width


def test_check_window_names_valid_sizes():
  check_window(1024, 4)
  with pytest.raises(UserError, match=r"multiple of 2\*\*\(depth\+1\) = 32 \(nearest valid windows: 992 or 1024\)"):
    check_window(1000, 4)
  with pytest.raises(UserError, match=r"nearest valid windows: 32\)$"):
    check_window(8, 4)
  with pytest.raises(UserError, match="depth must be an integer >= 1"):
    check_window(1024, 0)
