"""Tests of sr_jax.data.datasets: file lists per split, MAESTRO metadata, robust loading."""

from __future__ import annotations

import hashlib
import json
import logging
import os

import numpy as np
import pytest
import soundfile as sf

from configs.default import get_config
from sr_jax.data import datasets, sources
from sr_jax.errors import UserError


def _data_config(**overrides):
  c = get_config().data
  c.source = "folder"
  for k, v in overrides.items():
    c[k] = v
  return c


def _touch(path):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  open(path, "wb").close()


def _sine(freq, seconds, rate, amp=0.5):
  t = np.arange(int(round(seconds * rate))) / rate
  return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _reference_split(rel):
  """The documented rule, computed independently: sha1 of the relative path -> uniform u -> 80/10/10."""
  u = int(hashlib.sha1(rel.encode()).hexdigest()[:16], 16) / 16**16
  return "train" if u < 0.8 else ("valid" if u < 0.9 else "test")


def test_hash_split_is_stable_disjoint_and_matches_the_rule(tmp_path):
  root = tmp_path / "audio"
  names = [f"a/{i:03d}.wav" for i in range(150)] + [f"b/{i:03d}.flac" for i in range(50)]
  for n in names:
    _touch(str(root / n))
  _touch(str(root / "notes.txt"))  # not audio: ignored
  _touch(str(root / ".hidden.wav"))  # hidden: ignored
  files = sources.list_files(_data_config(dir=str(root)))
  assert set(files) == {"train", "valid", "test"}
  for split, paths in files.items():
    assert paths == sorted(paths)
    assert all(_reference_split(os.path.relpath(p, root)) == split for p in paths)
  all_files = [p for paths in files.values() for p in paths]
  assert len(all_files) == len(set(all_files)) == 200
  assert {os.path.relpath(p, root) for p in all_files} == set(names)
  assert 130 <= len(files["train"]) <= 190 and len(files["valid"]) > 5 and len(files["test"]) > 5
  # Stable: more files do not move the existing ones.
  for i in range(30):
    _touch(str(root / f"c/{i}.wav"))
  again = sources.list_files(_data_config(dir=str(root)))
  for split in files:
    assert set(files[split]) <= set(again[split])


def test_split_percentages_and_max_files(tmp_path):
  for i in range(40):
    _touch(str(tmp_path / f"{i}.wav"))
  files = sources.list_files(_data_config(dir=str(tmp_path), split="0/0/100"))
  assert (len(files["train"]), len(files["valid"]), len(files["test"])) == (0, 0, 40)
  capped = sources.list_files(_data_config(dir=str(tmp_path), split="0/0/100", max_files=7))
  assert capped["test"] == files["test"][:7]
  for bad in ("80/10", "80/10/20", "a/b/c", "-10/60/50"):
    with pytest.raises(UserError, match="data.split"):
      sources.list_files(_data_config(dir=str(tmp_path), split=bad))


def test_subfolders_define_the_split(tmp_path):
  layout = {"train": ["x/1.wav", "2.wav", "3.ogg"], "validation": ["4.wav"], "test": ["5.aiff", "6.wav"]}
  for folder, names in layout.items():
    for n in names:
      _touch(str(tmp_path / folder / n))
  _touch(str(tmp_path / "manifest.tsv"))
  _touch(str(tmp_path / "loose.wav"))  # outside the split folders: not used
  files = sources.list_files(_data_config(dir=str(tmp_path)))
  rel = {s: [os.path.relpath(p, tmp_path) for p in paths] for s, paths in files.items()}
  assert rel == {"train": ["train/2.wav", "train/3.ogg", "train/x/1.wav"], "valid": ["validation/4.wav"],
                 "test": ["test/5.aiff", "test/6.wav"]}


def test_missing_and_empty_folders_are_user_errors(tmp_path):
  missing = tmp_path / "nope"
  with pytest.raises(UserError, match=f"data folder {missing} does not exist"):
    sources.list_files(_data_config(dir=str(missing)))
  with pytest.raises(UserError, match="data.dir is empty"):
    sources.list_files(_data_config(dir=""))
  with pytest.raises(UserError, match="no audio files found"):
    sources.list_files(_data_config(dir=str(tmp_path)))
  with pytest.raises(UserError, match="unknown data.source"):
    sources.list_files(_data_config(dir=str(tmp_path), source="hdf5"))
  with pytest.raises(UserError, match="is not a MAESTRO folder"):
    _touch(str(tmp_path / "a.wav"))
    sources.list_files(_data_config(dir=str(tmp_path), source="maestro"))


_MAESTRO_ROWS = [
    ("Bach", "Prelude", "train", 2004, "2004/a.midi", "2004/a.wav", 10.0),
    ("Chopin", "Etude, Op. 10", "validation", 2006, "2006/b.midi", "2006/b.wav", 12.0),
    ("Liszt", "Sonata", "test", 2008, "2008/c.midi", "2008/c.wav", 14.0),
    ("Bach", "Fugue", "train", 2004, "2004/d.midi", "2004/d.wav", 9.0),
    ("Haydn", "Sonata", "train", 2009, "2009/missing.midi", "2009/missing.wav", 9.0),
]
_MAESTRO_COLUMNS = ("canonical_composer", "canonical_title", "split", "year", "midi_filename", "audio_filename",
                    "duration")


def _fake_maestro(root, kind):
  for row in _MAESTRO_ROWS[:4]:
    _touch(str(root / row[5]))
  if kind == "csv":
    import csv

    with open(root / "maestro-v3.0.0.csv", "w", newline="", encoding="utf-8") as f:
      writer = csv.writer(f)
      writer.writerow(_MAESTRO_COLUMNS)
      writer.writerows(_MAESTRO_ROWS)
  else:
    columns = {c: {str(i): row[j] for i, row in enumerate(_MAESTRO_ROWS)} for j, c in enumerate(_MAESTRO_COLUMNS)}
    (root / "maestro-v3.0.0.json").write_text(json.dumps(columns))


@pytest.mark.parametrize("kind", ["csv", "json"])
def test_maestro_metadata(tmp_path, kind, caplog):
  _fake_maestro(tmp_path, kind)
  with caplog.at_level(logging.WARNING):
    files = sources.list_files(_data_config(dir=str(tmp_path), source="maestro"))
  rel = {s: [os.path.relpath(p, tmp_path) for p in paths] for s, paths in files.items()}
  assert rel == {"train": ["2004/a.wav", "2004/d.wav"], "valid": ["2006/b.wav"], "test": ["2008/c.wav"]}
  assert "1 of 5 files listed in" in caplog.text
  # A folder source with MAESTRO metadata reads it too (not a hash split).
  assert sources.list_files(_data_config(dir=str(tmp_path), source="folder")) == files


def test_load_clean_resamples_to_the_config_rate(tmp_path):
  path = str(tmp_path / "sine.wav")
  sf.write(path, _sine(440, 1.0, 8000), 8000)
  audio = datasets.load_clean(path, 16000)
  assert audio.dtype == np.float32 and audio.shape == (16000,)
  reference = _sine(440, 1.0, 16000)
  middle = slice(1000, 15000)  # away from the resampler's edge transients
  assert np.max(np.abs(audio[middle] - reference[middle])) < 2e-3


def test_load_clean_mixes_stereo_to_mono(tmp_path):
  path = str(tmp_path / "stereo.flac")
  left, right = _sine(440, 0.5, 16000, 0.4), _sine(1000, 0.5, 16000, 0.2)
  sf.write(path, np.stack([left, right], axis=1), 16000, subtype="PCM_24")
  audio = datasets.load_clean(path, 16000)
  assert audio.shape == (8000,)
  np.testing.assert_allclose(audio, (left + right) / 2, atol=2**-23)  # 24-bit quantisation


def test_bad_files_are_skipped_with_one_warning_each_and_counted(tmp_path, caplog):
  good = str(tmp_path / "good.wav")
  sf.write(good, _sine(440, 0.2, 16000), 16000)
  garbage = tmp_path / "garbage.wav"
  garbage.write_bytes(b"this is not a RIFF file at all")
  zero_bytes = tmp_path / "zero.wav"
  zero_bytes.write_bytes(b"")
  empty = str(tmp_path / "empty.wav")
  sf.write(empty, np.zeros(0, np.float32), 16000)
  silent = str(tmp_path / "silent.wav")
  sf.write(silent, np.full(1600, 1e-4, np.float32), 16000, subtype="FLOAT")  # -80 dBFS
  quiet = str(tmp_path / "quiet.wav")
  sf.write(quiet, np.full(1600, 1e-2, np.float32), 16000)  # -40 dBFS: kept
  counter = datasets.SkipCounter()
  with caplog.at_level(logging.WARNING):
    results = {os.path.basename(p): datasets.load_clean(str(p), 16000, -60.0, counter)
               for p in (good, garbage, zero_bytes, empty, silent, quiet)}
  assert results["good.wav"] is not None and results["quiet.wav"] is not None
  assert all(results[n] is None for n in ("garbage.wav", "zero.wav", "empty.wav", "silent.wav"))
  skip_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipping")]
  assert len(skip_lines) == 4
  for name, reason in [("garbage.wav", "unreadable"), ("zero.wav", "unreadable"), ("empty.wav", "empty"),
                       ("silent.wav", "silent (RMS -80.0 dBFS")]:
    assert sum(name in line and reason in line for line in skip_lines) == 1, (name, skip_lines)
  assert counter.summary() == "skipped 4 of 6 files: 2 unreadable, 1 empty, 1 silent"
  assert datasets.SkipCounter(seen=3).summary() == "read all 3 files"


def test_file_key_and_identity(tmp_path):
  path = tmp_path / "sub" / "a.wav"
  _touch(str(path))
  assert datasets.file_key(str(path), str(tmp_path)) == "sub/a.wav"
  assert datasets.file_key("tfds:/x/y/1.0.0::valid/0000003", "/x/y/1.0.0") == "valid/0000003"
  before = datasets.file_identity(str(path))
  path.write_bytes(b"1234")
  assert datasets.file_identity(str(path)) != before


def test_corpus_source_builds_the_default_corpus_on_first_use(tmp_path, monkeypatch):
  from sr_jax.data import corpus

  monkeypatch.setenv("SR_JAX_DATA", str(tmp_path / "home"))
  calls = []

  def fake_ensure(out_dir, minutes, rate, renderer, soundfont, seed):
    calls.append((out_dir, minutes, rate, renderer, soundfont, seed))
    corpus.build_tiny_corpus(out_dir, rate=rate, seconds_per_file=0.2, files_per_split=(3, 1, 2))
    return out_dir

  monkeypatch.setattr(corpus, "ensure_corpus", fake_ensure)
  c = _data_config(source="corpus", dir="", corpus_minutes=2.0, rate=8000)
  files = sources.list_files(c)
  expected_dir = corpus.default_corpus_dir("synth", 8000)
  assert expected_dir.startswith(str(tmp_path / "home"))
  assert calls == [(expected_dir, 2.0, 8000, "synth", "", 0)]
  assert [len(files[s]) for s in datasets.SPLITS] == [3, 1, 2]
  assert all(p.startswith(os.path.join(expected_dir, s) + os.sep) for s in datasets.SPLITS for p in files[s])
  assert sources.data_root(c) == expected_dir


def test_corpus_source_uses_a_tiny_corpus_as_it_is(tmp_path, monkeypatch):
  from sr_jax.data import corpus

  corpus.build_tiny_corpus(str(tmp_path / "tiny"), seconds_per_file=0.2)
  monkeypatch.setattr(corpus, "ensure_corpus", lambda *a, **k: pytest.fail("must not rebuild a tiny corpus"))
  files = sources.list_files(_data_config(source="corpus", dir=str(tmp_path / "tiny")))
  assert [len(files[s]) for s in datasets.SPLITS] == [6, 2, 2]
  assert all(datasets.load_clean(p, 16000) is not None for p in files["valid"])
