"""Room impulse responses for the `room` degradation step, for a drawn reverberation time (RT60).

Two room models, each drawing everything else (room, positions, noise) from the caller's numpy Generator:

- "image": a random shoebox room simulated by the image-source method (pyroomacoustics, an optional
  dependency: `pip install pyroomacoustics`). Its walls absorb a fraction `eyring_absorption(rt60, dims)`
  of the energy at each reflection, so the image sources' mean energy decays by 60 dB in RT60 seconds. Image
  sources give the early reflections, up to min(`DIFFUSE_AFTER_S`, RT60 / 4) after the direct sound; after that a
  diffuse tail (Gaussian noise whose energy decays exponentially at the same RT60, at the level the image sources
  have on average there) takes over, cross-faded over `FADE_S`. Real rooms scatter sound into such a diffuse
  field; specular image sources alone decay more slowly than RT60 in a shoebox (a few grazing paths survive)
  and would need millions of them (seconds per example) for a long RT60.
  Room: length, width, height uniform in `ROOM_DIMS_M`; microphone and source uniform at least `WALL_MARGIN_M`
  from the walls and `MIN_DISTANCE_M` apart (the source is redrawn), then brought along the line to the
  microphone to at most `MAX_DISTANCE_M` (a recording distance). Walls are flat (frequency-independent); each
  image is a Hann-windowed sinc fractional delay (81 taps, as pyroomacoustics); the reflections are high-passed
  at 10 Hz (zero-phase), as pyroomacoustics does, since their all-positive pulses also build up a slow offset.
- "synthetic": `sr_jax.data.reverb` (sox-like) with the room scale uniform over those that reach the RT60,
  reverberance from the RT60, HF damping and stereo depth uniform in [0, 100] %, no pre-delay, wet gain 0 dB.
  RT60 is then its low-frequency (< 1 kHz) reverberation time.

Alignment: both IRs have the direct path at index 0 with gain exactly 1, so `apply_ir` returns dry + wet where
the dry part is the input itself, not delayed: a model restoring the dry target need not learn a shift or gain.
(For "image" the propagation delay distance / c and the 1 / (4 pi distance) attenuation are divided out.)
"""

from __future__ import annotations

import math

import numpy as np
import scipy.signal

from sr_jax.data import reverb as reverb_lib
from sr_jax.errors import UserError

KINDS = ("image", "synthetic")
RT60_RANGE_S = (0.1, 2.0)  # shorter decays are a few discrete reflections; the synthetic reverb stops at 2.05 s
SPEED_OF_SOUND = 343.0  # m/s, pyroomacoustics' default
ROOM_DIMS_M = ((3.0, 10.0), (2.5, 8.0), (2.4, 4.0))  # length, width, height ranges
WALL_MARGIN_M = 0.3
MIN_DISTANCE_M = 0.5
MAX_DISTANCE_M = 4.0
DIFFUSE_AFTER_S = 0.08  # image sources up to min(this, RT60 / 4) after the direct sound, the diffuse tail after
FADE_S = 0.01
_FRACTIONAL_HALF_TAPS = 40  # windowed-sinc fractional delays of 81 taps (as pyroomacoustics)
_MAX_ORDER = 40  # reflection order cap (reached only in rooms far smaller than ROOM_DIMS_M)
HIGHPASS_HZ = 10.0  # on the image sources' reflections, as pyroomacoustics' default rir_hpf_fc


def require_pyroomacoustics():
  """The pyroomacoustics module, or a UserError saying how to install it."""
  try:
    import pyroomacoustics  # noqa: PLC0415  (optional dependency)
  except ImportError:
    raise UserError("the 'room image' degradation step needs pyroomacoustics: pip install pyroomacoustics "
                    "(or use 'room synthetic')") from None
  return pyroomacoustics


def eyring_absorption(rt60: float, dims: np.ndarray) -> float:
  """Energy absorption coefficient of the walls of a shoebox `dims` (m) that gives `rt60` s (Eyring's formula).

  An image source at distance c t has met about c t S / (4 V) walls on average (the mean free path is 4 V / S),
  so its energy is scaled by (1 - a) ** (c t S / (4 V)); that is 10 ** (-6 t / RT60) for this `a`. Sabine's
  inverse (pyroomacoustics.inverse_sabine, a = 24 ln(10) V / (c S RT60)) is its first-order approximation: too
  little absorption for short RT60 (and above 1, impossible, for large rooms).
  """
  dims = np.asarray(dims, dtype=np.float64)
  volume = float(np.prod(dims))
  surface = 2.0 * float(dims[0] * dims[1] + dims[1] * dims[2] + dims[0] * dims[2])
  return 1.0 - math.exp(-24.0 * math.log(10.0) * volume / (SPEED_OF_SOUND * surface * rt60))


def draw_shoebox(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(dims, source, microphone) in metres: a random room and two positions in it (see the module docstring)."""
  dims = np.array([rng.uniform(low, high) for low, high in ROOM_DIMS_M])
  inner = lambda: WALL_MARGIN_M + rng.uniform(size=3) * (dims - 2 * WALL_MARGIN_M)  # noqa: E731
  mic = inner()
  for _ in range(100):  # a redraw is needed with probability < 1 %; 100 failures never happen in practice
    source = inner()
    if np.linalg.norm(source - mic) >= MIN_DISTANCE_M:
      break
  distance = np.linalg.norm(source - mic)
  if distance > MAX_DISTANCE_M:  # the segment from mic to source stays inside the (convex) room
    source = mic + (source - mic) * (MAX_DISTANCE_M / distance)
  return dims, source, mic


def _order_for(dims: np.ndarray, distance_m: float) -> int:
  """The reflection order whose image sources cover every path up to `distance_m` (the rule of
  pyroomacoustics.inverse_sabine: the images of order <= n fill a diamond holding a sphere of n x `radius`)."""
  pairs = [(dims[0], dims[1]), (dims[1], dims[2]), (dims[0], dims[2])]
  radius = min(a * b / math.hypot(a, b) for a, b in pairs)
  return int(min(_MAX_ORDER, max(1, math.ceil(distance_m / radius))))


def _fractional_pulses(n: int, delays: np.ndarray, gains: np.ndarray) -> np.ndarray:
  """Sum of `gains` pulses at fractional sample `delays` (Hann-windowed sincs), cut to [0, n)."""
  half = _FRACTIONAL_HALF_TAPS
  base = np.floor(delays).astype(np.int64)
  taps = np.arange(-half, half + 1)
  offsets = taps[None, :] - (delays - base)[:, None]
  kernel = np.sinc(offsets) * (0.5 + 0.5 * np.cos(np.pi * offsets / (half + 1)))
  kernel[np.rint(delays) == delays] = (taps == 0)  # integer delays (the direct path) are exact unit pulses
  index = base[:, None] + taps[None, :]
  keep = (index >= 0) & (index < n)
  out = np.zeros(n)
  np.add.at(out, index[keep], (gains[:, None] * kernel)[keep])
  return out


def image_ir(rate: int, rt60: float, rng: np.random.Generator) -> np.ndarray:
  """The impulse response (float64) of a random shoebox room with reverberation time `rt60` seconds.

  Index 0 is the direct sound, with gain exactly 1; ceil(rt60 * rate) + 1 samples (the tail is then 60 dB down).
  """
  pra = require_pyroomacoustics()
  dims, source, mic = draw_shoebox(rng)
  absorption = eyring_absorption(rt60, dims)
  n = int(math.ceil(rt60 * rate)) + 1
  distance = float(np.linalg.norm(source - mic))
  diffuse_after = min(DIFFUSE_AFTER_S, rt60 / 4.0)
  early = min(n, int(round((diffuse_after + FADE_S) * rate)))
  order = _order_for(dims, distance + early / rate * SPEED_OF_SOUND)
  room = pra.ShoeBox(dims, fs=rate, materials=pra.Material(absorption), max_order=order, air_absorption=False)
  room.add_source(source)
  room.add_microphone(mic)
  room.image_source_model()
  images = room.sources[0]
  paths = np.linalg.norm(images.images.T.astype(np.float64) - room.mic_array.R[:, 0][None, :], axis=1)
  direct = paths[images.orders == 0][0]  # pyroomacoustics' (float32) positions: its direct path is exactly 0
  delays = (paths - direct) / SPEED_OF_SOUND * rate
  gains = direct / paths * images.damping[0].astype(np.float64)
  near = (delays < early + _FRACTIONAL_HALF_TAPS) & (images.orders > 0)
  # Every image adds a positive pulse, so their sum also builds up a slowly varying positive mean that real rooms
  # do not have (3-5 dB of excess energy by 80 ms); like pyroomacoustics, a 10 Hz high-pass removes it.
  highpass = scipy.signal.butter(2, HIGHPASS_HZ, "high", fs=rate, output="sos")
  h = scipy.signal.sosfiltfilt(highpass, _fractional_pulses(n, delays[near], gains[near]))
  h[0] = 1.0  # the direct sound, exact (reflections arrive later; this drops the high-pass's pre-ringing there)

  t = np.arange(n) / rate
  fade = np.clip((t - diffuse_after) / FADE_S, 0.0, 1.0)
  # Expected energy per sample of the reflections at time t since emission, relative to the direct sound's
  # (1 / (4 pi d))^2: images fill space with density 1 / V, so (4 pi (c t)^2 c / rate / V) / (4 pi c t)^2 * decay.
  emitted = t + direct / SPEED_OF_SOUND
  energy = 4.0 * math.pi * direct**2 * SPEED_OF_SOUND / (float(np.prod(dims)) * rate) * 10.0 ** (-6.0 * emitted / rt60)
  tail = rng.standard_normal(n) * np.sqrt(energy)
  return h * np.cos(0.5 * np.pi * fade) + tail * np.sin(0.5 * np.pi * fade)


def synthetic_params(rt60: float, rng: np.random.Generator) -> reverb_lib.ReverbParams:
  """sox-like reverb arguments with low-frequency RT60 `rt60` (three uniform draws; see the module docstring)."""
  low, high = reverb_lib.room_scale_range(rt60)
  room_scale = low + (high - low) * rng.uniform()
  hf_damping, stereo_depth = 100.0 * rng.uniform(size=2)
  return reverb_lib.ReverbParams(reverb_lib.reverberance_for(rt60, room_scale), hf_damping, room_scale,
                                 stereo_depth, 0.0, 0.0)


def room_ir(kind: str, rate: int, rt60: float, rng: np.random.Generator) -> np.ndarray:
  """A room's IR (float64, direct path at index 0 with gain 1) of `kind` "image" or "synthetic"."""
  if not RT60_RANGE_S[0] <= rt60 <= RT60_RANGE_S[1]:
    raise UserError(f"RT60 {rt60:g} s is outside [{RT60_RANGE_S[0]:g}, {RT60_RANGE_S[1]:g}] s")
  if kind == "image":
    return image_ir(rate, rt60, rng)
  if kind == "synthetic":
    ir = reverb_lib.impulse_response(rate, rng, synthetic_params(rt60, rng))
    ir[0] += 1.0  # the wet part starts after the first reflection (at least 1 ms): index 0 is the dry sound
    return ir
  raise UserError(f"unknown room kind {kind!r}: use one of {', '.join(KINDS)}")


def apply_ir(audio: np.ndarray, ir: np.ndarray) -> np.ndarray:
  """audio convolved with `ir`, float32, same length (the tail past the end is dropped)."""
  audio = np.asarray(audio, dtype=np.float64)
  return scipy.signal.oaconvolve(audio, ir)[: len(audio)].astype(np.float32)
