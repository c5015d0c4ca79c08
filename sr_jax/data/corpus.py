"""The built-in training corpus: piano renderings of the music21 score corpus, built offline from pip packages.

music21 ships a few thousand scores. We keep the "art" music (no big monophonic folk-tune books, no demos or
exercises, no Roman-numeral analyses), one file format per piece, parse them in parallel, read the notes with
the tempo from the metronome marks (100 bpm if none), humanise the velocities a little and render them with the
numpy synthesiser of `sr_jax.data.piano` (default) or with fluidsynth and a General MIDI soundfont.

Splits are by *work* (all movements of an opus together), from a sha1 hash (80/10/10) that does not depend on the
seed; the seed only shuffles the order in which pieces are picked. Each split is filled in its own order up to
its share of the requested minutes, so the result does not depend on the number of workers or on timing.

With several soundfonts (a comma-separated list), each piece is rendered once, by the soundfonts in turn along
each split's pick order, so every split holds each timbre in about equal measure (a model trained on several
timbres, tested on a soundfont it never heard, is how `configs/piano_r4_16k.py` measures generalisation).

Layout: OUT/{train,valid,test}/<piece>.wav (mono 16-bit PCM, peak -1 dBFS), OUT/manifest.tsv (piece, work,
split, seconds, source, renderer, soundfont) and OUT/corpus.json (the arguments stamp and the build state). A rerun with
the same arguments renders nothing; a folder built with other arguments is refused, never overwritten.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import queue
import random
import re
import time
import warnings

import numpy as np

from sr_jax.data import audio as audio_lib
from sr_jax.data import piano
from sr_jax.errors import UserError

SPLITS = ("train", "valid", "test")
SPLIT_PERCENT = (80, 10, 10)
MANIFEST_COLUMNS = ("piece", "work", "split", "seconds", "source", "renderer", "soundfont")
RENDERERS = ("synth", "fluidsynth")
FOLK = ("essenFolksong", "ryansMammoth", "oneills1850", "airdsAirs", "nottingham-dataset", "miscFolk")
SKIP_DIRS = ("demos", "theoryExercises")
FORMATS = (".mxl", ".musicxml", ".xml", ".krn", ".abc")  # preferred first; .rntxt and others are skipped
MAX_SCORE_BYTES = {".mxl": 100_000}  # a few huge quartet scores take 5-15 s each to parse: skip them
PENDING_GUESS_S = 60.0  # expected seconds of a piece still being rendered (only steers scheduling)
STAMP_VERSION = 1
MAX_FAILURES_FIRST = 10  # this many failures before the first success is a broken set-up, not bad scores
STATE_FILE = "corpus.json"
MANIFEST = "manifest.tsv"
_MOVEMENT_SUFFIX = re.compile(r"(?<=.)[-_.]?(movement|mvt|no|n)?\d+[a-z]?$")


def default_corpus_dir(renderer: str = "synth", rate: int = 16000, soundfont=None) -> str:
  """$SR_JAX_DATA/corpora/piano-<renderer>-<rate>, or ~/.cache/sr_jax/corpora/... without $SR_JAX_DATA; with
  several soundfonts piano-<renderer>-<stem>+<stem>...-<rate>."""
  root = os.environ.get("SR_JAX_DATA") or os.path.join(os.path.expanduser("~"), ".cache", "sr_jax")
  fonts = soundfont_list(soundfont)
  tag = "" if len(fonts) < 2 else "+".join(os.path.splitext(os.path.basename(f))[0] for f in fonts) + "-"
  return os.path.join(root, "corpora", f"piano-{renderer}-{tag}{rate}")


def soundfont_list(soundfont) -> list[str]:
  """The soundfonts named by `soundfont`: None or '' (none given), one path, a comma-separated string of
  paths, or a sequence of paths. An empty item ('a.sf2,,b.sf2') is a `UserError`."""
  if soundfont is None or (isinstance(soundfont, str) and not soundfont.strip()):
    return []
  items = soundfont.split(",") if isinstance(soundfont, str) else [str(f) for f in soundfont]
  items = [f.strip() for f in items]
  if not all(items):
    raise UserError(f"soundfont list {soundfont!r} has an empty item: give paths separated by single commas")
  return items


# ----------------------------------------------------------------------------------------------------------
# Picking pieces, work groups and splits.


def stable_hash(text: str) -> int:
  return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:12], 16)


def work_group(rel: str) -> str:
  """The work a corpus file belongs to (all its movements/sections share it), from its corpus-relative path.

  composer/opus/movementN.ext -> composer/opus; bach/bwv248.12-2 -> bach/bwv248 (cantata);
  palestrina/Credo_47_c -> palestrina/mass47; monteverdi/madrigal.3.1 -> monteverdi/madrigal.3 (book);
  otherwise the file stem less a trailing number (mazurka06-2 -> mazurka06, polonaise_op1n2 -> polonaise_op1).
  """
  parts = rel.split("/")
  if len(parts) >= 3:
    return "/".join(parts[:-1])
  folder, stem = parts[0], os.path.splitext(parts[-1])[0]
  if folder == "bach" and (m := re.match(r"bwv\d+", stem)):
    return f"bach/{m.group(0)}"
  if folder == "palestrina":
    m = re.search(r"_(\d+)", stem)
    return f"palestrina/mass{int(m.group(1))}" if m else "palestrina/unnumbered"
  if folder == "monteverdi" and (m := re.match(r"madrigal\.\d+", stem)):
    return f"monteverdi/{m.group(0)}"
  return f"{folder}/{_MOVEMENT_SUFFIX.sub('', stem).rstrip(' _-.')}"


def assign_splits(works) -> dict[str, str]:
  """work -> split by a sha1 hash (80/10/10); with 3+ works every split gets at least one."""
  works = sorted(set(works))
  out = {}
  for w in works:
    r = stable_hash("split:" + w) % sum(SPLIT_PERCENT)
    out[w] = SPLITS[0] if r < SPLIT_PERCENT[0] else SPLITS[1] if r < sum(SPLIT_PERCENT[:2]) else SPLITS[2]
  for split in reversed(SPLITS):
    members = {s: [w for w in works if out[w] == s] for s in SPLITS}
    if not members[split] and len(works) >= len(SPLITS):
      donor = max(SPLITS, key=lambda s: len(members[s]))
      out[min(members[donor], key=lambda w: stable_hash("move:" + w))] = split
  return out


def piece_name(rel: str) -> str:
  return re.sub(r"[^A-Za-z0-9_-]+", "_", os.path.splitext(rel)[0]).strip("_")


def corpus_files() -> list[tuple[str, str]]:
  """(relative path, absolute path) of the usable music21 corpus scores, one format per piece, sorted."""
  import music21  # pylint: disable=import-outside-toplevel

  root = str(music21.common.getCorpusFilePath())
  best = {}
  for path in music21.corpus.getCorePaths():
    rel = os.path.relpath(str(path), root).replace(os.sep, "/")
    stem, ext = os.path.splitext(rel)
    ext = ext.lower()
    if rel.split("/")[0] in FOLK + SKIP_DIRS or ext not in FORMATS:
      continue
    if os.path.getsize(path) > MAX_SCORE_BYTES.get(ext, float("inf")):
      continue
    if stem not in best or FORMATS.index(ext) < FORMATS.index(best[stem][0]):
      best[stem] = (ext, rel, str(path))
  return sorted((rel, path) for _, rel, path in best.values())


def plan(files: list[tuple[str, str]], seed: int) -> dict[str, list[dict]]:
  """Per split, the candidate pieces in the order they are picked: round-robin over the collections
  (top-level folders), collections and pieces within them shuffled with `seed`."""
  groups = assign_splits(work_group(rel) for rel, _ in files)
  rng = random.Random(seed)
  out, used = {}, set()
  for split in SPLITS:
    by_folder = {}
    for rel, path in files:
      if groups[work_group(rel)] == split:
        by_folder.setdefault(rel.split("/")[0], []).append((rel, path))
    folders = sorted(by_folder)
    rng.shuffle(folders)
    for f in folders:
      rng.shuffle(by_folder[f])
    order = []
    while any(by_folder.values()):
      order += [by_folder[f].pop() for f in folders if by_folder[f]]
    out[split] = []
    for rel, path in order:
      name = piece_name(rel)
      if name in used:
        name += "-" + hashlib.sha1(rel.encode()).hexdigest()[:6]
      used.add(name)
      out[split].append(dict(piece=name, work=work_group(rel), split=split, source=rel, path=path))
  return out


# ----------------------------------------------------------------------------------------------------------
# Rendering and building.


def _render_job(job: dict) -> dict:
  """Worker: parse, render and write one piece. Returns its manifest row, or {'error': reason}."""
  try:
    seed = stable_hash(f"{job['seed']}:{job['piece']}")
    notes = piano.score_notes(job["path"], seed)
    audio = piano.render(notes, job["rate"], job["renderer"], job["soundfont"] or None, seed)
    audio_lib.write(os.path.join(job["out_dir"], job["split"], job["piece"] + ".wav"), audio, job["rate"],
                    subtype="PCM_16")
  except Exception as e:  # pylint: disable=broad-except; a score music21 cannot read is skipped, not fatal
    return dict(error=f"{type(e).__name__}: {str(e)[:200]}")
  return dict(piece=job["piece"], work=job["work"], split=job["split"], seconds=len(audio) / job["rate"],
              source=job["source"], renderer=job["renderer"],
              soundfont=os.path.basename(job["soundfont"]) if job["soundfont"] else "")


def check_splits(splits) -> tuple[str, ...]:
  """Split names (a sequence or a comma-separated string) -> a tuple in SPLITS order; `UserError` if empty or
  unknown."""
  names = [k.strip() for k in (splits.split(",") if isinstance(splits, str) else splits)]
  bad = [k for k in names if k not in SPLITS]
  if bad or not names:
    raise UserError(f"splits must be some of {', '.join(SPLITS)} (comma-separated), got {splits!r}")
  return tuple(k for k in SPLITS if k in names)


def _check_args(minutes: float, rate: int, renderer: str, soundfont, workers: int | None) -> list[str]:
  """Validates the arguments of `build_corpus`; returns the soundfonts' absolute paths (fluidsynth: at least the
  default one) or [] (synth)."""
  if not minutes or minutes <= 0:
    raise UserError(f"minutes must be > 0, got {minutes!r}")
  audio_lib.check_rate(rate, "corpus sample rate")
  if renderer not in RENDERERS:
    raise UserError(f"unknown renderer {renderer!r}: use one of {', '.join(RENDERERS)}")
  if workers is not None and workers < 1:
    raise UserError(f"workers must be >= 1, got {workers}")
  fonts = soundfont_list(soundfont)
  if renderer == "fluidsynth":
    paths = [piano.find_soundfont(f) for f in fonts or [None]]
    if len(set(paths)) < len(paths):
      raise UserError(f"soundfont list {soundfont!r} names the same soundfont twice")
    return paths
  if fonts:
    raise UserError("a soundfont is only used with renderer=fluidsynth (the synth renderer needs none)")
  return []


def build_corpus(out_dir: str, minutes: float = 30.0, rate: int = 16000, renderer: str = "synth",
                 soundfont=None, seed: int = 0, workers: int | None = None,
                 progress: bool = True, splits=SPLITS) -> dict:
  """Builds (or completes) the music21 piano corpus in `out_dir`; returns `summary(...)`.

  Each split gets its share (80/10/10) of `minutes`, at least one piece. Pieces already in the manifest with
  their files present are not rendered again: a rerun with the same arguments returns at once and a larger
  `minutes` only adds pieces. A folder built with another renderer, rate, seed or soundfont is a `UserError`.
  `soundfont` (fluidsynth): one path, or several (comma-separated string or list) taken in turn along each
  split's pick order, so the splits hold the timbres in about equal measure.
  `splits`: build only these (names or a comma-separated string), e.g. "test" for an evaluation set: they get the
  same pieces, bytes and share of `minutes` as in a full build (each split is filled in its own order), and a later
  build of all splits into the same folder renders only the others.
  """
  t0 = time.time()
  fonts = _check_args(minutes, rate, renderer, soundfont, workers)
  splits = check_splits(splits)
  stamp = dict(kind="music21", version=STAMP_VERSION, renderer=renderer, rate=int(rate), seed=int(seed),
               soundfont=(fonts[0] if len(fonts) == 1 else fonts) or None)
  state = open_folder(out_dir, stamp)
  rows = present_rows(out_dir)
  done = {k: max(state.get("complete_minutes", 0.0), state.get("complete_splits", {}).get(k, 0.0)) for k in SPLITS}
  if all(done[k] >= minutes for k in splits) and len(rows) == len(read_manifest(out_dir)):
    return summary(out_dir, rows, t0, rendered=0, skipped=len(rows))
  queues = plan(corpus_files(), seed)
  for q in queues.values():
    for i, cand in enumerate(q):
      cand["soundfont"] = fonts[i % len(fonts)] if fonts else ""
  common = dict(out_dir=out_dir, rate=int(rate), renderer=renderer, seed=int(seed))
  filler = _Filler(queues, rows, minutes, common, out_dir, progress, splits)
  filler.run(workers or os.cpu_count() or 1)
  write_state(out_dir, dict(state, complete_splits={k: max(minutes, done[k]) if k in splits else done[k]
                                                    for k in SPLITS}))
  return summary(out_dir, rows, t0, rendered=filler.rendered, skipped=filler.skipped, failed=len(filler.failed))


class _Filler:
  """Renders pieces until each split holds its share of the minutes, accepting each split's pieces strictly in
  its queue order (so the corpus does not depend on workers or timing). `rows` ({piece: row}) is updated in
  place and the manifest rewritten after each new piece. A split is fed while its accepted plus expected
  seconds fall short; pieces rendered beyond the quota are deleted."""

  def __init__(self, queues, rows, minutes, common, out_dir, progress, splits=SPLITS):
    self.queues, self.rows, self.minutes, self.common = queues, rows, minutes, common
    self.splits = tuple(splits)  # the others are left as they are
    self.out_dir, self.progress = out_dir, progress
    self.quota = {s: minutes * 60.0 * p / 100.0 for s, p in zip(SPLITS, SPLIT_PERCENT)}
    self.total, self.count = dict.fromkeys(SPLITS, 0.0), dict.fromkeys(SPLITS, 0)
    self.submit_at, self.accept_at = dict.fromkeys(SPLITS, 0), dict.fromkeys(SPLITS, 0)
    self.results = {s: {} for s in SPLITS}  # queue index -> row or {'error': ...}, not yet accepted
    self.rank = {c["piece"]: (SPLITS.index(s), i) for s, q in queues.items() for i, c in enumerate(q)}
    self.submitted, self.failed, self.rendered, self.skipped = set(), {}, 0, 0

  def finished(self, s: str) -> bool:
    return (s not in self.splits or (self.total[s] >= self.quota[s] and self.count[s] > 0)
            or self.accept_at[s] >= len(self.queues[s]))

  def need(self, s: str) -> float | None:
    """How short split `s` is (fraction of its quota) counting pieces in flight; None if it needs no more."""
    if self.submit_at[s] >= len(self.queues[s]) or self.finished(s):
      return None
    waiting = self.submit_at[s] - self.accept_at[s]
    expected = self.total[s] + sum(float(r.get("seconds", 0.0)) for r in self.results[s].values())
    expected += PENDING_GUESS_S * (waiting - len(self.results[s]))
    if self.count[s] == 0 and waiting == 0:
      return float("inf")
    return (self.quota[s] - expected) / self.quota[s] if expected < self.quota[s] else None

  def accept(self) -> None:
    for s in SPLITS:
      while not self.finished(s) and self.accept_at[s] in self.results[s]:
        r, cand = self.results[s].pop(self.accept_at[s]), self.queues[s][self.accept_at[s]]
        self.accept_at[s] += 1
        if "error" in r:
          self.failed[cand["source"]] = r["error"]
          if len(self.failed) >= MAX_FAILURES_FIRST and not any(self.count.values()):
            raise RuntimeError(f"the first {len(self.failed)} scores all failed to render, e.g. "
                               f"{cand['source']}: {r['error']}")
          continue
        self.rows[r["piece"]] = r
        self.total[s] += float(r["seconds"])
        self.count[s] += 1
        if cand["piece"] not in self.submitted:
          self.skipped += 1
          continue
        self.rendered += 1
        write_manifest(self.out_dir, self.rows, self.rank)
        if self.progress:
          done = sum(self.total.values()) / 60.0
          print(f"  {s:5s} {r['piece']}: {float(r['seconds']):.0f} s ({done:.1f}/{self.minutes:g} min)", flush=True)

  def run(self, workers: int) -> None:
    pool = None if workers == 1 else multiprocessing.get_context("spawn").Pool(workers, initializer=_quiet)
    done, inflight = queue.SimpleQueue(), 0
    try:
      while True:
        self.accept()
        if all(self.finished(s) for s in SPLITS):
          break
        found = False  # an already built piece was taken from a queue: accept it before waiting
        while inflight < (1 if pool is None else 2 * workers):
          needs = {s: n for s in SPLITS if (n := self.need(s)) is not None}
          if not needs:
            break
          s = max(needs, key=lambda k: (needs[k], -SPLITS.index(k)))
          i, cand = self.submit_at[s], self.queues[s][self.submit_at[s]]
          self.submit_at[s] += 1
          if cand["piece"] in self.rows and self.rows[cand["piece"]]["split"] == s:
            self.results[s][i], found = self.rows[cand["piece"]], True
            continue
          job = dict(self.common, **{k: cand[k] for k in ("piece", "work", "split", "source", "path", "soundfont")})
          self.submitted.add(cand["piece"])
          inflight += 1
          if pool is None:
            done.put((s, i, _render_job(job)))
          else:
            pool.apply_async(_render_job, (job,), callback=lambda r, s=s, i=i: done.put((s, i, r)),
                             error_callback=lambda e, s=s, i=i: done.put((s, i, dict(error=repr(e)))))
        if not inflight:
          if found:
            continue
          break  # every split that is short has run out of candidates
        s, i, r = done.get()
        inflight -= 1
        self.results[s][i] = r
    finally:
      if pool is not None:
        pool.terminate()
        pool.join()
      remove_strays(self.out_dir, self.submitted - set(self.rows))
    write_manifest(self.out_dir, self.rows, self.rank)


def _quiet() -> None:
  warnings.simplefilter("ignore")


def ensure_corpus(out_dir: str | None = None, minutes: float = 30.0, rate: int = 16000, renderer: str = "synth",
                  soundfont=None, seed: int = 0, workers: int | None = None,
                  progress: bool = True) -> str:
  """Returns the corpus folder (default `default_corpus_dir(renderer, rate)`), building it first if it is
  missing or incomplete; an already complete corpus returns at once."""
  out_dir = out_dir or default_corpus_dir(renderer, rate, soundfont)
  build_corpus(out_dir, minutes, rate, renderer, soundfont, seed, workers, progress)
  return out_dir


def build_tiny_corpus(out_dir: str, rate: int = 16000, seconds_per_file: float = 3.0,
                      files_per_split: tuple[int, int, int] = (6, 2, 2), seed: int = 0) -> dict:
  """A small corpus of random melodies over chords rendered by the synthesiser (no music21), in a second or
  two: same layout, manifest and incremental behaviour as `build_corpus`; every file is its own work."""
  t0 = time.time()
  audio_lib.check_rate(rate, "corpus sample rate")
  if not seconds_per_file or seconds_per_file <= 0:
    raise UserError(f"seconds_per_file must be > 0, got {seconds_per_file!r}")
  if len(files_per_split) != len(SPLITS) or min(files_per_split) < 1:
    raise UserError(f"files_per_split must be {len(SPLITS)} counts >= 1 (train, valid, test), got {files_per_split}")
  stamp = dict(kind="tiny", version=STAMP_VERSION, renderer="synth", rate=int(rate), seed=int(seed),
               seconds_per_file=float(seconds_per_file), files_per_split=[int(n) for n in files_per_split])
  state = open_folder(out_dir, stamp)
  rows, rendered, frames = present_rows(out_dir), 0, int(round(seconds_per_file * rate))
  for k, (split, i) in enumerate((s, i) for s, n in zip(SPLITS, files_per_split) for i in range(n)):
    name = f"tiny-{split}-{i:03d}"
    if name in rows:
      continue
    notes = piano.random_notes(np.random.default_rng([seed, k]), seconds_per_file)
    audio = piano.fit_length(piano.render_notes(notes, rate, seed=k), frames, rate)
    audio_lib.write(os.path.join(out_dir, split, name + ".wav"), audio, rate, subtype="PCM_16")
    rows[name] = dict(piece=name, work=f"tiny/{split}-{i:03d}", split=split, seconds=frames / rate,
                      source=f"random:seed={seed}:{k}", renderer="synth")
    rendered += 1
  write_manifest(out_dir, rows, {})
  write_state(out_dir, dict(state, complete_minutes=len(rows) * seconds_per_file / 60.0))
  return summary(out_dir, rows, t0, rendered=rendered, skipped=len(rows) - rendered)


# ----------------------------------------------------------------------------------------------------------
# The folder: stamp/state (corpus.json), manifest.tsv, summaries.


def open_folder(out_dir: str, stamp: dict) -> dict:
  """Returns the saved state of the corpus folder `out_dir`, creating it (with `stamp`) when new or empty.

  A folder stamped with other arguments, or a non-empty folder that is not a corpus, is a `UserError`."""
  path = os.path.join(out_dir, STATE_FILE)
  if os.path.exists(path):
    try:
      with open(path, encoding="utf-8") as f:
        state = json.load(f)
    except (OSError, ValueError) as e:
      raise UserError(f"cannot read {path} ({e}); choose another corpus folder") from None
    old = state.get("stamp", {})
    if old != stamp:
      keys = [k for k in sorted(set(old) | set(stamp)) if old.get(k) != stamp.get(k)]
      was = ", ".join(f"{k}={old.get(k)!r}" for k in keys)
      now = ", ".join(f"{k}={stamp.get(k)!r}" for k in keys)
      raise UserError(f"{out_dir} holds a corpus built with {was}, not {now}; choose another folder for these "
                      "settings (or delete that one)")
    return state
  if os.path.exists(out_dir) and (not os.path.isdir(out_dir) or os.listdir(out_dir)):
    raise UserError(f"{out_dir} exists and is not an sr_jax corpus folder (no {STATE_FILE}); choose a new or "
                    "empty folder")
  state = dict(stamp=stamp)
  write_state(out_dir, state)
  return state


def write_state(out_dir: str, state: dict) -> None:
  _write_text(os.path.join(out_dir, STATE_FILE), json.dumps(state, indent=1, sort_keys=True) + "\n")


def read_manifest(out_dir: str, columns: tuple[str, ...] = MANIFEST_COLUMNS) -> list[dict]:
  """The rows of `out_dir`'s manifest (a TSV with a header line) as dicts of `columns`; [] without one."""
  path = os.path.join(out_dir, MANIFEST)
  if not os.path.exists(path):
    return []
  with open(path, encoding="utf-8") as f:
    lines = f.read().splitlines()
  return [dict(zip(columns, line.split("\t"))) for line in lines[1:] if line]


def present_rows(out_dir: str, key: str = "piece", columns: tuple[str, ...] = MANIFEST_COLUMNS) -> dict[str, dict]:
  """{row[key]: manifest row} for the manifest rows whose audio file (SPLIT/KEY.wav) exists."""
  return {r[key]: r for r in read_manifest(out_dir, columns)
          if os.path.isfile(os.path.join(out_dir, r["split"], r[key] + ".wav"))}


def write_manifest(out_dir: str, rows: dict[str, dict], rank: dict[str, tuple]) -> None:
  """Writes manifest.tsv sorted by split, then `rank` (the pick order), then name."""
  def key(r):
    return rank.get(r["piece"], (SPLITS.index(r["split"]), float("inf"))) + (r["piece"],)
  lines = ["\t".join(MANIFEST_COLUMNS)]
  for r in sorted(rows.values(), key=key):
    lines.append("\t".join(f"{float(r[c]):.3f}" if c == "seconds" else str(r.get(c, "")) for c in MANIFEST_COLUMNS))
  _write_text(os.path.join(out_dir, MANIFEST), "\n".join(lines) + "\n")


def remove_strays(out_dir: str, pieces) -> None:
  """Deletes the audio of `pieces` (rendered but not kept) and temp files left by killed workers."""
  for split in SPLITS:
    folder = os.path.join(out_dir, split)
    for name in os.listdir(folder) if os.path.isdir(folder) else []:
      if name.startswith(".tmp-") or name[:-len(".wav")] in pieces:
        os.remove(os.path.join(folder, name))


def summary(out_dir: str, rows: dict[str, dict], t0: float, rendered: int, skipped: int, failed: int = 0) -> dict:
  """minutes and pieces per split, seconds taken, pieces rendered now / skipped as already built / failed."""
  minutes = {s: sum(float(r["seconds"]) for r in rows.values() if r["split"] == s) / 60.0 for s in SPLITS}
  pieces = {s: sum(r["split"] == s for r in rows.values()) for s in SPLITS}
  return dict(out_dir=out_dir, minutes=minutes, pieces=pieces, seconds_taken=time.time() - t0,
              rendered=rendered, skipped=skipped, failed=failed)


def _write_text(path: str, text: str) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "w", encoding="utf-8") as f:
    f.write(text)
  os.replace(tmp, path)
