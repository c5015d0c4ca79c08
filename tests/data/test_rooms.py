"""Tests for sr_jax.data.rooms and the `room` degradation step: RT60, geometry, levels, alignment, errors."""

import sys

import numpy as np
import pytest
import scipy.signal

from sr_jax.data import degrade as degrade_lib
from sr_jax.data import reverb as reverb_lib
from sr_jax.data import rooms
from sr_jax.errors import UserError

RATE = 16000
C = 343.0


def _has_pyroomacoustics() -> bool:
  try:
    import pyroomacoustics  # noqa: F401, PLC0415
  except ImportError:
    return False
  return True


needs_pra = pytest.mark.skipif(not _has_pyroomacoustics(), reason="optional: pip install pyroomacoustics")


def _ir(chain: str, seconds: float, seed: int = 0) -> np.ndarray:
  """The chain's output for a unit impulse at index 0: the room's IR, through the public degrade()."""
  impulse = np.zeros(int(seconds * RATE), np.float32)
  impulse[0] = 1.0
  return degrade_lib.degrade(impulse, RATE, chain, seed)[0].astype(np.float64)


def _schroeder_rt60(h: np.ndarray) -> float:
  """RT60 from the -5..-25 dB part of the Schroeder backward-integrated energy decay (T20 * 3)."""
  edc = np.cumsum(h[::-1] ** 2)[::-1]
  db = 10 * np.log10(edc / edc[0] + 1e-30)
  sel = (db <= -5) & (db >= -25)
  slope = np.polyfit(np.arange(len(h))[sel] / RATE, db[sel], 1)[0]
  return -60.0 / slope


def _low_band(h: np.ndarray) -> np.ndarray:
  return scipy.signal.sosfilt(scipy.signal.butter(8, 1000, "low", fs=RATE, output="sos"), h)


# ---------------------------------------------------------------------------------------------- image method


@needs_pra
@pytest.mark.parametrize("rt60", [0.15, 0.4, 1.0])
def test_image_rt60_is_measured_back(rt60):
  for seed in range(3):
    h = _ir(f"room image {rt60}", 1.5 * rt60 + 0.1, seed)
    assert _schroeder_rt60(h) == pytest.approx(rt60, rel=0.25)


def _first_order_images(dims: np.ndarray, source: np.ndarray) -> np.ndarray:
  """The source mirrored in each of the six walls (x = 0 and x = L per axis), by hand."""
  images = []
  for axis in range(3):
    for wall in (0.0, dims[axis]):
      image = source.copy()
      image[axis] = 2 * wall - source[axis]
      images.append(image)
  return np.array(images)


@needs_pra
def test_image_ir_direct_path_and_first_reflection_follow_the_geometry():
  checked = 0
  for seed in range(20):
    dims, source, mic = rooms.draw_shoebox(np.random.default_rng(seed))  # the draws image_ir makes first
    direct = np.linalg.norm(source - mic)
    paths = np.sort(np.linalg.norm(_first_order_images(dims, source) - mic, axis=1))
    delays = (paths - direct) / C * RATE
    if delays[1] - delays[0] < 6 or delays[0] < 3:  # the earliest reflection must stand alone to be measured
      continue
    rt60 = 0.5
    h = rooms.image_ir(RATE, rt60, np.random.default_rng(seed))
    assert h[0] == 1.0
    # Each reflection loses 1 - a of its energy: (1 - a) ** (c T S / 4 V) = 1e-6 (Eyring), solved by hand here.
    volume, surface = np.prod(dims), 2 * (dims[0] * dims[1] + dims[1] * dims[2] + dims[0] * dims[2])
    reflection = (1e-6) ** (2 * volume / (C * rt60 * surface))  # amplitude factor sqrt(1 - a)
    expected = direct / paths[0] * reflection
    window = h[1:int(delays[0]) + 4]
    peak = 1 + int(np.argmax(np.abs(window)))
    assert abs(peak - delays[0]) <= 1.0
    # A fractional delay spreads the pulse: its largest sample is sinc(offset) <= 1 of it, >= sinc(1/2) = 0.64.
    assert 0.6 * expected <= h[peak] <= 1.02 * expected
    checked += 1
  assert checked >= 3


@needs_pra
def test_image_sources_and_diffuse_tail_meet_at_the_same_level():
  rt60 = 1.0
  gaps = []
  for seed in range(6):
    h = rooms.image_ir(RATE, rt60, np.random.default_rng(seed))
    early = h[int(0.05 * RATE):int(0.08 * RATE)]  # image sources only (the tail fades in at 80-90 ms)
    late = h[int(0.09 * RATE):int(0.12 * RATE)]  # diffuse tail only, 40 ms later: 2.4 dB further down
    gaps.append(10 * np.log10(np.sum(late**2) / np.sum(early**2)) + 60 * 0.04 / rt60)
  assert abs(np.mean(gaps)) < 1.5


def test_eyring_absorption_and_shoebox_draws():
  dims = np.array([6.0, 5.0, 3.0])
  volume, surface = 90.0, 126.0
  for rt60 in (0.1, 0.5, 2.0):
    absorption = rooms.eyring_absorption(rt60, dims)
    # After c T metres a ray has met c T S / (4 V) walls: its energy must be 60 dB down.
    assert (1 - absorption) ** (C * rt60 * surface / (4 * volume)) == pytest.approx(1e-6, rel=1e-9)
  # For long RT60 (little absorption) Sabine's a = 0.161 V / (S T) agrees.
  assert rooms.eyring_absorption(2.0, dims) == pytest.approx(24 * np.log(10) * volume / (C * surface * 2.0), rel=0.03)
  for seed in range(200):
    dims, source, mic = rooms.draw_shoebox(np.random.default_rng(seed))
    for (low, high), size in zip(rooms.ROOM_DIMS_M, dims):
      assert low <= size <= high
    for point in (source, mic):
      assert np.all(point >= rooms.WALL_MARGIN_M - 1e-9) and np.all(point <= dims - rooms.WALL_MARGIN_M + 1e-9)
    assert rooms.MIN_DISTANCE_M - 1e-9 <= np.linalg.norm(source - mic) <= rooms.MAX_DISTANCE_M + 1e-9


@needs_pra
def test_image_ir_is_seeded():
  a = rooms.image_ir(RATE, 0.3, np.random.default_rng(5))
  assert a.tobytes() == rooms.image_ir(RATE, 0.3, np.random.default_rng(5)).tobytes()
  assert a.tobytes() != rooms.image_ir(RATE, 0.3, np.random.default_rng(6)).tobytes()


# ---------------------------------------------------------------------------------------------- synthetic


@pytest.mark.parametrize("rt60", [0.3, 0.8, 1.5])
def test_synthetic_room_low_band_rt60_is_measured_back(rt60):
  for seed in range(2):
    h = _ir(f"room synthetic {rt60}", rt60 + 0.3, seed)
    assert _schroeder_rt60(_low_band(h)) == pytest.approx(rt60, rel=0.2)  # sparse early echoes at small scales


def test_rt60_range_is_drawn_per_example():
  measured = [_schroeder_rt60(_low_band(_ir("room synthetic 0.3 1.5", 1.8, seed))) for seed in range(12)]
  assert 0.3 * 0.9 <= min(measured) and max(measured) <= 1.5 * 1.1
  assert max(measured) - min(measured) > 0.6  # spread over the range, not one value


def test_reverb_inverse_helpers_reach_the_rt60():
  nominal = lambda r, s: (0.05 + 2 * r / 100) * (0.25 + 0.75 * s / 100)  # noqa: E731  (sox-like, by hand)
  for rt60 in (0.05, 0.3, 1.0, 2.0):
    low, high = reverb_lib.room_scale_range(rt60)
    assert 0 <= low < high <= 100
    for scale in np.linspace(low, high, 7):
      assert nominal(reverb_lib.reverberance_for(rt60, scale), scale) == pytest.approx(rt60, rel=1e-9)
    # Just outside the range the reverberance would have to leave [0, 100].
    if low > 0:
      assert nominal(100, low - 1) < rt60
    if high < 100:
      assert nominal(0, high + 1) > rt60
  with pytest.raises(ValueError, match="RT60 3 s is outside"):
    reverb_lib.room_scale_range(3.0)


# ---------------------------------------------------------------------------------------------- alignment, errors


@pytest.mark.parametrize("kind", ["image", "synthetic", "random"])
def test_room_output_is_aligned_with_the_dry_target(kind):
  if kind != "synthetic" and not _has_pyroomacoustics():
    pytest.skip("optional: pip install pyroomacoustics")
  # Broadband probes (their cross-correlation with the output is the IR): steady, and in 1/8 s bursts.
  white = 0.1 * np.random.default_rng(0).standard_normal(RATE)
  for clean in (white, white * ((np.arange(RATE) // 2000) % 2)):
    for seed in range(4):
      out, target, _ = degrade_lib.degrade(clean.astype(np.float32), RATE, f"room {kind} 0.3 1.2", seed)
      cross = scipy.signal.correlate(out.astype(np.float64), target.astype(np.float64))
      assert np.argmax(np.abs(cross)) - (len(target) - 1) == 0
  # The direct sound is the input itself: an impulse comes out at its own place, nothing before, the strongest
  # sample, scaled with the rest so that the output keeps the input's active level.
  impulse = np.zeros(8000, np.float32)
  impulse[3000] = 1.0
  out = degrade_lib.degrade(impulse, RATE, f"room {kind} 0.5", 1)[0]
  np.testing.assert_allclose(out[:3000], 0, atol=1e-9)  # (FFT convolution's rounding noise only)
  assert np.argmax(np.abs(out)) == 3000 and out[3000] > 0
  ir = out.astype(np.float64) / out[3000]  # the room's IR, direct sound 1
  gain = np.sqrt(degrade_lib.active_level(impulse, RATE) / degrade_lib.active_level(ir, RATE))
  assert out[3000] == pytest.approx(gain, rel=1e-5)
  for seed in range(3):  # music-like input: the level stays, within rounding
    tone = (0.1 * np.sin(2 * np.pi * 440 * np.arange(RATE) / RATE)).astype(np.float32)
    wet = degrade_lib.degrade(tone, RATE, f"room {kind} 0.3 1.0", seed)[0]
    assert degrade_lib.active_level(wet, RATE) == pytest.approx(degrade_lib.active_level(tone, RATE), rel=1e-4)


def test_missing_pyroomacoustics_is_one_clear_error(monkeypatch):
  monkeypatch.setitem(sys.modules, "pyroomacoustics", None)  # import now fails as if not installed
  clean = np.zeros(1600, np.float32)
  for chain in ("room image 0.5", "room random 0.2 0.9"):
    with pytest.raises(UserError) as info:
      degrade_lib.degrade(clean, RATE, chain, 0)
    message = str(info.value)
    assert "needs pyroomacoustics: pip install pyroomacoustics" in message and "\n" not in message
  degrade_lib.parse_chain("room image 0.5")  # parsing (e.g. a trained model's chain) does not need it
  assert degrade_lib.degrade(clean, RATE, "room synthetic 0.5", 0)[0].shape == clean.shape
