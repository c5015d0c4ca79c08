"""Tests of sr_jax.data.sources for data.source = "packaged": a corpus of packaged recordings built on first use
(from generated fixture packages, the way tests/data/test_packaged.py makes them), reused afterwards, trained and
evaluated on; clear errors for a folder built otherwise and for missing packages."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
import soundfile as sf

from configs.default import get_config
from sr_jax.data import corpus, datasets, packaged, pipeline, sources
from sr_jax.errors import UserError

RATE = 16000


def _bursts(rng, seconds, rate):
  """Broadband bursts (white noise, 1.5-2.5 s, so the band reaches Nyquist) between 0.6 s of near silence."""
  out = np.zeros(int(seconds * rate), np.float32)
  t = 0.2
  while t < seconds - 1.6:
    n = int(min(rng.uniform(1.5, 2.5), seconds - t - 0.1) * rate)
    out[int(t * rate):int(t * rate) + n] = 0.2 * rng.standard_normal(n)
    t += n / rate + 0.6
  return out + np.float32(1e-5) * rng.standard_normal(len(out)).astype(np.float32)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
  """Two training speakers (one workspace of prompt names) and a held-out test speaker, as 'apt' packages."""
  root = str(tmp_path_factory.mktemp("packages"))
  rng = np.random.default_rng(0)
  for folder, ext, count in (("a", "wav", 8), ("b", "flac", 8), ("h", "wav", 3)):
    os.makedirs(os.path.join(root, folder))
    for i in range(count):
      sf.write(os.path.join(root, folder, f"prompt{i}.{ext}"), _bursts(rng, 5.0, 22050), 22050)
  src = packaged.Source
  return (
      src("spk-a", "speech", "apt:fake-voice-a", os.path.join(root, "a"), ("*.wav",), family="A", licence="CC0",
          workspace="prompts"),
      src("spk-b", "speech", "apt:fake-voice-b", os.path.join(root, "b"), ("*.flac",), family="B", licence="MIT",
          workspace="prompts"),
      src("spk-h", "speech", "apt:fake-voice-h", os.path.join(root, "h"), ("*.wav",), family="H", role="test",
          licence="GPL-2"),
  )


@pytest.fixture
def installed(registry, monkeypatch, tmp_path):
  """The source builds from the fixture packages (serially, quietly); the default folders lie under tmp_path."""
  monkeypatch.setattr(datasets, "PACKAGED_OPTIONS", dict(registry=registry, workers=1, progress=False))
  monkeypatch.setenv("SR_JAX_DATA", str(tmp_path / "data"))
  return registry


def _data_config(**overrides):
  c = get_config().data
  c.source, c.packaged_kind, c.packaged_minutes, c.rate = "packaged", "speech", -1.0, RATE
  for k, v in overrides.items():
    c[k] = v
  return c


def _manifest_splits(folder):
  """{split: sorted absolute paths} as manifest.tsv lists them (read here, not through datasets)."""
  out = {s: [] for s in datasets.SPLITS}
  with open(os.path.join(folder, "manifest.tsv"), encoding="utf-8") as f:
    header, *lines = f.read().splitlines()
  columns = header.split("\t")
  for line in lines:
    row = dict(zip(columns, line.split("\t")))
    out[row["split"]].append(os.path.join(folder, row["split"], row["segment"] + ".wav"))
  return {s: sorted(v) for s, v in out.items()}


def _build(registry, folder, **kwargs):
  return packaged.build_packaged_corpus("speech", str(folder), rate=RATE, minutes=None, registry=registry,
                                        workers=1, progress=False, **kwargs)


def test_packaged_source_is_built_on_first_use_then_reused(installed, tmp_path, monkeypatch):
  c = _data_config()
  files = sources.list_files(c)
  folder = str(tmp_path / "data" / "corpora" / "packaged-speech-16000")
  assert sources.data_root(c) == folder
  assert files == _manifest_splits(folder) and all(files.values())
  for path in files["train"] + files["valid"]:
    info = sf.info(path)
    assert info.samplerate == RATE and info.channels == 1
  rows = packaged.read_manifest(folder)
  assert {r["family"] for r in rows if r["split"] == "train"} == {"A", "B"}  # the held-out speaker never trains
  assert {r["family"] for r in rows if r["split"] == "test"} >= {"H"}
  # Reused: nothing is decoded again, the same files come back.
  monkeypatch.setattr(packaged, "_segment_job", lambda job: pytest.fail("a built corpus must not be decoded again"))
  assert sources.list_files(c) == files
  # data.max_files caps each split as for every source.
  assert sources.list_files(_data_config(max_files=2)) == {s: v[:2] for s, v in files.items()}
  # Another seed: another default folder.
  assert datasets.packaged_dir(_data_config(corpus_seed=2)).endswith(os.sep + "packaged-speech-s2-16000")


def test_packaged_minutes_bound_the_build(installed, tmp_path):
  """packaged_minutes is the builder's `minutes`: a quota of 80/10/10 (a split overshoots by one file at most)."""
  c = _data_config(packaged_minutes=0.2, dir=str(tmp_path / "small"))
  files = sources.list_files(c)
  seconds = {s: sum(sf.info(p).duration for p in v) for s, v in files.items()}
  assert 0.8 * 0.2 * 60 <= seconds["train"] <= 0.8 * 0.2 * 60 + 5.0 * 3
  full = sources.list_files(_data_config(dir=str(tmp_path / "full")))
  assert len(full["train"]) > len(files["train"])


def test_train_and_evaluate_on_a_packaged_corpus(installed, tmp_path):
  """End to end: training batches and validation batches come from the built corpus's train and valid files."""
  config = get_config()
  config.data = _data_config(dir=str(tmp_path / "corpus"), chain="sample 4000 16000", window=512, stride=512,
                             eval_stride=512, workers=0, copies=2)
  config.train.batch_size = 4
  files = sources.list_files(config.data)
  it = pipeline.train_iterator(config, str(tmp_path / "run"), 0, 1)
  batch = next(it)
  assert batch["input"].shape == (4, 512, 1) and np.abs(batch["target"]).max() > 0
  cached = sorted(os.listdir(tmp_path / "run" / "data_cache" / "pairs"))
  assert len([n for n in cached if n.endswith(".npy")]) == 2 * len(files["train"])  # two copies of each
  ev = pipeline.eval_batches(config, "valid", str(tmp_path / "run"), 0, 1, batch_size=4)
  windows = sum(-(-sf.info(p).frames // 512) for p in files["valid"])
  assert sum(int(b["mask"].sum()) for b in ev) == windows


def test_a_built_folder_is_used_without_the_packages(registry, tmp_path, monkeypatch):
  """data.dir at a corpus built elsewhere: used as it is when none of its packages is installed here."""
  _build(registry, tmp_path / "built")
  gone = tuple(dataclasses.replace(s, root=str(tmp_path / "nowhere")) for s in registry)
  monkeypatch.setattr(datasets, "PACKAGED_OPTIONS", dict(registry=gone, workers=1, progress=False))
  monkeypatch.setattr(packaged, "build_packaged_corpus", lambda *a, **k: pytest.fail("nothing to build from"))
  c = _data_config(dir=str(tmp_path / "built"))
  assert sources.list_files(c) == _manifest_splits(str(tmp_path / "built"))
  with pytest.raises(UserError, match=r"built with seed=0, not seed=3 .*data.corpus_seed"):
    sources.list_files(_data_config(dir=str(tmp_path / "built"), corpus_seed=3))
  with pytest.raises(UserError, match=r"built with rate=16000, not rate=8000"):
    sources.list_files(_data_config(dir=str(tmp_path / "built"), rate=8000, chain=""))
  with pytest.raises(UserError, match=r"kind='packaged-speech', not kind='packaged-music'"):
    sources.list_files(_data_config(dir=str(tmp_path / "built"), packaged_kind="music"))


def test_a_folder_built_from_other_sources_is_one_clear_error(installed, tmp_path):
  _build(installed[:2], tmp_path / "two")
  with pytest.raises(UserError, match=r"built from other installed sources \(now installed: spk-h\): set data.dir"):
    sources.list_files(_data_config(dir=str(tmp_path / "two")))
  corpus.build_tiny_corpus(str(tmp_path / "tiny"), seconds_per_file=0.2)
  with pytest.raises(UserError, match=r"built with kind='tiny'"):
    sources.list_files(_data_config(dir=str(tmp_path / "tiny")))


def test_no_installed_package_names_what_to_install(registry, tmp_path, monkeypatch):
  gone = tuple(dataclasses.replace(s, root=str(tmp_path / "nowhere")) for s in registry)
  monkeypatch.setattr(datasets, "PACKAGED_OPTIONS", dict(registry=gone, workers=1, progress=False))
  monkeypatch.setenv("SR_JAX_DATA", str(tmp_path / "data"))
  with pytest.raises(UserError, match=r"no speech training recordings installed.*sudo apt-get install "
                     r"fake-voice-a fake-voice-b$") as e:
    sources.list_files(_data_config())
  assert "\n" not in str(e.value) and "fake-voice-h" not in str(e.value)  # the held-out package does not help
  # The real registry knows the packages of each kind.
  monkeypatch.setattr(datasets, "PACKAGED_OPTIONS", dict(roots={s.name: str(tmp_path / "nowhere")
                                                                for s in packaged.REGISTRY}))
  with pytest.raises(UserError, match=r"apt-get install .*fretsonfire-songs-muldjord.*wesnoth-1.16-music"):
    sources.list_files(_data_config(packaged_kind="music"))


@pytest.mark.parametrize("overrides, message", [
    (dict(packaged_kind="noise"), "data.packaged_kind 'noise' must be one of music, speech"),
    (dict(packaged_minutes=0.0), "data.packaged_minutes must be > 0, or -1"),
    (dict(packaged_minutes=-5.0), "data.packaged_minutes must be > 0, or -1"),
    (dict(source="packages"), "unknown data.source 'packages': use one of .*packaged"),
])
def test_bad_packaged_settings(installed, overrides, message):
  with pytest.raises(UserError, match=message):
    sources.list_files(_data_config(**overrides))
