"""Which clean audio a config trains and evaluates on: the files of each split, for every data source.

Sources (`config.data.source`):

- `folder`: any folder of audio files soundfile reads (wav, flac, ogg, aiff, ...), searched recursively, at
  any sample rate (resampled to `config.data.rate` with soxr when loaded; stereo is mixed to mono). If the
  folder has a `train/` subfolder, the subfolders `train/`, `valid/` (or `validation/`) and `test/` are the
  splits (the built-in corpus uses that layout); otherwise each file goes to a split by a stable hash of its
  path relative to the folder and the percentages in `config.data.split` ("80/10/10"), so adding or removing
  files never moves the others between splits.
- `maestro`: a MAESTRO root (`maestro-v*.csv` or `maestro-v*.json` next to the year folders); its
  train/validation/test column gives train/valid/test. Files listed there but missing on disk are dropped
  with one warning. A folder source whose root holds a MAESTRO metadata file is read the same way.
- `tiny`: a tiny synthetic corpus (`corpus.build_tiny_corpus`, made in about a second) at `config.data.dir`
  or `corpus.default_corpus_dir("tiny", rate)`: the data of configs/tiny.py and the tests.
- `corpus`: the built-in piano corpus at `config.data.dir`, or `corpus.default_corpus_dir(...)` if that is
  empty; it is built on first use (`corpus.ensure_corpus`). A folder made by `corpus.build_tiny_corpus` is
  used as it is.
- `packaged`: real recordings that Debian packages ship (`sr_jax.data.packaged`), a corpus of
  `config.data.packaged_kind` (music | speech) built on first use from the installed packages
  (`config.data.packaged_minutes`, 80/10/10, whole speakers / bands / kits held out for valid and test) at
  `config.data.dir`, or `datasets.packaged_dir` (e.g. ~/.cache/sr_jax/corpora/packaged-speech-16000) if that is
  empty, and reused afterwards (`datasets.packaged_corpus`). A folder built with other settings, or no training
  package installed, is a `UserError` that says what to do (which packages to apt-get install).
- `tfds`: a TFDS dataset prepared by `sr_jax.data.tfds_builder` (see there); its "files" are entries
  `tfds:<builder dir>::<split>/<index>` that `read_checked` reads like files.

`list_files(config.data)` gives {"train": [...], "valid": [...], "test": [...]}, each sorted, with at most
`config.data.max_files` files per split (-1: all); `read_checked` reads one of them (a file or a TFDS entry).
Folder handling and file loading are `sr_jax.data.datasets`; the TFDS builder is `sr_jax.data.tfds_builder`.
"""

from __future__ import annotations

import os

import numpy as np

from sr_jax.data import datasets
from sr_jax.errors import UserError

SOURCES = ("corpus", "tiny", "folder", "maestro", "tfds", "packaged")


def list_files(data_config) -> dict[str, list[str]]:
  """The audio files of each split for `data_config` (`config.data`): {"train", "valid", "test"} -> sorted
  absolute paths (or TFDS entries), at most `max_files` per split (-1: all).

  Raises `UserError` for an unknown source, a missing folder, a folder without audio files or a bad split.
  """
  source = data_config.source
  if source not in SOURCES:
    raise UserError(f"unknown data.source {source!r}: use one of {', '.join(SOURCES)}")
  if source == "tfds":
    from sr_jax.data import tfds_builder  # lazy: importing TFDS takes ~0.5 s

    files = tfds_builder.list_entries(data_config)
  else:
    if source == "packaged":
      root = datasets.packaged_corpus(data_config)
    elif source in ("corpus", "tiny"):
      root = datasets.builtin_corpus(data_config)
    else:
      root = data_root(data_config)
    files = datasets.folder_splits(root, data_config.split, maestro=source == "maestro" or None)
  return {s: datasets.cap(sorted(files.get(s, [])), data_config.max_files) for s in datasets.SPLITS}


def data_root(data_config) -> str:
  """The root folder of a corpus/packaged/folder/maestro source (the default corpus folder if `data.dir` is
  empty); the builder folder of a prepared TFDS source. File keys (`file_key`) are relative to it."""
  source = data_config.source
  folder = data_config.dir
  if source == "packaged":  # its folder only: `list_files` builds it
    return datasets.packaged_dir(data_config)
  if source == "tfds":
    from sr_jax.data import tfds_builder

    return tfds_builder.builder_dir(data_config)
  if source == "tiny":  # made on first use, wherever data.dir says (or its default folder)
    return datasets.builtin_corpus(data_config)
  if source == "corpus" and not folder:
    from sr_jax.data import corpus

    folder = corpus.default_corpus_dir(data_config.corpus_renderer, data_config.rate, data_config.soundfont)
  if not folder:
    raise UserError(f"data.dir is empty: data.source={source!r} needs --config.data.dir=/path/to/audio")
  return os.path.abspath(os.path.expanduser(folder))


def read_checked(path: str, rate: int, silence_db: float = -60.0) -> tuple[np.ndarray | None, str | None, str]:
  """`datasets.read_checked` for a file or a TFDS entry ("tfds:<builder dir>::<split>/<index>")."""
  if not path.startswith(datasets.TFDS_PREFIX):
    return datasets.read_checked(path, rate, silence_db)
  from sr_jax.data import tfds_builder

  try:
    audio = tfds_builder.read_entry(path, rate)
  except datasets.READ_ERRORS as e:
    return datasets.unreadable(e)
  return datasets.checked(audio, silence_db)
