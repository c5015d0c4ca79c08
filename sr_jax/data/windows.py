"""Fixed-size sliding windows: cut a long recording for the network and stitch its outputs back seamlessly.

Training and enhancement both use this module; there is no other split/merge in sr_jax.

Splitting. With window W and stride S (0 < S <= W) a signal of n samples becomes
`num_windows(n, W, S)` windows; window i covers samples [i*S, i*S + W) of the signal zero-padded at the end to
(num_windows - 1)*S + W samples.

Merging (the overlap-crop rule). Neighbouring windows overlap by o = W - S samples. A network sees no context
beyond the window, so it handles the window borders worst; merging therefore keeps, from each window, only its
centre [a, a + S) with a = o // 2, which tiles the output without gaps. The first window also keeps its outer
edge [0, a) and the last window keeps [a + S, W), so nothing is lost at the two ends. Example, W = 8, S = 4
(o = 4, a = 2); `c` = centre kept, `e` = outer edge kept (first/last window only), `-` = overlap dropped:

  sample      0         1
              0123456789012345
  window 0    eecccc--
  window 1        --cccc--
  window 2            --ccccee
  output      0000001111222222    <- which window each output sample comes from

The merged result is trimmed to the original length, so `merge(split(x), ...) == x` bit for bit, for every
W >= S (including W == S, where nothing overlaps and every window is kept whole) and every length.

Streaming. `WindowStream` / `stream_split` cut a signal that arrives in chunks of any size (e.g. soundfile
blocks) and `StreamMerger` stitches windows that arrive in batches of any size; memory stays bounded by about
one window plus one chunk (or batch), whatever the file length, and the results equal `split` / `merge` bit
for bit.

Window and stride values come from configs and flags, so bad values raise `UserError` (a `ValueError`);
arrays of the wrong shape are programming errors and raise a plain `ValueError`.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Iterator

import numpy as np

from sr_jax.errors import UserError


def check_count(value, name: str, minimum: int = 1, unit: str = "samples") -> int:
  """`value` as an int >= `minimum` (1: positive, 0: non-negative); anything else (a float, a bool, too small) is a
  `UserError` naming `name` and the unit: one message for every window/stride/length check of the package and its
  launchers."""
  assert minimum in (0, 1), minimum
  if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
    kind = "a positive" if minimum == 1 else "a non-negative"
    raise UserError(f"{name} must be {kind} integer number of {unit}, got {value!r}")
  return int(value)


def check_geometry(window: int, stride: int, window_label: str | None = None) -> tuple[int, int]:
  """Validates a (window, stride) pair: both positive integers and stride <= window. `window_label` names the
  window in the message (default "window (W)")."""
  window = check_count(window, "window")
  stride = check_count(stride, "stride")
  if stride > window:
    label = window_label or f"window ({window})"
    raise UserError(f"stride ({stride}) must not exceed {label}: the samples between windows would be lost")
  return window, stride


def num_windows(length: int, window: int, stride: int) -> int:
  """Number of windows `split` makes of `length` samples: 1 if length <= window, else
  ceil((length - window) / stride) + 1."""
  window, stride = check_geometry(window, stride)
  length = check_count(length, "length", 0)
  if length <= window:
    return 1
  return -(-(length - window) // stride) + 1


def _as_signal(x, what: str) -> np.ndarray:
  """`x` as a 1-D float32 array; other ranks raise `ValueError`."""
  x = np.asarray(x, dtype=np.float32)
  if x.ndim != 1:
    raise ValueError(f"{what} must be a 1-D signal (frames,), got shape {x.shape}; pick or mix down a channel "
                     "first")
  return x


def _cut(x: np.ndarray, window: int, stride: int, count: int) -> np.ndarray:
  """The first `count` windows of `x` (which must be long enough), as a fresh (count, window) array."""
  if count == 0:
    return np.zeros((0, window), np.float32)
  view = np.lib.stride_tricks.sliding_window_view(x[:(count - 1) * stride + window], window)
  return view[::stride].copy()


def split(x, window: int, stride: int) -> np.ndarray:
  """Cuts a 1-D signal into overlapping windows. Returns a float32 array (num_windows, window).

  Window i covers [i*stride, i*stride + window) of `x` zero-padded at the end; a signal shorter than one
  window gives one zero-padded window. See the module docstring for the picture.
  """
  window, stride = check_geometry(window, stride)
  x = _as_signal(x, "split's input")
  n = num_windows(len(x), window, stride)
  padded = np.zeros((n - 1) * stride + window, np.float32)
  padded[:len(x)] = x
  return _cut(padded, window, stride, n)


def _kept(windows: np.ndarray, window: int, stride: int, first: bool, last: bool) -> np.ndarray:
  """The samples merging keeps from consecutive `windows`, concatenated (the overlap-crop rule).

  Every window gives its centre [a, a + stride); with `first` the first window also gives [0, a), with `last`
  the last one also gives [a + stride, window).
  """
  a = (window - stride) // 2
  parts = [windows[:, a:a + stride].reshape(-1)]
  if len(windows) and first:
    parts.insert(0, windows[0, :a])
  if len(windows) and last:
    parts.append(windows[-1, a + stride:])
  return np.concatenate(parts)


def _as_windows(windows, window: int, what: str) -> np.ndarray:
  """`windows` as a float32 (k, window) array; any other shape raises `ValueError`."""
  windows = np.asarray(windows, dtype=np.float32)
  if windows.ndim != 2 or windows.shape[1] != window:
    raise ValueError(f"{what} must have shape (n_windows, window={window}), got {windows.shape}")
  return windows


def merge(windows, window: int, stride: int, length: int) -> np.ndarray:
  """Stitches windows made by `split` (or a network's outputs for them) back into `length` samples.

  `windows` has shape (num_windows(length, window, stride), window). Each window contributes its centre,
  the first and last windows also their outer edges (module docstring); the result is float32 (length,).
  """
  window, stride = check_geometry(window, stride)
  n = num_windows(length, window, stride)
  windows = _as_windows(windows, window, "merge's windows")
  if len(windows) != n:
    raise ValueError(f"merge needs {n} windows for length {length}, window {window} and stride {stride}, "
                     f"got {len(windows)}")
  return _kept(windows, window, stride, first=True, last=True)[:length]


class WindowStream:
  """Incremental `split`: push chunks of a signal, get the windows that are complete so far.

  Holds only the samples not yet fully consumed: fewer than `window` between pushes and fewer than
  window + chunk size during a push (`max_buffered` records the peak). Concatenating everything `push` and
  `finish` return equals `split` of the concatenated chunks, bit for bit.
  """

  def __init__(self, window: int, stride: int):
    self.window, self.stride = check_geometry(window, stride)
    self._buffer = np.zeros(0, np.float32)  # samples from emitted * stride on
    self.frames = 0  # samples pushed so far
    self.emitted = 0  # windows returned so far
    self.max_buffered = 0  # peak number of samples held at once
    self._finished = False

  @property
  def buffered(self) -> int:
    """Samples held now."""
    return len(self._buffer)

  def push(self, chunk) -> np.ndarray:
    """Adds a 1-D chunk (any size, also 0). Returns the windows it completes, float32 (k, window), k >= 0."""
    if self._finished:
      raise ValueError("WindowStream.push called after finish()")
    chunk = _as_signal(chunk, "a chunk")
    buffer = np.concatenate([self._buffer, chunk])
    self.frames += len(chunk)
    self.max_buffered = max(self.max_buffered, len(buffer))
    count = 0 if len(buffer) < self.window else (len(buffer) - self.window) // self.stride + 1
    windows = _cut(buffer, self.window, self.stride, count)
    self._buffer = buffer[count * self.stride:].copy()  # copy: do not pin the big concatenation
    self.emitted += count
    return windows

  def finish(self) -> np.ndarray:
    """Ends the signal. Returns the last, zero-padded window (shape (1, window)), or (0, window) if the last
    window was already complete."""
    if self._finished:
      raise ValueError("WindowStream.finish called twice")
    self._finished = True
    remaining = num_windows(self.frames, self.window, self.stride) - self.emitted
    assert remaining in (0, 1), remaining  # pushes leave < window samples, i.e. at most one window
    tail, self._buffer = self._buffer, np.zeros(0, np.float32)
    self.emitted += remaining
    return split(tail, self.window, self.stride) if remaining else np.zeros((0, self.window), np.float32)


def stream_split(chunks: Iterable, window: int, stride: int, batch: int | None = None) -> Iterator[np.ndarray]:
  """Yields the windows of a signal given as an iterable of 1-D chunks, as soon as they are complete.

  With `batch=None` each yielded array holds the windows one chunk completed (shape (k, window), k >= 1);
  with `batch=b` every array has exactly b windows except possibly the last. Concatenated, the arrays equal
  `split(np.concatenate(chunks), window, stride)` bit for bit.
  """
  stream = WindowStream(window, stride)  # validates now, not at the first next()
  if batch is not None:
    batch = check_count(batch, "batch", unit="windows")
  return _batched(stream, chunks, batch)


def _batched(stream: WindowStream, chunks: Iterable, batch: int | None) -> Iterator[np.ndarray]:
  """The generator behind `stream_split`."""

  def pieces() -> Iterator[np.ndarray]:
    for chunk in chunks:
      yield stream.push(chunk)
    yield stream.finish()

  if batch is None:
    yield from (p for p in pieces() if len(p))
    return
  pending, count = [], 0
  for piece in pieces():
    pending.append(piece)
    count += len(piece)
    if count >= batch:
      joined = np.concatenate(pending)
      full = count // batch * batch
      yield from np.split(joined[:full], full // batch)
      pending, count = [joined[full:]], count - full
  if count:
    yield np.concatenate(pending)


class StreamMerger:
  """Incremental `merge`: push windows in batches of any size, get the finished output samples so far.

  Holds back only the latest window (the merger cannot know whether it is the last one, which keeps its outer
  edge). Concatenating everything `push` and `finish(length)` return equals `merge(all_windows, window,
  stride, length)` bit for bit.
  """

  def __init__(self, window: int, stride: int):
    self.window, self.stride = check_geometry(window, stride)
    self._pending: np.ndarray | None = None  # the latest window, (1, window)
    self.windows = 0  # windows pushed so far
    self._merged = 0  # windows whose samples were returned (all but the pending one)
    self.emitted = 0  # samples returned so far
    self._finished = False

  @property
  def buffered(self) -> int:
    """Samples held now: 0 or one window."""
    return 0 if self._pending is None else self._pending.size

  def push(self, windows) -> np.ndarray:
    """Adds windows (k, window), k >= 0. Returns the output samples now final, float32 (m,)."""
    if self._finished:
      raise ValueError("StreamMerger.push called after finish()")
    windows = _as_windows(windows, self.window, "pushed windows")
    if not len(windows):
      return np.zeros(0, np.float32)
    if self._pending is not None:
      windows = np.concatenate([self._pending, windows])
    out = _kept(windows[:-1], self.window, self.stride, first=self._merged == 0, last=False)
    self._merged += len(windows) - 1
    self._pending = windows[-1:].copy()
    self.windows = self._merged + 1
    self.emitted += len(out)
    return out

  def finish(self, length: int) -> np.ndarray:
    """Ends the stream of windows of a `length`-sample signal. Returns the remaining samples, so that all
    returned samples add up to exactly `length`."""
    if self._finished:
      raise ValueError("StreamMerger.finish called twice")
    n = num_windows(length, self.window, self.stride)
    if self.windows != n:
      raise ValueError(f"StreamMerger got {self.windows} windows, but length {length} with window {self.window} "
                       f"and stride {self.stride} needs {n}")
    self._finished = True
    out = _kept(self._pending, self.window, self.stride, first=self._merged == 0, last=True)
    out = out[:length - self.emitted]
    self._pending = None
    self.emitted += len(out)
    return out
