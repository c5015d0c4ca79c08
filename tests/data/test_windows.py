"""Tests for sr_jax.data.windows: split/merge round trips, the overlap-crop rule, streaming, argument checks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sr_jax.data import windows as wd
from sr_jax.errors import UserError

# (window, stride, length): the required cases, odd overlaps, and lengths around one window.
CASES = [
    (2048, 2048, 10001),
    (2048, 1024, 10001),
    (4096, 2048, 5000),
    (1024, 512, 999),
    (512, 256, 100000),
    (1024, 256, 700),
    (1000, 333, 5000),
    (1000, 333, 1334),
    (1001, 500, 4321),
    (7, 3, 50),
    (1, 1, 5),
]
EDGE_CASES = [(w, s, n) for w, s in [(2048, 2048), (2048, 1024), (1000, 333), (7, 3), (5, 5), (1, 1)]
              for n in sorted({0, 1, w - 1, w, w + 1, w + s, w + s + 1, 3 * w + 2})]
ALL_CASES = CASES + EDGE_CASES


def _signal(n: int, seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).standard_normal(n).astype(np.float32)


def _ref_split(x: np.ndarray, w: int, s: int) -> np.ndarray:
  """Loop reference: the smallest n >= 1 with (n-1)*s + w >= len(x), windows sliced one by one."""
  n = 1
  while (n - 1) * s + w < len(x):
    n += 1
  padded = np.zeros((n - 1) * s + w, np.float32)
  padded[:len(x)] = x
  return np.stack([padded[i * s:i * s + w] for i in range(n)])


def _ref_merge(windows: np.ndarray, w: int, s: int, length: int) -> np.ndarray:
  """Loop reference: write each window's kept range into its place in the output."""
  n, a = len(windows), (w - s) // 2
  out = np.full((n - 1) * s + w, np.nan, np.float32)
  for i in range(n):
    lo = 0 if i == 0 else a
    hi = w if i == n - 1 else a + s
    out[i * s + lo:i * s + hi] = windows[i, lo:hi]
  assert not np.isnan(out).any()
  return out[:length]


def _owner(length: int, w: int, s: int) -> np.ndarray:
  """Which window each output sample comes from, by formula: window 0 up to a + s, then one per stride."""
  n, a = wd.num_windows(length, w, s), (w - s) // 2
  p = np.arange(length)
  return np.where(p < a + s, 0, np.minimum((p - a) // s, n - 1))


def _chunks(x: np.ndarray, sizes) -> list[np.ndarray]:
  bounds = np.cumsum([0] + list(sizes))
  return [x[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])]


def _random_sizes(n: int, high: int, seed: int) -> list[int]:
  """Random chunk sizes in [0, high] (zeros included) adding up to n."""
  rng, sizes, total = np.random.default_rng(seed), [], 0
  while total < n:
    sizes.append(int(min(rng.integers(0, high + 1), n - total)))
    total += sizes[-1]
  return sizes


def _fixed_sizes(n: int, size: int) -> list[int]:
  return [size] * (n // size) + ([n % size] if n % size else [])


def _stream(x: np.ndarray, w: int, s: int, sizes) -> tuple[np.ndarray, wd.WindowStream]:
  stream = wd.WindowStream(w, s)
  pieces = [stream.push(c) for c in _chunks(x, sizes)] + [stream.finish()]
  return np.concatenate(pieces), stream


def _stream_merge(windows: np.ndarray, w: int, s: int, length: int, batches) -> np.ndarray:
  merger = wd.StreamMerger(w, s)
  out = []
  for lo, hi in zip(np.cumsum([0] + batches[:-1]), np.cumsum(batches)):
    out.append(merger.push(windows[lo:hi]))
    assert merger.buffered <= w
  out.append(merger.finish(length))
  assert merger.emitted == length
  return np.concatenate(out)


# --- counting ---------------------------------------------------------------------------------------------

def test_num_windows_matches_brute_force():
  for w in range(1, 9):
    for s in range(1, w + 1):
      for n in range(0, 40):
        expected = next(k for k in itertools.count(1) if (k - 1) * s + w >= n)
        assert wd.num_windows(n, w, s) == expected, (w, s, n)


def test_num_windows_examples():
  assert wd.num_windows(10001, 2048, 2048) == 5
  assert wd.num_windows(10001, 2048, 1024) == 9
  assert wd.num_windows(2048, 2048, 1024) == 1
  assert wd.num_windows(2049, 2048, 1024) == 2
  assert wd.num_windows(0, 2048, 1024) == 1
  assert wd.num_windows(3072, 2048, 1024) == 2


# --- hand-worked examples -------------------------------------------------------------------------------

@pytest.mark.parametrize("w, s, x, expected_windows, expected_owner", [
    # o = 2, a = 1: window 0 keeps [0, 3), window 1 keeps its [1, 3), window 2 its [1, 4) (trimmed).
    (4, 2, np.arange(1, 8), [[1, 2, 3, 4], [3, 4, 5, 6], [5, 6, 7, 0]], [0, 0, 0, 1, 1, 2, 2]),
    # The module docstring picture: o = 4, a = 2.
    (8, 4, np.arange(1, 17),
     [[1, 2, 3, 4, 5, 6, 7, 8], [5, 6, 7, 8, 9, 10, 11, 12], [9, 10, 11, 12, 13, 14, 15, 16]],
     [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2]),
    # Odd overlap o = 3, a = 1: window 0 keeps [0, 3), window 1 its [1, 5).
    (5, 2, np.arange(1, 7), [[1, 2, 3, 4, 5], [3, 4, 5, 6, 0]], [0, 0, 0, 1, 1, 1]),
    # No overlap: every window kept whole.
    (3, 3, np.arange(1, 8), [[1, 2, 3], [4, 5, 6], [7, 0, 0]], [0, 0, 0, 1, 1, 1, 2]),
    # Shorter than one window: one zero-padded window.
    (4, 2, np.arange(1, 3), [[1, 2, 0, 0]], [0, 0]),
])
def test_hand_worked(w, s, x, expected_windows, expected_owner):
  windows = wd.split(x, w, s)
  assert windows.dtype == np.float32
  np.testing.assert_array_equal(windows, np.array(expected_windows, np.float32))
  marked = np.repeat(np.arange(len(windows), dtype=np.float32)[:, None], w, axis=1)  # window i is all i
  np.testing.assert_array_equal(wd.merge(marked, w, s, len(x)), np.array(expected_owner, np.float32))
  np.testing.assert_array_equal(wd.merge(windows, w, s, len(x)), x.astype(np.float32))


@pytest.mark.parametrize("w, s, n", ALL_CASES)
def test_ownership_formula(w, s, n):
  count = wd.num_windows(n, w, s)
  marked = np.repeat(np.arange(count, dtype=np.float32)[:, None], w, axis=1)
  owner = _owner(n, w, s).astype(np.float32)
  np.testing.assert_array_equal(wd.merge(marked, w, s, n), owner)
  np.testing.assert_array_equal(_stream_merge(marked, w, s, n, [1] * count), owner)


# --- in-memory split / merge ----------------------------------------------------------------------------

@pytest.mark.parametrize("w, s, n", ALL_CASES)
def test_split_merge_round_trip(w, s, n):
  x = _signal(n)
  windows = wd.split(x, w, s)
  assert windows.shape == (wd.num_windows(n, w, s), w)
  np.testing.assert_array_equal(windows, _ref_split(x, w, s))
  y = wd.merge(windows, w, s, n)
  assert y.dtype == np.float32 and y.shape == (n,)
  assert np.array_equal(y, x)  # bit-exact


@pytest.mark.parametrize("w, s, n", CASES)
def test_merge_matches_loop_reference_on_arbitrary_windows(w, s, n):
  count = wd.num_windows(n, w, s)
  windows = np.random.default_rng(1).standard_normal((count, w)).astype(np.float32)  # unrelated windows
  np.testing.assert_array_equal(wd.merge(windows, w, s, n), _ref_merge(windows, w, s, n))


@pytest.mark.parametrize("w, s, n", [(1024, 512, 5000), (1000, 333, 5000), (1024, 256, 3000), (7, 3, 49)])
def test_merge_keeps_centres_and_outer_edges_only(w, s, n):
  x = _signal(n)
  windows = wd.split(x, w, s)
  count, a = len(windows), (w - s) // 2
  windows[:, :a] = 99.0  # the borders the network handles badly
  windows[:, a + s:] = -99.0
  y = wd.merge(windows, w, s, n)
  interior = slice(a, min(count * s + a, n))
  np.testing.assert_array_equal(y[interior], x[interior])  # only centres reach the interior
  np.testing.assert_array_equal(y[:a], 99.0)  # first window's outer edge
  np.testing.assert_array_equal(y[count * s + a:], -99.0)  # last window's outer edge
  assert a > 0 and count * s + a < n  # both edges were exercised


def test_merge_converts_to_float32():
  x = np.arange(10)
  y = wd.merge(wd.split(x, 4, 2).astype(np.float64), 4, 2, 10)
  assert y.dtype == np.float32
  np.testing.assert_array_equal(y, x)


# --- streaming --------------------------------------------------------------------------------------------

def _chunkings(w: int, n: int, seed: int) -> list[list[int]]:
  sizes = [7, 1000, w + 1, n + 5] + ([w - 1] if w > 1 else [])
  if n <= 12000:
    sizes.append(1)
  return [_fixed_sizes(n, size) for size in sizes] + [_random_sizes(n, 3 * w, seed), _random_sizes(n, 50, seed)]


@pytest.mark.parametrize("w, s, n", ALL_CASES)
def test_stream_split_equals_split_for_any_chunking(w, s, n):
  x = _signal(n, seed=2)
  expected = wd.split(x, w, s)
  for sizes in _chunkings(w, n, seed=n):
    got, stream = _stream(x, w, s, sizes)
    np.testing.assert_array_equal(got, expected)
    assert stream.max_buffered <= w + max(sizes, default=0)  # memory bound: one window plus one chunk
    assert stream.buffered == 0 and stream.frames == n and stream.emitted == len(expected)


@pytest.mark.parametrize("w, s, n", CASES)
def test_stream_split_generator_batches(w, s, n):
  x = _signal(n, seed=3)
  expected = wd.split(x, w, s)
  sizes = _random_sizes(n, 2 * w, seed=4)
  unbatched = list(wd.stream_split(_chunks(x, sizes), w, s))
  assert all(len(b) >= 1 for b in unbatched)
  np.testing.assert_array_equal(np.concatenate(unbatched), expected)
  for batch in (1, 3, 16, len(expected) + 1):
    got = list(wd.stream_split(iter(_chunks(x, sizes)), w, s, batch=batch))
    assert [len(b) for b in got[:-1]] == [batch] * (len(got) - 1) and 1 <= len(got[-1]) <= batch
    np.testing.assert_array_equal(np.concatenate(got), expected)


@pytest.mark.parametrize("w, s, n", ALL_CASES)
def test_stream_merge_equals_merge_for_any_batching(w, s, n):
  x = _signal(n, seed=5)
  windows = wd.split(x, w, s)
  count = len(windows)
  batchings = [[1] * count, [count], [0, 1, 0, count - 1, 0], _random_sizes(count, 5, seed=7),
               _random_sizes(count, count, seed=8)]
  for batches in batchings:
    y = _stream_merge(windows, w, s, n, batches)
    assert np.array_equal(y, x)


@pytest.mark.parametrize("w, s, n", [(2048, 1024, 10001), (1000, 333, 5000), (1024, 256, 700), (5, 5, 23)])
def test_full_streaming_pipeline(w, s, n):
  x = _signal(n, seed=8)
  merger = wd.StreamMerger(w, s)
  out = [merger.push(b) for b in wd.stream_split(_chunks(x, _random_sizes(n, 3000, seed=9)), w, s, batch=4)]
  out.append(merger.finish(n))
  assert np.array_equal(np.concatenate(out), x)


def test_window_stream_emits_windows_as_soon_as_complete():
  w, s = 8, 3
  stream, total, emitted = wd.WindowStream(w, s), 0, 0
  for size in [1, 2, 4, 1, 5, 0, 9, 3, 1, 1, 1, 20]:
    emitted += len(stream.push(np.ones(size)))
    total += size
    assert emitted == (0 if total < w else (total - w) // s + 1)
    assert stream.buffered < w  # only the unconsumed tail is kept between pushes


def test_stream_split_is_lazy():
  consumed = []

  def endless():
    for i in itertools.count():
      consumed.append(i)
      yield np.full(100, i, np.float32)

  first = list(itertools.islice(wd.stream_split(endless(), 256, 128), 3))
  assert len(consumed) <= 6  # 3 chunks give the first window, then at most one chunk per batch
  np.testing.assert_array_equal(first[0][0, :100], 0.0)
  np.testing.assert_array_equal(first[0][0, 200:], 2.0)


def test_stream_memory_bounded_on_long_signal():
  w, s, chunk = 512, 256, 4096
  stream, merger = wd.WindowStream(w, s), wd.StreamMerger(w, s)
  n, peak_merger = 0, 0
  rng = np.random.default_rng(10)
  for _ in range(500):  # ~2M samples
    c = rng.standard_normal(chunk).astype(np.float32)
    n += len(c)
    merger.push(stream.push(c))
    peak_merger = max(peak_merger, merger.buffered)
  merger.push(stream.finish())
  merger.finish(n)
  assert merger.emitted == n
  assert stream.max_buffered <= w + chunk
  assert peak_merger <= w


# --- argument checks --------------------------------------------------------------------------------------

@pytest.mark.parametrize("call, message", [
    (lambda: wd.num_windows(10, 0, 1), "window must be a positive integer number of samples, got 0"),
    (lambda: wd.num_windows(10, -4, 1), "window must be a positive integer number of samples, got -4"),
    (lambda: wd.num_windows(10, 4, 0), "stride must be a positive integer number of samples, got 0"),
    (lambda: wd.split(np.zeros(10), 4, -1), "stride must be a positive integer number of samples, got -1"),
    (lambda: wd.split(np.zeros(10), 4, 5), r"stride \(5\) must not exceed window \(4\)"),
    (lambda: wd.merge(np.zeros((3, 4)), 4, 5, 7), r"stride \(5\) must not exceed window \(4\)"),
    (lambda: wd.split(np.zeros(10), 4.0, 2), "window must be a positive integer number of samples, got 4.0"),
    (lambda: wd.num_windows(10, 4, True), "stride must be a positive integer number of samples, got True"),
    (lambda: wd.num_windows(-1, 4, 2), "length must be a non-negative integer number of samples, got -1"),
    (lambda: wd.merge(np.zeros((3, 4)), 4, 2, -2), "length must be a non-negative integer number of samples, got -2"),
    (lambda: wd.WindowStream(4, 8), r"stride \(8\) must not exceed window \(4\)"),
    (lambda: wd.StreamMerger(0, 0), "window must be a positive integer number of samples, got 0"),
    (lambda: wd.stream_split([np.zeros(3)], 4, 2, batch=0), "batch must be a positive integer number of windows, got 0"),  # eager
    (lambda: wd.stream_split([np.zeros(3)], 4, 6), r"stride \(6\) must not exceed window \(4\)"),
])
def test_bad_geometry_is_user_error(call, message):
  with pytest.raises(UserError, match=message):
    call()
  assert issubclass(UserError, ValueError)


@pytest.mark.parametrize("call, message", [
    (lambda: wd.split(np.zeros((10, 2)), 4, 2),
     r"split's input must be a 1-D signal \(frames,\), got shape \(10, 2\); pick or mix down a channel"),
    (lambda: wd.split(np.float32(1.0), 4, 2), r"must be a 1-D signal \(frames,\), got shape \(\)"),
    (lambda: wd.merge(np.zeros((2, 4)), 4, 2, 7),
     "merge needs 3 windows for length 7, window 4 and stride 2, got 2"),
    (lambda: wd.merge(np.zeros((3, 5)), 4, 2, 7), r"merge's windows must have shape \(n_windows, window=4\), "
     r"got \(3, 5\)"),
    (lambda: wd.merge(np.zeros(12), 4, 2, 7), r"must have shape \(n_windows, window=4\), got \(12,\)"),
    (lambda: wd.WindowStream(4, 2).push(np.zeros((3, 1))),
     r"a chunk must be a 1-D signal .* got shape \(3, 1\)"),
    (lambda: wd.StreamMerger(4, 2).push(np.zeros((1, 3))),
     r"pushed windows must have shape \(n_windows, window=4\), got \(1, 3\)"),
    (lambda: wd.StreamMerger(4, 2).finish(7),
     "StreamMerger got 0 windows, but length 7 with window 4 and stride 2 needs 3"),
])
def test_bad_arrays_raise_value_error(call, message):
  with pytest.raises(ValueError, match=message):
    call()


def test_stream_misuse():
  stream = wd.WindowStream(4, 2)
  stream.finish()
  with pytest.raises(ValueError, match=r"push called after finish\(\)"):
    stream.push(np.zeros(3))
  with pytest.raises(ValueError, match="finish called twice"):
    stream.finish()
  merger = wd.StreamMerger(4, 2)
  merger.push(np.zeros((2, 4)))
  with pytest.raises(ValueError, match="StreamMerger got 2 windows, but length 7 .* needs 3"):
    merger.finish(7)
  merger.push(np.zeros((1, 4)))
  merger.finish(7)
  assert merger.emitted == 7
  with pytest.raises(ValueError, match=r"StreamMerger.push called after finish\(\)"):
    merger.push(np.zeros((1, 4)))
  with pytest.raises(ValueError, match="StreamMerger.finish called twice"):
    merger.finish(7)
