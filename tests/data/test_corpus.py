"""Tests for sr_jax.data.corpus: work groups, splits, the tiny corpus, the music21 corpus build, stamps."""

import filecmp
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from sr_jax.data import corpus, piano
from sr_jax.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLUIDSYNTH = shutil.which("fluidsynth") is not None and os.path.isfile(piano.DEFAULT_SOUNDFONT)


def _files(folder):
  return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)


def _same_bytes(a, b):
  assert _files(a) == _files(b)
  for f in _files(a):
    assert filecmp.cmp(os.path.join(a, f), os.path.join(b, f), shallow=False), f


def _check_layout(out, rate):
  """Manifest rows match the files; returns the rows."""
  rows = corpus.read_manifest(out)
  assert rows and all(tuple(r) == corpus.MANIFEST_COLUMNS for r in rows)
  wavs = {f for f in _files(out) if f.endswith(".wav")}
  assert wavs == {f"{r['split']}/{r['piece']}.wav" for r in rows}
  for r in rows:
    info = sf.info(os.path.join(out, r["split"], r["piece"] + ".wav"))
    assert info.samplerate == rate and info.channels == 1 and info.subtype == "PCM_16"
    assert float(r["seconds"]) == pytest.approx(info.frames / rate, abs=1e-3)
  return rows


def _splits_of_works(rows):
  splits = {}
  for r in rows:
    splits.setdefault(r["work"], set()).add(r["split"])
  return splits


@pytest.mark.parametrize("rel,work", [
    ("bach/bwv248.12-2.mxl", "bach/bwv248"), ("bach/bwv1.6.mxl", "bach/bwv1"), ("bach/bwv381.mxl", "bach/bwv381"),
    ("mozart/k80/movement1.mxl", "mozart/k80"), ("palestrina/Credo_47_c.krn", "palestrina/mass47"),
    ("palestrina/Kyrie_47.krn", "palestrina/mass47"), ("monteverdi/madrigal.3.10.mxl", "monteverdi/madrigal.3"),
    ("chopin/mazurka06-2.krn", "chopin/mazurka06"), ("schumann_clara/polonaise_op1n2.mxl", "schumann_clara/polonaise_op1"),
    ("trecento/PMFC_24_8-Gloria Ciconia 8.xml", "trecento/PMFC_24_8-Gloria Ciconia"), ("verdi/laDonnaEMobile.mxl",
                                                                                       "verdi/laDonnaEMobile")])
def test_work_group(rel, work):
  assert corpus.work_group(rel) == work


def test_assign_splits_hash_proportions_and_every_split_filled():
  works = [f"composer/opus{i}" for i in range(400)]
  a = corpus.assign_splits(works)
  assert a == corpus.assign_splits(reversed(works))
  share = {s: sum(v == s for v in a.values()) / len(works) for s in corpus.SPLITS}
  assert 0.74 < share["train"] < 0.86 and 0.05 < share["valid"] < 0.15 and 0.05 < share["test"] < 0.15
  for trio in (["a", "b", "c"], ["x/1", "x/2", "x/3"]):
    assert sorted(corpus.assign_splits(trio).values()) == sorted(corpus.SPLITS)


def test_default_corpus_dir(monkeypatch):
  monkeypatch.setenv("SR_JAX_DATA", "/data/x")
  assert corpus.default_corpus_dir("fluidsynth", 8000) == "/data/x/corpora/piano-fluidsynth-8000"
  monkeypatch.delenv("SR_JAX_DATA")
  assert corpus.default_corpus_dir() == os.path.expanduser("~/.cache/sr_jax/corpora/piano-synth-16000")


def test_tiny_corpus_layout_determinism_and_incremental(tmp_path):
  a, b = str(tmp_path / "a"), str(tmp_path / "b")
  s = corpus.build_tiny_corpus(a, rate=8000, seconds_per_file=2.0, files_per_split=(3, 2, 1), seed=5)
  assert s["pieces"] == {"train": 3, "valid": 2, "test": 1} and s["rendered"] == 6 and s["skipped"] == 0
  assert s["minutes"]["train"] == pytest.approx(3 * 2.0 / 60)
  rows = _check_layout(a, 8000)
  assert all(float(r["seconds"]) == 2.0 for r in rows)
  assert all(len(v) == 1 for v in _splits_of_works(rows).values())
  x, _ = sf.read(os.path.join(a, "train", rows[0]["piece"] + ".wav"))
  assert 20 * np.log10(np.abs(x).max()) == pytest.approx(-1.0, abs=0.01) and np.std(x) > 0.01
  corpus.build_tiny_corpus(b, rate=8000, seconds_per_file=2.0, files_per_split=(3, 2, 1), seed=5)
  _same_bytes(a, b)
  mtimes = {f: os.stat(os.path.join(a, f)).st_mtime_ns for f in _files(a) if f.endswith(".wav")}
  again = corpus.build_tiny_corpus(a, rate=8000, seconds_per_file=2.0, files_per_split=(3, 2, 1), seed=5)
  assert again["rendered"] == 0 and again["skipped"] == 6
  assert mtimes == {f: os.stat(os.path.join(a, f)).st_mtime_ns for f in mtimes}
  os.remove(os.path.join(a, "valid", "tiny-valid-001.wav"))
  assert corpus.build_tiny_corpus(a, rate=8000, seconds_per_file=2.0, files_per_split=(3, 2, 1), seed=5)["rendered"] == 1
  _same_bytes(a, b)
  c = str(tmp_path / "c")
  corpus.build_tiny_corpus(c, rate=8000, seconds_per_file=2.0, files_per_split=(3, 2, 1), seed=6)
  assert not filecmp.cmp(os.path.join(a, "test", "tiny-test-000.wav"), os.path.join(c, "test", "tiny-test-000.wav"),
                         shallow=False)


def test_stamp_mismatch_and_foreign_folders_are_user_errors(tmp_path):
  out = str(tmp_path / "c")
  corpus.build_tiny_corpus(out, rate=8000, seconds_per_file=1.0, files_per_split=(1, 1, 1))
  before = {f: open(os.path.join(out, f), "rb").read() for f in _files(out)}
  with pytest.raises(UserError, match=r"rate=8000.*not rate=16000.*choose another folder"):
    corpus.build_tiny_corpus(out, rate=16000, seconds_per_file=1.0, files_per_split=(1, 1, 1))
  with pytest.raises(UserError, match="kind='tiny'.*choose another folder"):
    corpus.build_corpus(out, minutes=0.1, rate=8000)
  assert before == {f: open(os.path.join(out, f), "rb").read() for f in _files(out)}
  foreign = tmp_path / "mine"
  foreign.mkdir()
  (foreign / "notes.txt").write_text("keep me")
  with pytest.raises(UserError, match="not an sr_jax corpus folder"):
    corpus.build_tiny_corpus(str(foreign))
  assert _files(str(foreign)) == ["notes.txt"]


@pytest.mark.parametrize("kwargs,match", [
    (dict(minutes=0), "minutes must be > 0"), (dict(rate=5), "out of range"),
    (dict(renderer="organ"), "unknown renderer"), (dict(soundfont="x.sf2"), "only used with renderer=fluidsynth"),
    (dict(renderer="fluidsynth", soundfont="/no/such.sf2"), "apt-get install fluidsynth fluid-soundfont-gm"),
    (dict(workers=0), "workers must be >= 1")])
def test_build_corpus_bad_arguments(tmp_path, kwargs, match):
  with pytest.raises(UserError, match=match):
    corpus.build_corpus(str(tmp_path / "c"), **kwargs)
  assert not (tmp_path / "c").exists()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  """A 0.3-minute music21 corpus built with one worker (in-process)."""
  out = str(tmp_path_factory.mktemp("m21") / "corpus")
  return out, corpus.build_corpus(out, minutes=0.3, rate=8000, workers=1, progress=False)


def test_build_corpus_small(built):
  out, s = built
  rows = _check_layout(out, 8000)
  assert s["rendered"] == len(rows) and s["failed"] == 0
  assert all(s["pieces"][k] >= 1 for k in corpus.SPLITS)
  quota = {k: 0.3 * p / 100 for k, p in zip(corpus.SPLITS, corpus.SPLIT_PERCENT)}
  for k in corpus.SPLITS:  # each split reaches its share, overshooting by at most its last piece
    secs = [float(r["seconds"]) for r in rows if r["split"] == k]
    assert sum(secs) / 60 >= quota[k] and sum(secs[:-1]) / 60 < quota[k]
    assert max(secs) <= piano.MAX_PIECE_SECONDS + 1.0
  works = _splits_of_works(rows)
  assert all(len(v) == 1 for v in works.values())
  everything = corpus.assign_splits(corpus.work_group(rel) for rel, _ in corpus.corpus_files())
  assert all(everything[w] == next(iter(v)) for w, v in works.items())
  assert all(r["source"].split("/")[0] not in corpus.FOLK + corpus.SKIP_DIRS for r in rows)
  assert all(os.path.splitext(r["source"])[1] in corpus.FORMATS for r in rows)


def test_build_corpus_rerun_does_nothing_and_workers_do_not_change_bytes(built, tmp_path):
  out, _ = built
  mtimes = {f: os.stat(os.path.join(out, f)).st_mtime_ns for f in _files(out)}
  again = corpus.build_corpus(out, minutes=0.3, rate=8000, workers=1, progress=False)
  assert again["rendered"] == 0 and again["skipped"] == sum(again["pieces"].values())
  assert again["seconds_taken"] < 1.0
  assert mtimes == {f: os.stat(os.path.join(out, f)).st_mtime_ns for f in _files(out)}
  assert corpus.ensure_corpus(out, minutes=0.3, rate=8000, workers=1, progress=False) == out
  parallel = str(tmp_path / "parallel")
  corpus.build_corpus(parallel, minutes=0.3, rate=8000, workers=2, progress=False)
  _same_bytes(out, parallel)


def test_build_corpus_completes_missing_files(built, tmp_path):
  out, _ = built
  copy = str(tmp_path / "copy")
  shutil.copytree(out, copy)
  victim = corpus.read_manifest(copy)[0]
  os.remove(os.path.join(copy, victim["split"], victim["piece"] + ".wav"))
  s = corpus.build_corpus(copy, minutes=0.3, rate=8000, workers=1, progress=False)
  assert s["rendered"] == 1
  _same_bytes(out, copy)


def test_build_only_the_test_split_then_the_rest(built, tmp_path):
  out, _ = built
  full = {r["piece"]: r for r in corpus.read_manifest(out)}
  only = str(tmp_path / "only_test")
  s = corpus.build_corpus(only, minutes=0.3, rate=8000, workers=1, progress=False, splits="test")
  rows = _check_layout(only, 8000)
  assert {r["split"] for r in rows} == {"test"} and s["pieces"]["train"] == s["pieces"]["valid"] == 0
  assert s["rendered"] == len(rows) == sum(r["split"] == "test" for r in full.values())
  for r in rows:  # the test split of the full build, piece for piece and byte for byte
    assert r == full[r["piece"]]
    assert filecmp.cmp(os.path.join(only, "test", r["piece"] + ".wav"), os.path.join(out, "test", r["piece"] + ".wav"),
                       shallow=False)
  again = corpus.build_corpus(only, minutes=0.3, rate=8000, workers=1, progress=False, splits=["test"])
  assert again["rendered"] == 0 and again["seconds_taken"] < 1.0
  # all splits now: only train and valid are rendered, and the folder equals the full build
  rest = corpus.build_corpus(only, minutes=0.3, rate=8000, workers=1, progress=False)
  assert rest["rendered"] == len(full) - len(rows) and rest["skipped"] == len(rows)
  _same_bytes(out, only)


@pytest.mark.parametrize("splits", ["", "tests", "train,dev", []])
def test_bad_splits(splits, tmp_path):
  with pytest.raises(UserError, match="splits must be some of train, valid, test"):
    corpus.build_corpus(str(tmp_path / "c"), minutes=0.3, rate=8000, workers=1, progress=False, splits=splits)
  assert not (tmp_path / "c").exists()
  assert corpus.check_splits("test, train") == ("train", "test")


def test_make_corpus_cli(built):
  out, _ = built
  ok = subprocess.run([sys.executable, "launch/make_corpus.py", f"--out={out}", "--minutes=0.3", "--rate=8000",
                       "--workers=1"], cwd=REPO, capture_output=True, text=True, timeout=60)
  assert ok.returncode == 0, ok.stderr
  assert "minutes per split: train" in ok.stdout and "0 pieces rendered" in ok.stdout
  bad = subprocess.run([sys.executable, "launch/make_corpus.py", f"--out={out}", "--rate=16000"], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
  assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr
  bad = subprocess.run([sys.executable, "launch/make_corpus.py", f"--out={out}", "--splits=tests"], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
  assert bad.returncode == 2 and "splits must be some of" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.skipif(not FLUIDSYNTH, reason="needs Debian's fluidsynth and fluid-soundfont-gm "
                    "(apt-get install fluidsynth fluid-soundfont-gm)")
def test_build_corpus_fluidsynth(tmp_path):
  out = str(tmp_path / "fs")
  s = corpus.build_corpus(out, minutes=0.1, rate=8000, renderer="fluidsynth", workers=1, progress=False)
  rows = _check_layout(out, 8000)
  assert {r["renderer"] for r in rows} == {"fluidsynth"} and all(s["pieces"][k] >= 1 for k in corpus.SPLITS)


def test_soundfont_list_and_default_folder(monkeypatch, tmp_path):
  assert corpus.soundfont_list(None) == [] and corpus.soundfont_list(" ") == []
  assert corpus.soundfont_list("a.sf2") == ["a.sf2"]
  assert corpus.soundfont_list(" a.sf2, /x/b.sf3 ") == ["a.sf2", "/x/b.sf3"]
  assert corpus.soundfont_list(("a.sf2", "b.sf2")) == ["a.sf2", "b.sf2"]
  with pytest.raises(UserError, match="has an empty item"):
    corpus.soundfont_list("a.sf2,,b.sf2")
  monkeypatch.setenv("SR_JAX_DATA", str(tmp_path))
  base = os.path.join(str(tmp_path), "corpora")
  assert corpus.default_corpus_dir("fluidsynth", 16000) == os.path.join(base, "piano-fluidsynth-16000")
  assert corpus.default_corpus_dir("fluidsynth", 16000, "/x/One.sf2") == os.path.join(base, "piano-fluidsynth-16000")
  assert (corpus.default_corpus_dir("fluidsynth", 8000, "/x/One.sf2,/y/Two.sf3")
          == os.path.join(base, "piano-fluidsynth-One+Two-8000"))


def _fake_fluidsynth(monkeypatch, tmp_path):
  """Two soundfont files and a renderer that records which soundfont rendered what (no fluidsynth needed)."""
  fonts = []
  for name in ("A.sf2", "B.sf3"):
    (tmp_path / name).write_bytes(b"not really a soundfont")
    fonts.append(str(tmp_path / name))
  monkeypatch.setattr(piano, "find_soundfont", lambda f=None: os.path.abspath(f or fonts[0]))
  used = []

  def render(notes, rate, renderer, soundfont, seed):
    used.append(soundfont)
    return 0.5 * np.sin(np.arange(int(rate * 2.0)) * 0.05).astype(np.float32) * (1 + fonts.index(soundfont))

  monkeypatch.setattr(piano, "render", render)
  return fonts, used


def test_build_corpus_several_soundfonts_take_turns(monkeypatch, tmp_path):
  fonts, used = _fake_fluidsynth(monkeypatch, tmp_path)
  out = str(tmp_path / "mixed")
  s = corpus.build_corpus(out, minutes=0.5, rate=8000, renderer="fluidsynth", soundfont=",".join(fonts),
                          workers=1, progress=False)
  rows = _check_layout(out, 8000)
  assert s["failed"] == 0 and len(used) == len(rows)
  for split in corpus.SPLITS:  # in each split's pick order the soundfonts alternate, starting with the first
    names = [r["soundfont"] for r in rows if r["split"] == split]
    assert names == [("A.sf2", "B.sf3")[i % 2] for i in range(len(names))], (split, names)
  assert {r["soundfont"] for r in rows if r["split"] == "train"} == {"A.sf2", "B.sf3"}
  for r in rows:  # the file really was rendered by the soundfont the manifest names (amplitude 0.5 or 1.0)
    audio, _ = sf.read(os.path.join(out, r["split"], r["piece"] + ".wav"))
    assert np.max(np.abs(audio)) == pytest.approx(0.5 if r["soundfont"] == "A.sf2" else 1.0, abs=1e-3)
  with open(os.path.join(out, corpus.STATE_FILE), encoding="utf-8") as f:
    assert json.load(f)["stamp"]["soundfont"] == fonts
  again = corpus.build_corpus(out, minutes=0.5, rate=8000, renderer="fluidsynth", soundfont=fonts, workers=1,
                              progress=False)
  assert again["rendered"] == 0
  with pytest.raises(UserError, match="holds a corpus built with soundfont="):
    corpus.build_corpus(out, minutes=0.5, rate=8000, renderer="fluidsynth", soundfont=fonts[0], workers=1,
                        progress=False)


def test_build_corpus_soundfont_list_errors(monkeypatch, tmp_path):
  fonts, _ = _fake_fluidsynth(monkeypatch, tmp_path)
  with pytest.raises(UserError, match="names the same soundfont twice"):
    corpus.build_corpus(str(tmp_path / "c"), renderer="fluidsynth", soundfont=f"{fonts[0]},{fonts[0]}")
  with pytest.raises(UserError, match="has an empty item"):
    corpus.build_corpus(str(tmp_path / "c"), renderer="fluidsynth", soundfont=f"{fonts[0]},")
  with pytest.raises(UserError, match="only used with renderer=fluidsynth"):
    corpus.build_corpus(str(tmp_path / "c"), soundfont=",".join(fonts))
  assert not (tmp_path / "c").exists()
