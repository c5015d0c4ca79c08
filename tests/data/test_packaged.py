"""Tests for sr_jax.data.packaged on small generated fixtures laid out like packages (no Debian package needed):
bandwidth measurement, segmenting, splits by family (no leak), manifest, determinism, resumability, G.722, MIDI."""

import dataclasses
import filecmp
import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from sr_jax.data import datasets, packaged, piano
from sr_jax.errors import UserError

RATE = 22050


def _files(folder):
  return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)


def _same_bytes(a, b):
  assert _files(a) == _files(b)
  for f in _files(a):
    assert filecmp.cmp(os.path.join(a, f), os.path.join(b, f), shallow=False), f


def _lowpassed_noise(rng, seconds, rate, cutoff, taps=1023):
  """White noise through a Kaiser-windowed sinc low-pass with its cut-off at `cutoff` Hz (transition ~1 %)."""
  k = np.arange(taps) - (taps - 1) / 2
  h = 2 * cutoff / rate * np.sinc(2 * cutoff / rate * k) * np.kaiser(taps, 12.0)
  return np.convolve(rng.standard_normal(int(seconds * rate) + taps), h / h.sum(), mode="valid")


def _speechlike(rng, seconds, rate):
  """Bursts (a harmonic tone plus broadband noise, 0.4-1.5 s) separated by 0.6-0.9 s of near silence."""
  out = np.zeros(int(seconds * rate))
  t = 0.2
  while t < seconds - 0.5:
    n = int(min(rng.uniform(0.4, 1.5), seconds - t) * rate)
    at = int(t * rate)
    f0 = rng.uniform(100, 300)
    x = sum(np.sin(2 * np.pi * f0 * h * np.arange(n) / rate) / h for h in range(1, 20) if f0 * h < rate / 2)
    out[at:at + n] = 0.3 * x + 0.05 * rng.standard_normal(n)
    t += n / rate + rng.uniform(0.6, 0.9)
  return (out + 1e-5 * rng.standard_normal(len(out))).astype(np.float32)


def _make_packages(root):
  """Four speech 'packages' (two training speakers sharing prompt names, a held-out test speaker, a validation
  speaker in headerless 16 kHz .raw) and one narrowband input-only set, in wav, ogg, flac and raw."""
  rng = np.random.default_rng(0)
  layout = dict(a=("wav", 6), b=("ogg", 6), h=("flac", 4), v=("raw", 3), n=("wav", 2))
  for folder, (ext, count) in layout.items():
    os.makedirs(os.path.join(root, folder, "sub"), exist_ok=True)
    for i in range(count):
      name = os.path.join(root, folder, "sub" if i % 3 == 2 else "", f"prompt{i}.{ext}")
      audio = _speechlike(rng, 4.0 + i % 3, 16000 if ext == "raw" else RATE)
      if ext == "raw":
        (np.clip(audio, -1, 1) * 32767).astype("<i2").tofile(name)
      else:
        sf.write(name, audio, RATE if folder != "n" else 8000, format=ext.upper())
  with open(os.path.join(root, "a", "readme.txt"), "w", encoding="utf-8") as f:
    f.write("not audio\n")
  src = packaged.Source
  return (
      src("spk-a", "speech", "apt:fake-a", os.path.join(root, "a"), ("**/*.wav",), family="A", licence="CC0",
          workspace="prompts"),
      src("spk-b", "speech", "apt:fake-b", os.path.join(root, "b"), ("**/*.ogg",), family="B", licence="MIT",
          workspace="prompts"),
      src("spk-h", "speech", "apt:fake-h", os.path.join(root, "h"), ("**/*.flac",), family="H", role="test",
          licence="GPL-2"),
      src("spk-v", "speech", "apt:fake-v", os.path.join(root, "v"), ("**/*.raw",), family="V", role="valid",
          codec="raw16", rate=16000, licence="BSD-3-clause", work="dir"),
      src("spk-n", "speech", "apt:fake-n", os.path.join(root, "n"), ("**/*.wav",), family="N", role="input",
          target=False),
  )


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
  return _make_packages(str(tmp_path_factory.mktemp("packages")))


def _build(registry, out, **kwargs):
  kwargs = dict(dict(minutes=None, workers=1, progress=False, min_seconds=0.5, max_seconds=3.0), **kwargs)
  return packaged.build_packaged_corpus("speech", str(out), rate=16000, registry=registry, **kwargs)


@pytest.fixture(scope="module")
def built(packages, tmp_path_factory):
  out = tmp_path_factory.mktemp("built") / "corpus"
  return out, _build(packages, out)


# ----- bandwidth -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate,cutoff", [(16000, 3900.0), (16000, 7000.0), (44100, 11025.0), (44100, 16000.0)])
def test_bandwidth_of_band_limited_noise(rate, cutoff):
  x = _lowpassed_noise(np.random.default_rng(1), 6.0, rate, cutoff)
  bw = packaged.measure_bandwidth(x, rate)
  assert 0.97 * cutoff <= bw["energy_hz"] <= cutoff
  for key in ("edge_40_hz", "edge_60_hz"):
    assert bw[key] == pytest.approx(cutoff, rel=0.03), key
  full = packaged.measure_bandwidth(np.random.default_rng(2).standard_normal(rate * 3), rate)
  assert full["edge_60_hz"] >= 0.99 * rate / 2 and full["energy_hz"] >= 0.99 * rate / 2
  assert packaged.usable_as_target(bw["edge_60_hz"]) == (cutoff >= 7600)


def test_bandwidth_of_silence_and_the_meter_adds_up():
  assert packaged.measure_bandwidth(np.zeros(5000), 16000)["edge_60_hz"] == 0.0
  rng = np.random.default_rng(3)
  x = _lowpassed_noise(rng, 4.0, 16000, 3000.0)
  meter = packaged.SpectrumMeter(16000)
  meter.add(x[:30000])
  meter.add(x[30000:])
  assert meter.result()["edge_60_hz"] == pytest.approx(3000.0, rel=0.03)
  assert meter.levels()["db@6000"] < -60


# ----- segmenting ----------------------------------------------------------------------------------------------


def test_segment_bounds_skip_silence_and_respect_lengths():
  rate = 8000
  x = np.zeros(rate * 30)
  x[rate * 1:rate * 3] = 0.5  # 2 s
  x[rate * 5:int(rate * 5.3)] = 0.5  # 0.3 s: too short
  x[rate * 8:rate * 29] = 0.5  # 21 s: cut into parts of at most 10 s
  bounds = packaged.segment_bounds(x, rate, min_seconds=1.0, max_seconds=10.0)
  seconds = [(b - a) / rate for a, b in bounds]
  assert all(1.0 <= s <= 10.0 + 1e-9 for s in seconds), seconds
  assert bounds[0][0] == pytest.approx(0.9 * rate, abs=0.03 * rate) and seconds[0] == pytest.approx(2.2, abs=0.05)
  assert not any(a < 5.3 * rate and b > 5 * rate for a, b in bounds)
  assert len(bounds) == 4 and sum(seconds[1:]) == pytest.approx(21.2, abs=0.05)
  short = packaged.segment_bounds(np.random.default_rng(0).standard_normal(rate * 7), rate, 0.5, 1.5)
  assert all(0.5 <= (b - a) / rate <= 1.5 for a, b in short) and short == sorted(short)
  assert all(b1 <= a2 for (_, b1), (a2, _) in zip(short, short[1:])) and sum(b - a for a, b in short) > 0.9 * rate * 7
  chosen = packaged.choose_segments(bounds, rate, 12.0, "k")
  assert chosen == sorted(chosen) and chosen == packaged.choose_segments(bounds, rate, 12.0, "k")
  assert 12.0 <= sum((b - a) / rate for a, b in chosen) < 22.0


# ----- building ------------------------------------------------------------------------------------------------


def test_manifest_matches_the_files(built, packages):
  out, summary = built
  rows = packaged.read_manifest(str(out))
  assert rows and all(tuple(r) == packaged.MANIFEST_COLUMNS for r in rows)
  assert {f for f in _files(str(out)) if f.endswith(".wav")} == {f"{r['split']}/{r['segment']}.wav" for r in rows}
  licences = {s.name: s.licence for s in packages}
  for r in rows:
    info = sf.info(os.path.join(str(out), r["split"], r["segment"] + ".wav"))
    assert info.samplerate == 16000 and info.channels == 1 and info.subtype == "PCM_16"
    assert float(r["seconds"]) == pytest.approx(info.frames / 16000, abs=1e-3)
    assert 0.5 <= float(r["seconds"]) <= 3.0 + 1e-3 and float(r["edge_hz"]) >= 6000
    assert r["licence"] == licences[r["source"]] and r["file"].startswith(("prompt", "sub/prompt"))
  assert summary["sources"] == ["spk-a", "spk-b", "spk-h", "spk-v"]
  splits = datasets.folder_splits(str(out))
  assert {k: len(v) for k, v in splits.items()} == summary["pieces"]


def test_splits_by_family_no_leak(built):
  rows = packaged.read_manifest(str(built[0]))
  by_family = {}
  for r in rows:
    by_family.setdefault(r["family"], set()).add(r["split"])
  assert by_family["H"] == {"test"} and by_family["V"] == {"valid"}
  assert "N" not in by_family  # input-only (narrowband) sources never become targets
  assert {r["split"] for r in rows if r["family"] in "AB"} == {"train", "valid", "test"}
  train_families = {r["family"] for r in rows if r["split"] == "train"}
  assert train_families == {"A", "B"}
  work_split = {}  # one prompt name (shared by the two training speakers' workspace) lies in one split only
  for r in rows:
    if r["family"] in "AB":
      work = os.path.splitext(r["file"])[0]
      assert work_split.setdefault(work, r["split"]) == r["split"], work
  assert {r["role"] for r in rows if r["split"] == "train"} == {"train"}


def test_deterministic_and_workers_do_not_change_bytes(built, packages, tmp_path):
  _build(packages, tmp_path / "again", workers=2)
  _same_bytes(str(built[0]), str(tmp_path / "again"))
  # splits hang on hashes of the works only; the seed picks the order and which segments of a long file are kept
  _build(packages, tmp_path / "seed0", seed=0, max_file_seconds=2.0)
  _build(packages, tmp_path / "seed1", seed=1, max_file_seconds=2.0)
  seed0, seed1 = (packaged.read_manifest(str(tmp_path / k)) for k in ("seed0", "seed1"))
  assert seed0 != seed1
  assert {r["file"]: r["split"] for r in seed0} == {r["file"]: r["split"] for r in seed1}


def test_resumable_quota_and_stamp(built, packages, tmp_path):
  out = tmp_path / "c"
  small = _build(packages, out, minutes=0.25)
  assert small["minutes"]["train"] >= 0.2 and small["pieces"]["train"] < built[1]["pieces"]["train"]
  first = {f: open(os.path.join(str(out), f), "rb").read() for f in _files(str(out)) if f.endswith(".wav")}
  again = _build(packages, out, minutes=0.25)
  assert again["rendered"] == 0 and again["pieces"] == small["pieces"]
  full = _build(packages, out)  # more minutes only adds
  assert all(open(os.path.join(str(out), f), "rb").read() == b for f, b in first.items())
  assert full["pieces"] == built[1]["pieces"]
  victim = sorted(first)[0]
  os.remove(os.path.join(str(out), victim))
  with open(os.path.join(str(out), "train", "stray.wav"), "wb") as f:
    f.write(b"junk")
  redo = _build(packages, out)
  assert redo["rendered"] == 1 and not os.path.exists(os.path.join(str(out), "train", "stray.wav"))
  _same_bytes(str(built[0]), str(out))
  with pytest.raises(UserError, match="seed"):
    _build(packages, out, seed=5)
  with pytest.raises(UserError, match="sources"):
    _build(packages[:3], out)


def test_bad_arguments_and_missing_sources(packages, tmp_path):
  with pytest.raises(UserError, match="kind"):
    packaged.build_packaged_corpus("poetry", str(tmp_path / "x"), registry=packages)
  with pytest.raises(UserError, match="no music source"):
    packaged.build_packaged_corpus("music", str(tmp_path / "x"), registry=packages, progress=False)
  gone = [dataclasses.replace(s, root=str(tmp_path / "nowhere")) for s in packages]
  # the error names the packages of every target source (spk-n is an input-only set: not needed)
  with pytest.raises(UserError, match=r"no speech source is installed: sudo apt-get install fake-a fake-b fake-h "
                                      r"fake-v$"):
    packaged.build_packaged_corpus("speech", str(tmp_path / "y"), registry=gone, progress=False)
  with pytest.raises(UserError, match="minutes"):
    _build(packages, tmp_path / "z", minutes=0)


def test_a_missing_source_is_named_with_its_package(packages, tmp_path, capsys, monkeypatch):
  part = list(packages)
  part[1] = dataclasses.replace(part[1], root=str(tmp_path / "nowhere"))  # spk-b not installed
  assert [s.name for s in packaged.missing_sources("speech", part)] == ["spk-b"]
  assert packaged.missing_sources("speech", packages) == []
  _build(part, tmp_path / "c", progress=True)
  err = capsys.readouterr().err
  assert "warning: 1 speech source(s) not usable here (spk-b)" in err and "sudo apt-get install fake-b" in err
  monkeypatch.setattr(packaged, "REGISTRY", tuple(part))
  assert packaged.main(["survey", "--max_minutes", "0.1"]) == 0
  out = capsys.readouterr().out.splitlines()
  assert [line.split()[0] for line in out[:-1]] == [f"name={s.name}" for s in part]
  assert "installed=False  get: sudo apt-get install fake-b" in out[1] and "installed=True" in out[0]
  assert out[-1] == "4 of 5 sources installed; the others: sudo apt-get install fake-b"
  pipped = dataclasses.replace(part[1], package="pip:fake-wheel", root="pip:fake-wheel")
  assert packaged.install_hint([part[0], pipped]) == ("sudo apt-get install fake-a; "
                                                      "python3 -m sr_jax.data.packaged unpack spk-b")


def test_roots_override_points_a_source_elsewhere(packages, tmp_path):
  moved = str(tmp_path / "moved")
  shutil.copytree(packages[2].root, moved)
  assert packaged.resolve_root(packages[2], {"spk-h": moved}) == moved
  assert packaged.resolve_root(dataclasses.replace(packages[2], root="/nope|" + moved)) == moved
  assert packaged.resolve_root(dataclasses.replace(packages[2], root="/nope")) is None
  files = packaged.source_files(packages[0], packages[0].root)
  assert [os.path.relpath(f, packages[0].root) for f in files] == [
      "prompt0.wav", "prompt1.wav", "prompt3.wav", "prompt4.wav", "sub/prompt2.wav", "sub/prompt5.wav"]
  excl = dataclasses.replace(packages[0], exclude=("sub/*",))
  assert len(packaged.source_files(excl, excl.root)) == 4


# ----- the registry ----------------------------------------------------------------------------------------------


def test_registry_is_consistent_and_holds_families_out():
  packaged.check_registry(packaged.REGISTRY)
  for kind in ("music", "speech"):
    sources = [s for s in packaged.REGISTRY if s.kind == kind and s.target and s.role != "input"]
    train = {s.fam for s in sources if s.role == "train"}
    held = {s.fam for s in sources if s.role == "test"}
    assert held and not held & train, kind
    assert {s.fam for s in sources if s.role == "valid"}.isdisjoint(train)
  assert all(s.licence and s.package.split(":")[0] in ("apt", "pip") for s in packaged.REGISTRY)


def test_check_registry_refuses_a_family_with_two_roles(packages):
  bad = list(packages) + [dataclasses.replace(packages[2], name="spk-h2", role="train")]
  with pytest.raises(UserError, match="two roles"):
    packaged.check_registry(bad)
  with pytest.raises(UserError, match="twice"):
    packaged.check_registry(list(packages) + [packages[0]])


def test_work_of():
  s = packaged.Source("x", "music", "apt:x", "/r/kitname")
  assert packaged.work_of(s, "digits/1.g722") == "x:digits/1"
  assert packaged.work_of(dataclasses.replace(s, work="dir"), "song/guitar.ogg") == "x:song"
  assert packaged.work_of(dataclasses.replace(s, work="top"), "kit/a/b.wav") == "x:kit"
  assert packaged.work_of(dataclasses.replace(s, work="top"), "b.wav") == "x:kitname"
  assert packaged.work_of(dataclasses.replace(s, work="prefix", workspace="w"), "loop_amen.flac") == "w:loop"


# ----- drum grooves, MIDI programs, G.722 ----------------------------------------------------------------------


def test_collage_source_builds_grooves_per_kit(tmp_path):
  rng = np.random.default_rng(4)
  for kit in ("k1", "k2", "k3", "k4"):
    os.makedirs(tmp_path / "kits" / kit)
    for i in range(3):
      hit = rng.standard_normal(int(0.2 * RATE)) * np.exp(-np.arange(int(0.2 * RATE)) / (0.03 * RATE))
      sf.write(str(tmp_path / "kits" / kit / f"hit{i}.wav"), 0.5 * hit, RATE)
  kits = packaged.Source("kits", "music", "apt:fake", str(tmp_path / "kits"), ("**/*.wav",), mode="collage",
                         work="top", licence="CC0")
  out = packaged.build_packaged_corpus("music", str(tmp_path / "m"), rate=16000, minutes=None, registry=[kits],
                                       workers=1, progress=False, max_file_seconds=None)
  rows = packaged.read_manifest(str(tmp_path / "m"))
  kit_split = {}
  for r in rows:
    kit = r["file"].split("#")[0]
    assert kit_split.setdefault(kit, r["split"]) == r["split"]
  assert set(kit_split) == {"k1", "k2", "k3", "k4"} and set(kit_split.values()) == {"train", "valid", "test"}
  assert out["minutes"]["train"] > 1.0
  a = packaged.collage([np.ones(10)], 1000, 2.0, np.random.default_rng(0))
  b = packaged.collage([np.ones(10)], 1000, 2.0, np.random.default_rng(0))
  assert len(a) == 2000 and np.array_equal(a, b)


def _midi_events(data):
  """(status, data1) of the channel events of a format-0 file written by piano.midi_bytes."""
  i, out = 22, []
  while i < len(data):
    while data[i] & 0x80:
      i += 1
    i += 1
    if data[i] == 0xFF:
      if data[i + 1] == 0x2F:
        break
      i += 3 + data[i + 2]
      continue
    n = 2 if data[i] & 0xF0 == 0xC0 else 3
    out.append((data[i], data[i + 1]))
    i += n
  return out


def test_gm_midi_bytes_set_the_program_and_the_drum_channel():
  notes = np.array([[0.0, 0.5, 60, 90], [0.5, 0.5, 100, 80], [1.0, 0.5, 20, 70]])
  plain = _midi_events(piano.midi_bytes(notes))
  strings = _midi_events(packaged.gm_midi_bytes(notes, 40))
  assert strings[0] == (0xC0, 40) and strings[1:] == plain[1:]
  drums = _midi_events(packaged.gm_midi_bytes(notes, packaged.DRUMS))
  assert all(status & 0x0F == 9 for status, _ in drums)
  assert all(35 <= key <= 81 for status, key in drums if status & 0xF0 in (0x80, 0x90))
  assert set(packaged.GM_PROGRAMS) <= set(range(120)) and len(set(packaged.GM_PROGRAMS)) > 90


@pytest.mark.skipif(shutil.which("fluidsynth") is None or not os.path.isfile(piano.DEFAULT_SOUNDFONT),
                    reason="needs Debian's fluidsynth and fluid-soundfont-gm")
def test_render_program_with_fluidsynth():
  notes = piano.random_notes(np.random.default_rng(0), 2.0)
  for program in (40, packaged.DRUMS):
    x = packaged.render_program(notes, 16000, piano.DEFAULT_SOUNDFONT, program)
    assert len(x) > 16000 and np.abs(x).max() == pytest.approx(10 ** (-1 / 20), rel=1e-3)


@pytest.mark.skipif(not packaged.g722_available(), reason="needs the G722 PyPI module")
def test_g722_files_decode_at_16k(tmp_path):
  import G722  # pylint: disable=import-outside-toplevel

  x = _lowpassed_noise(np.random.default_rng(5), 2.0, 16000, 6000.0)
  pcm = (0.3 * x / np.abs(x).max() * 32767).astype(np.int16)[:32000]  # G.722 codes pairs of samples
  path = str(tmp_path / "prompt.g722")
  with open(path, "wb") as f:
    f.write(G722.G722(16000, 64000).encode(np.asarray(pcm)))
  audio, rate = packaged.decode(path)
  assert rate == 16000 and len(audio) == len(pcm)
  lag = int(np.argmax(np.correlate(audio[1000:5000], pcm[1000:4000] / 32768.0, mode="valid")))
  ref = pcm[1000:1000 + 3000] / 32768.0
  assert np.corrcoef(audio[1000 + lag:4000 + lag], ref)[0, 1] > 0.9
  meter = packaged.SpectrumMeter(rate)
  meter.add(audio)
  # G.722 codes 4-8 kHz with 2-bit ADPCM: loud flat noise leaves coding noise ~20 dB down in the empty band
  assert meter.levels()["db@4000"] > -3 and meter.levels()["db@7500"] < -12
