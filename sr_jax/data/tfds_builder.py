"""A TFDS builder for audio folders: prepared corpora live in the TFDS catalog and data dir, no TensorFlow.

`SrJaxAudio` (registered as "sr_jax_audio") is a `tfds.core.GeneratorBasedBuilder` writing ArrayRecord files.
Its config (`AudioFolderConfig`) points at an audio folder (any layout `datasets.folder_splits` reads: train/
valid/test subfolders, MAESTRO metadata, or a plain folder split by hash) and a sample rate; every usable file
becomes one example {"audio": float32 (frames,) mono at that rate, "name": path relative to the folder,
"rate": int32}; unreadable, empty and silent files are skipped (one warning each, one summary line).

Features are `tfds.features.Tensor` and `Text`/`Scalar` only: `tfds.features.Audio` needs TensorFlow, which
sr_jax does not install. Reading is random access through `builder.as_data_source(split)` (ArrayRecord), also
without TensorFlow. Example:

  builder = prepare("/data/piano", rate=16000, data_dir="/data/tfds")   # generates once, then just opens
  source = builder.as_data_source(split="train"); source[0]["audio"]

With `config.data.source = "tfds"`, `list_entries(config.data)` prepares `config.data.dir` (or the built-in
corpus if empty) into `config.data.tfds_data_dir` (or TFDS's default data dir) and lists its examples as
entries "tfds:<builder dir>::<split>/<index>", which `sources.read_checked` reads through `read_entry`.
`config.data.tfds_name` may also name an already prepared dataset "name" or "name/config" in the data dir.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import os
import re

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from etils import epath

from sr_jax.data import audio as audio_lib
from sr_jax.data import datasets
from sr_jax.errors import UserError

BUILDER_NAME = "sr_jax_audio"
_SOURCES: dict[tuple[str, str], object] = {}  # (builder dir, split) -> data source, per process


@dataclasses.dataclass
class AudioFolderConfig(tfds.core.BuilderConfig):
  """Which folder to prepare, at which rate; `split` is used for folders without split subfolders."""

  folder: str = ""
  rate: int = 16000
  split: str = "80/10/10"
  silence_db: float = -60.0


class SrJaxAudio(tfds.core.GeneratorBasedBuilder):
  """Clean mono audio from a folder, one example per file, splits train/valid/test."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Mono float32 audio, one example per file."}

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    # TFDS 4.9.10's default looks the package up with `importlib_resources`, a package it does not declare
    # (and that is not installed here); the answer is just this file.
    return epath.Path(__file__)

  def _info(self) -> tfds.core.DatasetInfo:
    cfg = self.builder_config
    return tfds.core.DatasetInfo(
        builder=self,
        description=f"Audio from {getattr(cfg, 'folder', '?')} at {getattr(cfg, 'rate', '?')} Hz, mono float32.",
        features=tfds.features.FeaturesDict({
            "audio": tfds.features.Tensor(shape=(None,), dtype=np.float32),
            "name": tfds.features.Text(),
            "rate": tfds.features.Scalar(dtype=np.int32),
        }),
        disable_shuffling=True,  # examples keep the sorted file order
    )

  def _split_generators(self, dl_manager):
    del dl_manager
    cfg = self.builder_config
    files = datasets.folder_splits(cfg.folder, cfg.split)
    return {split: self._generate_examples(files[split], split) for split in datasets.SPLITS if files[split]}

  def _generate_examples(self, paths: list[str], split: str = ""):
    cfg = self.builder_config
    counter = datasets.SkipCounter()
    for path in paths:
      audio = datasets.load_clean(path, cfg.rate, cfg.silence_db, counter)
      if audio is not None:
        name = datasets.file_key(path, cfg.folder)
        yield name, {"audio": audio, "name": name, "rate": cfg.rate}
    counter.log(f"TFDS {BUILDER_NAME}/{cfg.name} {split}")


def config_name(folder: str, rate: int, split: str = "80/10/10", silence_db: float = -60.0) -> str:
  """'<folder name>_<rate>hz_<hash>': the hash tells apart folders with the same name and other settings."""
  folder = os.path.abspath(folder)
  slug = re.sub(r"[^a-z0-9]+", "_", os.path.basename(folder.rstrip("/")).lower()).strip("_") or "audio"
  digest = hashlib.sha1(f"{folder}|{split}|{float(silence_db)}".encode()).hexdigest()[:8]
  return f"{slug}_{int(rate)}hz_{digest}"


def make_builder(folder: str, rate: int, data_dir: str | None = None, split: str = "80/10/10",
                 silence_db: float = -60.0) -> SrJaxAudio:
  """The (not necessarily prepared) builder of `folder` at `rate` Hz in `data_dir` (None: TFDS's default)."""
  folder = os.path.abspath(os.path.expanduser(folder))
  audio_lib.check_rate(rate, "data.rate")
  cfg = AudioFolderConfig(name=config_name(folder, rate, split, silence_db), folder=folder, rate=int(rate),
                          split=split, silence_db=float(silence_db),
                          description=f"audio from {folder} at {rate} Hz")
  return SrJaxAudio(config=cfg, data_dir=data_dir or None, file_format="array_record")


def prepare(folder: str, rate: int, data_dir: str | None = None, split: str = "80/10/10",
            silence_db: float = -60.0) -> SrJaxAudio:
  """Generates the dataset of `folder` at `rate` Hz unless it is prepared already; returns its builder."""
  builder = make_builder(folder, rate, data_dir, split, silence_db)
  if not builder.is_prepared():
    datasets.folder_splits(builder.builder_config.folder, split)  # a missing/empty folder: one clear UserError
    logging.info("preparing TFDS dataset %s/%s in %s", BUILDER_NAME, builder.builder_config.name,
                 builder.data_dir_root)
    builder.download_and_prepare(
        file_format="array_record",
        download_config=tfds.download.DownloadConfig(try_download_gcs=False))
  return builder


def builder_dir(data_config) -> str:
  """The folder of the prepared TFDS dataset for `config.data` (prepared now if needed)."""
  name = data_config.tfds_name or BUILDER_NAME
  data_dir = os.path.expanduser(data_config.tfds_data_dir) or None
  if name == BUILDER_NAME:
    folder = data_config.dir or datasets.builtin_corpus(data_config)  # '' = the built-in corpus
    builder = prepare(folder, data_config.rate, data_dir, data_config.split, data_config.silence_db)
    return os.fspath(builder.data_dir)
  return _find_prepared(name, data_dir or os.fspath(tfds.core.constants.DATA_DIR))


def _find_prepared(name: str, data_dir: str) -> str:
  """The newest prepared version folder of 'name' or 'name/config' under `data_dir`."""
  found = [os.path.dirname(p) for pattern in ("*", "*/*")
           for p in glob.glob(os.path.join(data_dir, name, pattern, "dataset_info.json"))]
  if not found:
    raise UserError(f"no prepared TFDS dataset {name!r} in {data_dir}: sr_jax only prepares folders itself "
                    f"(data.tfds_name={BUILDER_NAME!r} with data.dir=...); set data.tfds_data_dir if it is elsewhere")

  def version(path):
    return tuple(int(n) for n in re.findall(r"\d+", os.path.basename(path)))

  return max(found, key=lambda p: (os.path.dirname(p), version(p)))


def list_entries(data_config) -> dict[str, list[str]]:
  """{split: ["tfds:<builder dir>::<split>/<index>", ...]} for the TFDS source of `config.data`."""
  folder = builder_dir(data_config)
  builder = tfds.builder_from_directory(folder)
  entries = {}
  for split in datasets.SPLITS:
    count = builder.info.splits[split].num_examples if split in builder.info.splits else 0
    entries[split] = [f"{datasets.TFDS_PREFIX}{folder}::{split}/{i:07d}" for i in range(count)]
  return entries


def read_entry(entry: str, rate: int) -> np.ndarray:
  """The audio of a TFDS entry, mono float32 at `rate` Hz (resampled if the dataset has another rate)."""
  folder, rest = entry[len(datasets.TFDS_PREFIX):].split("::", 1)
  split, index = rest.rsplit("/", 1)
  key = (folder, split)
  if key not in _SOURCES:
    try:
      _SOURCES[key] = tfds.builder_from_directory(folder).as_data_source(split=split)
    except Exception as e:  # missing folder, unknown split, unreadable files
      raise UserError(f"cannot open TFDS dataset {folder} split {split}: {e}") from None
  example = _SOURCES[key][int(index)]
  audio = np.asarray(example["audio"], np.float32)
  if audio.ndim == 2:
    audio = audio.mean(axis=1, dtype=np.float32)
  source_rate = int(example.get("rate", rate))
  return audio_lib.resample(audio, source_rate, rate) if source_rate != rate else audio
