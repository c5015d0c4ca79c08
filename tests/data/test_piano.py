"""Tests for sr_jax.data.piano: the additive piano synthesiser, note sources and the fluidsynth path."""

import os
import shutil

import numpy as np
import pytest

from sr_jax.data import piano
from sr_jax.errors import UserError

RATE = 16000


def _expected_partials(f0, b, n):
  """Stiff-string partial frequencies, computed here from the textbook formula."""
  n = np.arange(1, n + 1)
  return n * f0 * np.sqrt(1.0 + b * n ** 2)


def _envelope(x, freq, rate, width=0.1):
  """Amplitude envelope of the component of x at `freq` (complex demodulation + Hann low-pass)."""
  t = np.arange(len(x)) / rate
  base = x * np.exp(-2j * np.pi * freq * t)
  w = np.hanning(int(width * rate) + 1)
  return 2.0 * np.abs(np.convolve(base, w / w.sum(), mode="same"))


def _decay_rate(x, freq, rate, t0=0.2, t1=1.0):
  env = _envelope(x, freq, rate)
  t = np.arange(len(x)) / rate
  sel = (t >= t0) & (t <= t1)
  return -np.polyfit(t[sel], np.log(env[sel]), 1)[0]


def test_damped_sines_matches_direct_sum():
  freqs, amps, decays = np.array([110.0, 331.7, 7990.0]), np.array([0.5, 0.3, 0.2]), np.array([1.0, 3.0, 40.0])
  frames = 12345
  t = np.arange(frames) / RATE
  direct = (amps[:, None] * np.exp(-decays[:, None] * t) * np.sin(2 * np.pi * freqs[:, None] * t)).sum(0)
  np.testing.assert_allclose(piano.damped_sines(freqs, amps, decays, frames, RATE), direct, atol=1e-12)


def test_spectrum_peaks_at_inharmonic_partials():
  pitch, seconds = 45, 2.0  # A2 = 110 Hz
  x = piano.render_note(pitch, 100, seconds, RATE, hammer_noise=False)[:int(seconds * RATE)]
  expected = _expected_partials(110.0, piano.inharmonicity(pitch), 12)
  assert expected[-1] - 12 * 110.0 > 5.0  # the stretch is many bins wide: harmonic peaks would fail below
  pad = 4
  spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=pad * len(x)))
  freqs = np.fft.rfftfreq(pad * len(x), 1.0 / RATE)
  bin_hz = RATE / len(x)
  for f in expected:
    sel = np.abs(freqs - f) < 4.0
    peak = freqs[sel][np.argmax(spec[sel])]
    assert abs(peak - f) <= bin_hz, (f, peak)


def test_higher_partials_decay_faster_and_low_notes_ring_longer():
  pitch = 45
  x = piano.render_note(pitch, 100, 1.5, RATE, hammer_noise=False)
  freqs, _, decays = piano.partials(pitch, 100, RATE)
  measured = [_decay_rate(x, freqs[n - 1], RATE) for n in (1, 4, 8, 16)]
  np.testing.assert_allclose(measured, decays[[0, 3, 7, 15]], rtol=0.1)
  assert np.all(np.diff(measured) > 0)
  low = piano.render_note(40, 100, 1.5, RATE, hammer_noise=False)
  high = piano.render_note(76, 100, 1.5, RATE, hammer_noise=False)
  assert _decay_rate(low, float(piano.midi_to_hz(40)), RATE) < 0.5 * _decay_rate(high, float(piano.midi_to_hz(76)), RATE)


def test_velocity_sets_level_and_brightness():
  def centroid(x):
    spec = np.abs(np.fft.rfft(x))
    return (np.fft.rfftfreq(len(x), 1.0 / RATE) * spec).sum() / spec.sum()

  soft = piano.render_note(60, 40, 0.5, RATE, np.random.default_rng(0))
  loud = piano.render_note(60, 110, 0.5, RATE, np.random.default_rng(0))
  ratio = np.sqrt(np.mean(loud ** 2) / np.mean(soft ** 2))
  assert 0.5 * (110 / 40) ** 2 < ratio < 2.0 * (110 / 40) ** 2
  assert centroid(loud) > 1.3 * centroid(soft)


def test_release_damps_the_note():
  dur = 0.5
  x = piano.render_note(48, 90, dur, RATE, hammer_noise=False)
  before = np.sqrt(np.mean(x[int((dur - 0.1) * RATE):int(dur * RATE)] ** 2))
  after = np.sqrt(np.mean(x[int((dur + 0.1) * RATE):int((dur + 0.2) * RATE)] ** 2))
  assert after < before * np.exp(-0.1 / piano.RELEASE_TAU) * 1.5
  assert len(x) == pytest.approx(piano.note_length(48, dur) * RATE, abs=1)


def test_no_partials_at_or_above_nyquist_and_no_aliasing():
  rate = 8000
  freqs, _, _ = piano.partials(100, 100, rate)  # C#7 ~ 2217 Hz: partial 2 (~4.4 kHz) is above Nyquist
  assert len(freqs) == 1 and freqs[0] < rate / 2
  assert np.all(piano.partials(30, 100, rate)[0] < rate / 2)
  x = piano.render_note(100, 100, 0.5, rate, hammer_noise=False)[int(0.01 * rate):]
  spec = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
  f = np.fft.rfftfreq(len(x), 1.0 / rate)
  near = np.abs(f - freqs[0]) < 30
  assert spec[~near].sum() < 1e-4 * spec.sum()


def test_render_notes_normalised_finite_deterministic():
  notes = np.array([[0.0, 0.5, 60, 90], [0.25, 0.5, 64, 70], [0.5, 1.0, 21, 127], [0.6, 0.3, 108, 127]])
  a = piano.render_notes(notes, RATE, seed=3)
  b = piano.render_notes(notes[::-1], RATE, seed=3)  # order of the list does not matter
  c = piano.render_notes(notes, RATE, seed=4)
  assert a.dtype == np.float32 and np.all(np.isfinite(a))
  assert 20 * np.log10(np.abs(a).max()) == pytest.approx(-1.0, abs=1e-3)
  np.testing.assert_array_equal(a, b)
  assert a.shape == c.shape and not np.array_equal(a, c)  # the seed drives the hammer noise only
  last_end = max(on + piano.note_length(p, d) for on, d, p, _ in notes)
  assert len(a) == pytest.approx((last_end + 0.25) * RATE, abs=2)


def test_quarters_to_seconds_with_tempo_changes():
  q = np.array([0.0, 2.0, 4.0, 6.0, 10.0])
  np.testing.assert_allclose(piano.quarters_to_seconds(q, {}), q * 60 / piano.DEFAULT_BPM)
  np.testing.assert_allclose(piano.quarters_to_seconds(q, {0.0: 60.0, 4.0: 120.0}), [0, 2, 4, 5, 7])
  # before the first mark: the default tempo
  np.testing.assert_allclose(piano.quarters_to_seconds(q, {4.0: 60.0}), [0, 1.2, 2.4, 4.4, 8.4])


def test_score_notes_reads_tempo_ties_and_dynamics(tmp_path):
  from music21 import dynamics, note, stream, tempo, tie

  part = stream.Part()
  part.append(tempo.MetronomeMark(number=60))
  for name, ql in [("C4", 1), ("D4", 1), ("E4", 2), ("E4", 2), ("F4", 1), ("G4", 1)]:
    part.append(note.Note(name, quarterLength=ql))
  tied = list(part.notes)[2:4]
  tied[0].tie, tied[1].tie = tie.Tie("start"), tie.Tie("stop")
  part.insert(2.0, dynamics.Dynamic("pp"))
  path = str(tmp_path / "s.musicxml")
  stream.Score([part]).write("musicxml", fp=path)
  notes = piano.score_notes(path, seed=0)
  np.testing.assert_allclose(notes[:, 0], [0, 1, 2, 6, 7])  # the tied e2~e2 is one note of 4 s
  np.testing.assert_allclose(notes[:, 1], [1, 1, 4, 1, 1])
  np.testing.assert_array_equal(notes[:, 2], [60, 62, 64, 65, 67])
  assert np.all(np.abs(notes[:2, 3] - piano.DEFAULT_VELOCITY) <= 4 * piano.VELOCITY_JITTER)
  assert np.all(np.abs(notes[2:, 3] - piano.DYNAMICS["pp"]) <= 4 * piano.VELOCITY_JITTER)
  np.testing.assert_array_equal(notes, piano.score_notes(path, seed=0))
  assert not np.array_equal(notes[:, 3], piano.score_notes(path, seed=1)[:, 3])
  assert piano.score_notes(path, seed=0, max_seconds=2.5)[:, 0].max() < 2.5


def test_midi_bytes_round_trip():
  from music21 import midi

  notes = np.array([[0.0, 0.5, 60, 90], [0.5, 1.0, 64, 70]])
  mf = midi.MidiFile()
  mf.readstr(piano.midi_bytes(notes))
  assert mf.ticksPerQuarterNote == 480 and len(mf.tracks) == 1
  on = [(e.pitch, e.velocity) for e in mf.tracks[0].events if e.type == midi.ChannelVoiceMessages.NOTE_ON]
  assert on == [(60, 90), (64, 70)]


def test_random_notes_and_fit_length():
  notes = piano.random_notes(np.random.default_rng(0), 3.0)
  assert notes.shape[1] == 4 and notes[:, 0].max() < 3.0 and notes[:, 0].min() == 0.0
  assert np.all((notes[:, 2] >= 21) & (notes[:, 2] <= 108))
  np.testing.assert_array_equal(notes, piano.random_notes(np.random.default_rng(0), 3.0))
  y = piano.fit_length(np.ones(100), 160, 8000)
  assert len(y) == 160 and y[-1] == 0.0 and np.all(y[100:] == 0)


def test_fluidsynth_missing_is_a_user_error(tmp_path):
  with pytest.raises(UserError, match="apt-get install fluidsynth fluid-soundfont-gm"):
    piano.find_soundfont(str(tmp_path / "missing.sf2"))


@pytest.mark.skipif(shutil.which("fluidsynth") is None or not os.path.isfile(piano.DEFAULT_SOUNDFONT),
                    reason="needs Debian's fluidsynth and fluid-soundfont-gm (apt-get install fluidsynth "
                    "fluid-soundfont-gm)")
def test_render_fluidsynth():
  notes = np.array([[0.0, 0.5, 60, 90], [0.5, 0.5, 67, 90]])
  y = piano.render_fluidsynth(notes, RATE)
  assert y.dtype == np.float32 and np.all(np.isfinite(y))
  assert 20 * np.log10(np.abs(y).max()) == pytest.approx(-1.0, abs=1e-3)
  assert 1.0 * RATE < len(y) < 4.0 * RATE
  spec = np.abs(np.fft.rfft(y[:int(0.45 * RATE)]))
  f = np.fft.rfftfreq(int(0.45 * RATE), 1.0 / RATE)
  assert abs(f[np.argmax(spec * (f < 400))] - 261.6) < 5  # the first note sounds at middle C
