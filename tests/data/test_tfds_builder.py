"""Tests of sr_jax.data.tfds_builder: prepare an audio folder as a TFDS dataset and read it back, no TensorFlow."""

from __future__ import annotations

import importlib.util
import os
import re
import sys

import numpy as np
import pytest
import soundfile as sf

from configs.default import get_config
from sr_jax.data import datasets, sources, tfds_builder
from sr_jax.errors import UserError

RATE = 16000


@pytest.fixture(scope="module")
def audio_folder(tmp_path_factory):
  """6 short files (train 4, valid 1, test 1): mixed rates, one stereo, plus one silent file to skip."""
  root = tmp_path_factory.mktemp("tfds_audio")
  rng = np.random.default_rng(0)
  specs = [("train/a.wav", 16000, 1), ("train/b.wav", 8000, 1), ("train/c.flac", 22050, 2),
           ("train/d.wav", 16000, 1), ("valid/e.wav", 16000, 1), ("test/f.wav", 44100, 1)]
  for name, rate, channels in specs:
    os.makedirs(root / os.path.dirname(name), exist_ok=True)
    x = 0.2 * rng.standard_normal((int(0.25 * rate), channels)).astype(np.float32)
    sf.write(str(root / name), x, rate, subtype="FLOAT" if name.endswith(".wav") else "PCM_24")
  sf.write(str(root / "train/silent.wav"), np.zeros(800, np.float32), 16000)
  return str(root)


def test_prepare_and_read_back_without_tensorflow(audio_folder, tmp_path):
  data_dir = str(tmp_path / "tfds")
  builder = tfds_builder.prepare(audio_folder, RATE, data_dir)
  assert builder.is_prepared() and os.fspath(builder.data_dir).startswith(data_dir)
  assert builder.info.file_format.value == "array_record"
  counts = {s: builder.info.splits[s].num_examples for s in ("train", "valid", "test")}
  assert counts == {"train": 4, "valid": 1, "test": 1}  # the silent file is skipped
  for split in counts:
    source = builder.as_data_source(split=split)
    assert len(source) == counts[split]
    for i in range(len(source)):
      example = source[i]
      name = example["name"].decode() if isinstance(example["name"], bytes) else example["name"]
      expected = datasets.load_clean(os.path.join(audio_folder, name), RATE)
      assert example["audio"].dtype == np.float32 and int(example["rate"]) == RATE
      np.testing.assert_array_equal(example["audio"], expected)
  names = [builder.as_data_source(split="train")[i]["name"] for i in range(4)]
  assert [n.decode() if isinstance(n, bytes) else n for n in names] == [
      "train/a.wav", "train/b.wav", "train/c.flac", "train/d.wav"]
  assert "tensorflow" not in sys.modules
  assert importlib.util.find_spec("tensorflow") is None
  # Prepared once: a second prepare just opens it (same folder, no new version folder).
  again = tfds_builder.prepare(audio_folder, RATE, data_dir)
  assert os.fspath(again.data_dir) == os.fspath(builder.data_dir)
  assert len(os.listdir(os.path.dirname(os.fspath(builder.data_dir)))) == 1


def test_config_names_tell_folders_and_rates_apart(audio_folder):
  a = tfds_builder.config_name(audio_folder, 16000)
  assert re.fullmatch(r"tfds_audio\d*_16000hz_[0-9a-f]{8}", a), a
  assert a == tfds_builder.config_name(audio_folder + "/", 16000)
  assert a != tfds_builder.config_name(audio_folder, 8000)
  assert a != tfds_builder.config_name(audio_folder + "_copy", 16000)


def test_tfds_source_lists_entries_that_read_checked_reads(audio_folder, tmp_path):
  c = get_config().data
  c.source, c.dir, c.tfds_data_dir, c.rate = "tfds", audio_folder, str(tmp_path / "tfds"), RATE
  files = sources.list_files(c)
  assert [len(files[s]) for s in ("train", "valid", "test")] == [4, 1, 1]
  root = sources.data_root(c)
  assert [datasets.file_key(f, root) for f in files["train"]] == [f"train/{i:07d}" for i in range(4)]
  audio = datasets.load_clean(files["test"][0], RATE, reader=sources.read_checked)
  np.testing.assert_array_equal(audio, datasets.load_clean(os.path.join(audio_folder, "test/f.wav"), RATE))
  # Read at another rate: resampled from the prepared 16 kHz.
  assert sources.read_checked(files["test"][0], 8000)[0].shape == (len(audio) // 2,)
  # An already prepared dataset can be named instead of the folder.
  c2 = get_config().data
  c2.source, c2.tfds_data_dir = "tfds", c.tfds_data_dir
  c2.tfds_name = f"{tfds_builder.BUILDER_NAME}/{tfds_builder.config_name(audio_folder, RATE)}"
  assert sources.list_files(c2) == files
  c2.tfds_name = "not_prepared_here"
  with pytest.raises(UserError, match="no prepared TFDS dataset 'not_prepared_here'"):
    sources.list_files(c2)
  assert "tensorflow" not in sys.modules


def test_missing_folder_is_a_user_error(tmp_path):
  with pytest.raises(UserError, match="does not exist"):
    tfds_builder.prepare(str(tmp_path / "missing"), RATE, str(tmp_path / "tfds"))
