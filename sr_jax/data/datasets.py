"""Clean audio files: split folders (train/valid/test subfolders, MAESTRO metadata or a stable hash), the folders of
the built-in and packaged corpora (built on first use), file keys and identities, and robust loading of one file.

`load_clean` reads one file as clean mono float32 at the wanted rate; unreadable, empty or silent files give
`None`, one warning line each, and are counted in a `SkipCounter` whose summary ("skipped 3 of 120 files: 1
unreadable, 1 empty, 1 silent") callers log once. `sr_jax.data.sources` lists a config's files per split (every
source, TFDS included) on top of this module.
"""

from __future__ import annotations

import collections
import dataclasses
import glob
import hashlib
import json
import os
import re

import numpy as np
import soundfile as sf
from absl import logging

from sr_jax.data import audio as audio_lib
from sr_jax.errors import UserError

SPLITS = ("train", "valid", "test")
# Extensions of the formats libsndfile reads (MP3 only with libsndfile >= 1.1).
AUDIO_EXTENSIONS = frozenset({
    ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".aif", ".aiff", ".aifc", ".au", ".snd", ".caf",
    ".w64", ".rf64", ".mp3", ".sph", ".nist", ".voc", ".htk", ".sds", ".avr", ".paf", ".pvf", ".xi", ".sd2",
})
TFDS_PREFIX = "tfds:"
_SPLIT_ALIASES = {"train": "train", "valid": "valid", "validation": "valid", "test": "test"}
_SKIP_REASONS = ("unreadable", "empty", "silent")


# ----- file lists --------------------------------------------------------------------------------------------


def folder_splits(root: str, split: str = "80/10/10", maestro: bool | None = None) -> dict[str, list[str]]:
  """Splits the audio files under `root` (absolute paths): MAESTRO metadata if `maestro` (None: if the root
  has some), else train/valid/test subfolders if there is a `train/` subfolder, else by hash (`split`)."""
  if not os.path.isdir(root):
    what = "does not exist" if not os.path.exists(root) else "is not a folder"
    raise UserError(f"data folder {root} {what}: set --config.data.dir to a folder of audio files")
  metadata = maestro_metadata_file(root)
  if maestro and metadata is None:
    raise UserError(f"{root} is not a MAESTRO folder: it has no maestro-v*.csv or maestro-v*.json file")
  if metadata is not None and maestro is not False:
    files = maestro_files(root, metadata)
  elif os.path.isdir(os.path.join(root, "train")):
    files = {s: [] for s in SPLITS}
    for name in sorted(os.listdir(root)):
      if name in _SPLIT_ALIASES and os.path.isdir(os.path.join(root, name)):
        files[_SPLIT_ALIASES[name]] += audio_files(os.path.join(root, name))
  else:
    fractions = parse_split(split)
    files = {s: [] for s in SPLITS}
    for path in audio_files(root):
      files[hash_split(os.path.relpath(path, root), fractions)].append(path)
  if not any(files.values()):
    raise UserError(f"no audio files found in {root} (looked for {', '.join(sorted(AUDIO_EXTENSIONS)[:6])}, ...)")
  return files


def audio_files(folder: str) -> list[str]:
  """Absolute paths of the audio files (by extension) under `folder`, recursively, sorted; hidden files and
  folders (names starting with '.') are left out."""
  found = []
  for parent, dirs, names in os.walk(os.path.abspath(folder), followlinks=True):
    dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    found += [os.path.join(parent, n) for n in names
              if not n.startswith(".") and os.path.splitext(n)[1].lower() in AUDIO_EXTENSIONS]
  return sorted(found)


def parse_split(split: str) -> tuple[float, float, float]:
  """'80/10/10' -> (0.8, 0.1, 0.1): train/valid/test percentages that add up to 100."""
  parts = str(split).replace(",", "/").split("/")
  try:
    values = [float(p) for p in parts]
  except ValueError:
    values = []
  if len(values) != 3 or min(values) < 0 or abs(sum(values) - 100) > 1e-6:
    raise UserError(f"data.split {split!r} must be three percentages train/valid/test adding up to 100, "
                    "e.g. 80/10/10")
  return tuple(v / 100 for v in values)


def hash_split(relative_path: str, fractions: tuple[float, float, float]) -> str:
  """The split of a file from a stable hash of its relative path (same on every machine and Python run)."""
  key = relative_path.replace(os.sep, "/").encode("utf-8")
  u = int.from_bytes(hashlib.sha1(key).digest()[:8], "big") / 2.0**64  # uniform in [0, 1)
  if u < fractions[0]:
    return "train"
  return "valid" if u < fractions[0] + fractions[1] else "test"


def maestro_metadata_file(root: str) -> str | None:
  """The newest maestro-v*.json or maestro-v*.csv in `root` (json preferred for the same version), or None."""
  found = glob.glob(os.path.join(root, "maestro-v*.json")) + glob.glob(os.path.join(root, "maestro-v*.csv"))

  def order(path):
    name = os.path.basename(path)
    version = tuple(int(n) for n in re.findall(r"\d+", name))
    return version, name.endswith(".json")

  return max(found, key=order) if found else None


def maestro_files(root: str, metadata: str) -> dict[str, list[str]]:
  """Reads MAESTRO's metadata (csv, or json = a dict of columns {"split": {"0": "train", ...}, ...}); its
  train/validation/test splits become train/valid/test. Listed files missing on disk are dropped."""
  rows = _read_maestro_rows(metadata)
  files, missing = {s: [] for s in SPLITS}, 0
  for row in rows:
    split = _SPLIT_ALIASES.get(str(row.get("split", "")).strip().lower())
    name = row.get("audio_filename")
    if split is None or not name:
      raise UserError(f"{metadata}: every row needs a split (train/validation/test) and an audio_filename, "
                      f"got {row}")
    path = os.path.join(root, str(name))
    if os.path.isfile(path):
      files[split].append(path)
    else:
      missing += 1
  if missing:
    logging.warning("%d of %d files listed in %s are missing; using the %d present", missing, len(rows),
                    metadata, len(rows) - missing)
  return files


def _read_maestro_rows(metadata: str) -> list[dict]:
  """The rows of a MAESTRO csv or json metadata file, as dicts."""
  import csv

  try:
    if metadata.endswith(".json"):
      with open(metadata, encoding="utf-8") as f:
        columns = json.load(f)
      if not isinstance(columns, dict) or "split" not in columns:
        raise ValueError("expected a dict of columns with 'split' and 'audio_filename'")
      ids = sorted(columns["split"], key=lambda i: int(i) if str(i).isdigit() else str(i))
      return [{c: values.get(i) for c, values in columns.items() if isinstance(values, dict)} for i in ids]
    with open(metadata, encoding="utf-8", newline="") as f:
      return list(csv.DictReader(f))
  except (OSError, ValueError, AttributeError) as e:
    raise UserError(f"cannot read MAESTRO metadata {metadata}: {e}") from None


def builtin_corpus(data_config) -> str:
  """The built-in piano corpus folder (`data.dir`, or the default one if empty), built first if missing."""
  from sr_jax.data import corpus

  rate = data_config.rate
  if data_config.source == "tiny":  # the tests' corpus: 10 short synthetic files, made in about a second
    folder = os.path.abspath(os.path.expanduser(data_config.dir or corpus.default_corpus_dir("tiny", rate)))
    if _corpus_kind(folder, corpus.STATE_FILE) != "tiny":
      corpus.build_tiny_corpus(folder, rate=rate)
    return folder
  folder = data_config.dir or corpus.default_corpus_dir(data_config.corpus_renderer, rate, data_config.soundfont)
  folder = os.path.abspath(os.path.expanduser(folder))
  if _corpus_kind(folder, corpus.STATE_FILE) == "tiny":  # a `corpus.build_tiny_corpus` folder: used as it is
    return folder
  corpus.ensure_corpus(folder, data_config.corpus_minutes, data_config.rate, data_config.corpus_renderer,
                       data_config.soundfont, data_config.corpus_seed)
  return folder


def _corpus_kind(folder: str, state_file: str) -> str | None:
  """The "kind" in the stamp of a corpus folder's state file, or None."""
  return (_corpus_stamp(folder, state_file) or {}).get("kind")


def _corpus_stamp(folder: str, state_file: str) -> dict | None:
  """The stamp (the build arguments) saved in a corpus folder's state file, or None."""
  try:
    with open(os.path.join(folder, state_file), encoding="utf-8") as f:
      stamp = json.load(f).get("stamp")
  except (OSError, ValueError, AttributeError):
    return None
  return stamp if isinstance(stamp, dict) else None


# ----- the packaged corpora ------------------------------------------------------------------------------------

PACKAGED_KINDS = ("music", "speech")
# Extra keyword arguments of the packaged source's `packaged.build_packaged_corpus` calls (registry=, roots=,
# workers=, min_seconds=, ...): how tests point the source at generated fixture packages instead of installed ones.
PACKAGED_OPTIONS: dict = {}


def packaged_dir(data_config) -> str:
  """The packaged corpus's folder: `data.dir`, or <corpora>/packaged-<kind>-<rate> beside the default piano corpus
  (<corpora>/packaged-<kind>-s<seed>-<rate> for a data.corpus_seed other than 0), so each setting has its own."""
  from sr_jax.data import corpus

  kind = _packaged_kind(data_config)
  folder = data_config.dir
  if not folder:
    seed = f"-s{data_config.corpus_seed}" if data_config.corpus_seed else ""
    corpora = os.path.dirname(corpus.default_corpus_dir("synth", data_config.rate))
    folder = os.path.join(corpora, f"packaged-{kind}{seed}-{data_config.rate}")
  return os.path.abspath(os.path.expanduser(folder))


def _packaged_kind(data_config) -> str:
  kind = data_config.packaged_kind
  if kind not in PACKAGED_KINDS:
    raise UserError(f"data.packaged_kind {kind!r} must be one of {', '.join(PACKAGED_KINDS)}")
  return kind


def packaged_corpus(data_config) -> str:
  """The packaged corpus folder (`packaged_dir`), built first or completed (`packaged.build_packaged_corpus`:
  data.packaged_minutes of data.packaged_kind recordings at data.rate, seed data.corpus_seed) from the installed
  packages; a complete corpus decodes nothing. Without the packages, a folder built with these settings is used
  as it is (e.g. copied from another machine).

  `UserError`s: a folder built with another kind, rate, seed or set of installed sources (the builder would refuse
  to extend it), and no training source installed (naming the packages to install).
  """
  from sr_jax.data import corpus, packaged

  kind, rate, seed = _packaged_kind(data_config), int(data_config.rate), int(data_config.corpus_seed)
  minutes = float(data_config.packaged_minutes)
  if minutes == 0 or (minutes < 0 and minutes != -1):
    raise UserError(f"data.packaged_minutes must be > 0, or -1 for everything installed; got {minutes:g}")
  minutes = None if minutes < 0 else minutes
  folder = packaged_dir(data_config)
  options = dict(PACKAGED_OPTIONS)
  registry, roots = options.pop("registry", packaged.REGISTRY), options.pop("roots", None)
  stamp = _corpus_stamp(folder, corpus.STATE_FILE)
  if stamp is not None:
    built = dict(kind=stamp.get("kind"), rate=stamp.get("rate"), seed=stamp.get("seed"))
    wanted = dict(kind=f"packaged-{kind}", rate=rate, seed=seed)
    if built != wanted:
      was = ", ".join(f"{k}={built[k]!r}" for k in built if built[k] != wanted[k])
      now = ", ".join(f"{k}={wanted[k]!r}" for k in built if built[k] != wanted[k])
      raise UserError(f"{folder} holds a corpus built with {was}, not {now} (data.packaged_kind, data.rate, "
                      "data.corpus_seed): set data.dir to another folder, or '' for the default one")
  active = packaged.active_sources(kind, registry, roots, render=minutes is not None)
  if not any(s.role == "train" for s, _ in active):
    if stamp is not None:
      logging.info("no packaged %s source is installed: using the corpus in %s as it is", kind, folder)
      return folder
    raise UserError(_missing_packages(kind, registry, roots))
  if stamp is not None:
    now = {s.name: len(packaged.source_files(s, root)) for s, root in active}
    then = {name: v[2] for name, v in dict(stamp.get("sources") or {}).items() if isinstance(v, list) and len(v) > 2}
    if now != then:
      diff = [f"{label}: {', '.join(names)}" for label, names in (
          ("now installed", sorted(set(now) - set(then))), ("no longer installed", sorted(set(then) - set(now))),
          ("other files", sorted(n for n in set(now) & set(then) if now[n] != then[n]))) if names]
      raise UserError(f"{folder} holds a packaged {kind} corpus built from other installed sources "
                      f"({'; '.join(diff)}): set data.dir to another folder, or delete this one, to build one from "
                      "what is installed now")
  logging.info("packaged %s corpus in %s (%s minutes at %d Hz)", kind, folder,
               "all" if minutes is None else f"{minutes:g}", rate)
  packaged.build_packaged_corpus(kind, folder, rate=rate, minutes=minutes, seed=seed, registry=registry,
                                 roots=roots, **options)
  return folder


def _missing_packages(kind: str, registry, roots) -> str:
  """The error text for a packaged corpus without an installed training source: what to install."""
  from sr_jax.data import packaged

  wanted = [s for s in registry if s.kind == kind and s.role == "train" and s.target]
  installed = [s for s in wanted if (root := packaged.resolve_root(s, roots)) and packaged.source_files(s, root)]
  if any(s.codec == "g722" for s in installed) and not packaged.g722_available():
    return (f"the packaged {kind} corpus's installed training recordings are G.722 prompts, which need the G722 "
            "module: python3 -m pip install G722")
  apt = sorted({s.package[4:] for s in wanted if s.package.startswith("apt:")})
  pip = sorted({s.package[4:] for s in wanted if s.package.startswith("pip:")})
  needs = [f"sudo apt-get install {' '.join(apt)}"] if apt else []
  needs += [f"python3 -m pip install {' '.join(pip)}"] if pip else []
  if any(s.codec == "g722" for s in wanted) and not packaged.g722_available():
    needs.append("python3 -m pip install G722 (to decode the .g722 prompts)")
  return (f"data.source='packaged' found no {kind} training recordings installed; install some of them: "
          f"{'; '.join(needs) or 'no registered package provides them'}")


def cap(files: list[str], max_files: int) -> list[str]:
  return files if max_files is None or max_files < 0 else files[:max_files]


def file_key(path: str, root: str) -> str:
  """A name for `path` that does not depend on where the data lives: the path relative to `root` with '/'
  separators (the split/index part of a TFDS entry). Seeds and cache names derive from it."""
  if path.startswith(TFDS_PREFIX):
    return path.split("::", 1)[1]
  rel = os.path.relpath(path, root) if os.path.isabs(path) else path
  return rel.replace(os.sep, "/")


def file_identity(path: str) -> str:
  """path + size + modification time (of the TFDS dataset for TFDS entries): changes when the file does."""
  target = path.split("::", 1)[0][len(TFDS_PREFIX):] if path.startswith(TFDS_PREFIX) else path
  if os.path.isdir(target):
    target = os.path.join(target, "dataset_info.json")
  try:
    st = os.stat(target)
    return f"{path}|{st.st_size}|{st.st_mtime_ns}"
  except OSError:
    return f"{path}|missing"


# ----- loading -------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class SkipCounter:
  """Counts files read and files skipped by reason (unreadable, empty, silent)."""

  seen: int = 0
  skipped: collections.Counter = dataclasses.field(default_factory=collections.Counter)

  def add(self, reason: str | None) -> None:
    """Counts one file; `reason` None means it was used."""
    self.seen += 1
    if reason is not None:
      self.skipped[reason] += 1

  def merge(self, other: SkipCounter) -> None:
    self.seen += other.seen
    self.skipped.update(other.skipped)

  @property
  def num_skipped(self) -> int:
    return sum(self.skipped.values())

  def summary(self) -> str:
    """'skipped 3 of 120 files: 1 unreadable, 1 empty, 1 silent' or 'read all 120 files'."""
    if not self.num_skipped:
      return f"read all {self.seen} files"
    reasons = sorted(self.skipped, key=lambda r: (_SKIP_REASONS + (r,)).index(r))
    detail = ", ".join(f"{self.skipped[r]} {r}" for r in reasons)
    return f"skipped {self.num_skipped} of {self.seen} files: {detail}"

  def log(self, what: str = "") -> None:
    """Logs the summary once (a warning when files were skipped)."""
    text = f"{what}: {self.summary()}" if what else self.summary()
    (logging.warning if self.num_skipped else logging.info)(text)


def load_clean(path: str, rate: int, silence_db: float = -60.0, counter: SkipCounter | None = None,
               reader=None) -> np.ndarray | None:
  """Clean mono float32 audio of `path` at `rate` Hz, or None (with one warning line) if the file is
  unreadable, empty or silent (RMS below `silence_db` dBFS). Counts the outcome in `counter` if given. `reader`
  (default `read_checked`) reads and checks one path (`sources.read_checked` also reads TFDS entries)."""
  audio, reason, detail = (reader or read_checked)(path, rate, silence_db)
  if reason is not None:
    logging.warning("skipping %s: %s", path, detail)
  if counter is not None:
    counter.add(reason)
  return audio


def read_checked(path: str, rate: int, silence_db: float = -60.0) -> tuple[np.ndarray | None, str | None, str]:
  """(audio, None, '') for a usable file, else (None, reason, detail) with reason unreadable/empty/silent."""
  try:
    if audio_lib.info(path).frames == 0:
      return None, "empty", "empty (no audio frames)"
    audio, _ = audio_lib.read(path, rate=rate, mono=True)
  except READ_ERRORS as e:
    return unreadable(e)
  return checked(audio, silence_db)


READ_ERRORS = (UserError, sf.LibsndfileError, RuntimeError, OSError, EOFError)


def unreadable(error: Exception) -> tuple[None, str, str]:
  """(None, reason, detail) for an error raised while reading."""
  text = str(error)
  if "zero frames" in text:
    return None, "empty", "empty (no audio frames)"
  return None, "unreadable", f"unreadable ({text})"


def checked(audio: np.ndarray, silence_db: float) -> tuple[np.ndarray | None, str | None, str]:
  """`read_checked`'s verdict on audio that was read: empty, not finite or silent, else usable."""
  if audio.size == 0:
    return None, "empty", "empty (no audio frames)"
  if not np.all(np.isfinite(audio)):
    return None, "unreadable", "unreadable (contains NaN or infinite samples)"
  level = rms_db(audio)
  if level < silence_db:
    return None, "silent", f"silent (RMS {level:.1f} dBFS < data.silence_db {silence_db:g} dBFS)"
  return audio, None, ""


def rms_db(audio: np.ndarray) -> float:
  """Root-mean-square level in dBFS (-inf for digital silence)."""
  rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
  return 20 * np.log10(rms) if rms > 0 else -np.inf
