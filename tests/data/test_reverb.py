"""Tests for sr_jax.data.reverb: RT60, HF damping, wet gain, pre-delay, stereo depth, room scale."""

import dataclasses

import numpy as np
import pytest
import scipy.signal

from sr_jax.data import reverb as reverb_lib

RATE = 16000


def _ir(seed: int = 1, **kwargs) -> np.ndarray:
  return reverb_lib.impulse_response(RATE, np.random.default_rng(seed), reverb_lib.ReverbParams(**kwargs))


def _wet_of_impulse(frames: int, seed: int = 1, **kwargs) -> np.ndarray:
  """reverb() of a unit impulse minus the impulse: the wet part, through the public reverb()."""
  impulse = np.zeros(frames, np.float32)
  impulse[0] = 1.0
  out = reverb_lib.reverb(impulse, RATE, np.random.default_rng(seed), reverb_lib.ReverbParams(**kwargs))
  assert out.shape == impulse.shape and out.dtype == np.float32
  return out.astype(np.float64) - impulse


def _schroeder_rt60(h: np.ndarray) -> float:
  """RT60 from the -5..-25 dB part of the Schroeder backward-integrated energy decay (T20 * 3)."""
  edc = np.cumsum(h[::-1] ** 2)[::-1]
  db = 10 * np.log10(edc / edc[0] + 1e-30)
  sel = (db <= -5) & (db >= -25)
  slope = np.polyfit(np.arange(len(h))[sel] / RATE, db[sel], 1)[0]
  return -60.0 / slope


def _band(h: np.ndarray, kind: str, cutoff: float) -> np.ndarray:
  return scipy.signal.sosfilt(scipy.signal.butter(8, cutoff, kind, fs=RATE, output="sos"), h)


def test_rt60_grows_with_reverberance_and_matches_nominal():
  measured = []
  for reverberance in (10, 40, 90):
    h = _wet_of_impulse(RATE * 2, reverberance=reverberance, hf_damping=0, stereo_depth=0)
    rt = _schroeder_rt60(h)
    # A reference computed another way: Schroeder integration of the realised IR vs the nominal formula.
    assert rt == pytest.approx(reverb_lib.rt60(reverberance, 100), rel=0.06)
    measured.append(rt)
  assert measured[0] < measured[1] < measured[2]
  assert reverb_lib.rt60(50, 100) == pytest.approx(1.05)


def test_hf_damping_makes_high_band_decay_faster():
  ratios = {}
  for damping in (0, 100):
    h = _ir(hf_damping=damping, stereo_depth=0)
    ratios[damping] = _schroeder_rt60(_band(h, "high", 4000)) / _schroeder_rt60(_band(h, "low", 1000))
  assert ratios[0] == pytest.approx(1.0, abs=0.1)  # undamped: all bands decay alike
  assert ratios[100] < 0.3  # fully damped: 4-8 kHz decays over 3x faster than < 1 kHz
  # The low band's RT60 stays at the nominal value whatever the damping.
  assert _schroeder_rt60(_band(_ir(hf_damping=100, stereo_depth=0), "low", 1000)) == pytest.approx(1.05, rel=0.06)


def test_wet_energy_is_rt60_and_stereo_depth_lowers_mono_level():
  h0 = _ir(stereo_depth=0)
  assert np.sum(h0**2) == pytest.approx(reverb_lib.rt60(50, 100), rel=1e-9)
  for depth in (30, 100):
    h = _ir(stereo_depth=depth)
    # mono = (left + right) / 2 with corr(left, right) = 1 - w: energy (2 - w) / 2 of the depth-0 IR, and
    # h0 (= left) correlates with it by sqrt((2 - w) / 2).
    w = depth / 100
    assert np.sum(h**2) / np.sum(h0**2) == pytest.approx((2 - w) / 2, rel=1e-9)
    assert np.corrcoef(h0, h)[0, 1] == pytest.approx(np.sqrt((2 - w) / 2), abs=1e-6)


def test_wet_gain_scales_wet_part_exactly():
  wet0 = _wet_of_impulse(4000)
  wet6 = _wet_of_impulse(4000, wet_gain=6)
  wet_double = _wet_of_impulse(4000, wet_gain=20 * np.log10(2))
  scale = np.max(np.abs(wet0))
  np.testing.assert_allclose(wet6, 10 ** (6 / 20) * wet0, rtol=0, atol=1e-5 * scale)
  np.testing.assert_allclose(wet_double, 2 * wet0, rtol=0, atol=1e-5 * scale)


def test_pre_delay_shifts_wet_onset():
  wet0 = _wet_of_impulse(4000, room_scale=50)
  wet20 = _wet_of_impulse(4000, room_scale=50, pre_delay=20)
  shift = 20 * RATE // 1000
  onset0 = np.flatnonzero(np.abs(wet0) > 1e-6)[0]
  onset20 = np.flatnonzero(np.abs(wet20) > 1e-6)[0]
  assert onset20 - onset0 == shift
  assert onset0 == pytest.approx((1 + 9 * 0.5) / 1000 * RATE, abs=2)  # first reflection after 5.5 ms
  np.testing.assert_allclose(wet20[:shift], 0, atol=1e-9)
  np.testing.assert_allclose(wet20[shift:], wet0[:-shift], atol=1e-6)


def test_room_scale_sets_echo_density_and_first_reflection():
  small, large = _ir(room_scale=0, reverberance=100), _ir(room_scale=100, reverberance=100)
  assert np.flatnonzero(small)[0] < np.flatnonzero(large)[0]
  # Before the mixing time the large room's IR is sparse (peaky: high crest factor), the small one's dense.
  early = slice(int(0.012 * RATE), int(0.03 * RATE))
  crest = lambda x: np.max(np.abs(x)) / np.sqrt(np.mean(x**2))
  assert crest(large[early]) > 1.5 * crest(small[early])


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(reverb_lib.ReverbParams)])
def test_every_argument_changes_output(field):
  x = np.random.default_rng(5).standard_normal(8000).astype(np.float32)
  base = reverb_lib.ReverbParams(pre_delay=10)
  step = -20.0 if field in ("room_scale", "stereo_depth") else 5.0  # stay inside sox's ranges
  changed = dataclasses.replace(base, **{field: getattr(base, field) + step})
  out_base = reverb_lib.reverb(x, RATE, np.random.default_rng(0), base)
  out_changed = reverb_lib.reverb(x, RATE, np.random.default_rng(0), changed)
  wet = out_base - x
  assert np.sqrt(np.mean((out_changed - out_base) ** 2)) > 0.01 * np.sqrt(np.mean(wet**2))


def test_out_of_range_argument_is_rejected():
  with pytest.raises(ValueError, match="pre_delay 600 is outside"):
    reverb_lib.ReverbParams(pre_delay=600).check()
  with pytest.raises(ValueError, match="wet_gain -11 is outside"):
    _ir(wet_gain=-11)
