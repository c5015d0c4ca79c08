"""The input pipeline: degraded/clean window pairs in batches, checkpointable, with grain.

Two phases:

1. prepare: every file of a split is read once (`sources.read_checked`, at the target rate), degraded once (per copy)
   (`degrade.degrade` with the seed `degrade.file_seed(run seed, file key)`, the run seed being config.seed
   for training and config.data.eval_seed (default 0) for validation/test) and cached as one .npy of
   shape (2, frames) (row 0 the network input, row 1 the target) under `<cache dir>/pairs/<name>-<hash>.npy`,
   the hash covering the file's path, size and modification time, the chain, the rate, the upsampling
   method, the seed and the cache dtype (and the gain range and data.target_phase, when set). Training files get
   `config.data.copies` pairs each (copy k > 0 degraded with the seed of the key "<file key>#k", so a chain
   with random steps degrades each copy differently; copy 0 is the pair of a run without copies), each copy
   optionally scaled first by a gain drawn from `config.data.gain_db` (target and input alike); validation
   and test take copy 0 only, without gain. float32 by default: 8 bytes per sample, ~0.46 GB per hour of
   16 kHz audio (times the copies); `config.data.cache_dtype = "float16"` halves that (relative precision
   2**-11, ~66 dB SNR). It is incremental (a later run, or another split setting, only degrades what is
   missing) and runs in `config.data.workers` processes. Unreadable, empty and silent files leave a small
   `.skip` marker, get one warning line each (also on later runs) and a summary.
   The cache is read back with `np.load(mmap_mode="r")`, so grain's worker processes share the page cache
   instead of holding copies, and a window read is a copy of 2 x window samples.

   Why a cache rather than degrading on the fly: a chain (soxr, reverb convolution) costs far more than a
   window read, the degradation of a file is fixed per run seed anyway, and the window index of the whole
   split must be known up front for a global shuffle.

2. windows: the windows of a split are the (pair, offset) pairs of `windows.num_windows` (the last window
   of a file zero-padded, as `windows.split` does); training takes `config.data.stride`, evaluation
   `config.data.eval_stride`.

Training (`train_dataset` / `train_iterator`): the split's files are sharded by JAX process (file i goes to
process i % process_count), then a grain MapDataset over the window index of this process's pairs (all
copies) -> shuffle (a seed from config.seed and config.data.shuffle_seed; every epoch reshuffled) -> repeat
forever -> read the window pair -> batch of the per-process batch size (config.train.batch_size //
process_count) -> grain worker processes (config.data.workers; 0 = threads in this process). Batches:
{"input": (B, W, 1), "target": (B, W, 1)} float32. The iterator is grain's `DatasetIterator`: `get_state()` /
`set_state()` (a JSON-able dict), or `grain.checkpoint.CheckpointSave(iterator)` / `CheckpointRestore(iterator)`
inside an orbax checkpoint; a restored iterator gives exactly the batches the saved one would have given next.

Evaluation (`eval_batches`): every process prepares the whole (small) split and takes, from each global
batch of batch_size * process_count consecutive windows, its own batch_size; unshuffled, finite, the same
number of batches on every process; padding windows (zeros) in the last batch have "mask" 0, all others 1,
so every window is evaluated exactly once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import multiprocessing
import os
import re
import threading
import time
from collections.abc import Iterator

import grain
import numpy as np
from absl import flags, logging

from sr_jax.data import datasets, sources, windows

# `sr_jax.data.degrade` (scipy.signal, ~1-2 s to import) is imported inside the functions that degrade:
# grain's spawned worker processes import this module to unpickle `WindowSource` and never degrade.
from sr_jax.errors import UserError

CACHE_VERSION = 1  # bump when the cached pair format or the degradation changes meaning
_OPEN_LOCK = threading.Lock()
CACHE_DTYPES = ("float32", "float16")  # config.data.cache_dtype: float16 halves the cache (~66 dB SNR)


# ----- prepare: degrade each file once, cache the pair -----------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Prepared:
  """The cached pairs of a list of files: .npy paths (2, frames), file keys and lengths (skipped files
  are left out), plus what was skipped."""

  paths: tuple[str, ...]
  keys: tuple[str, ...]
  lengths: tuple[int, ...]
  counter: datasets.SkipCounter


def resolve_cache_dir(config, workdir: str) -> str:
  """config.data.cache_dir, or <workdir>/data_cache when it is empty."""
  folder = config.data.cache_dir or os.path.join(workdir, "data_cache")
  return os.path.abspath(os.path.expanduser(folder))


def target_rate(config) -> int:
  """The rate the clean audio is read at: config.data.rate, which a `sample LOW HIGH` step must match."""
  from sr_jax.data import degrade

  rate = config.data.rate
  high = degrade.chain_rates(config.data.chain)[1]
  if high is not None and high != rate:
    raise UserError(f"data.chain {config.data.chain!r} makes {high} Hz targets but data.rate is {rate} Hz: "
                    "make the sample step's HIGH equal to data.rate")
  return rate


def prepare(config, files: list[str], root: str, cache_dir: str, workers: int | None = None,
            what: str = "", run_seed: int | None = None, copies: int = 1,
            gain_db: tuple[float, float] = (0.0, 0.0)) -> Prepared:
  """Degrades and caches the pairs not cached yet (in `workers` processes, default config.data.workers);
  returns the cached pairs of all usable `files`, in order: `copies` pairs per file, file by file. Logs one
  warning per skipped file and a summary.

  Copy k of a file is degraded with the seed `degrade.file_seed(run_seed, key)` for k = 0 and
  `file_seed(run_seed, f"{key}#{k}")` for k > 0 (`run_seed` default config.seed), so a chain with random steps
  gives each copy another degradation; its key in `Prepared.keys` is the seed's. A `gain_db` range other than
  (0, 0) scales each copy's clean audio by a gain drawn from it (`copy_gain`) before it is degraded: target and
  input alike, so a chain's SNRs stay relative to the signal. Copy 0 without gain is the pair and cache file of a
  run without copies.
  """
  from sr_jax.data import degrade

  rate = target_rate(config)
  chain = ",".join(str(s) for s in degrade.parse_chain(degrade.with_data_root(config.data.chain, root)))
  upsample = config.data.upsample
  silence_db = config.data.silence_db
  dtype = config.data.cache_dtype
  if dtype not in CACHE_DTYPES:
    raise UserError(f"data.cache_dtype {dtype!r} must be one of {', '.join(CACHE_DTYPES)}")
  copies, gain_db = check_copies(copies), check_gain(gain_db)
  target_phase = bool(config.data.target_phase)
  run_seed = config.seed if run_seed is None else run_seed
  folder = os.path.join(cache_dir, "pairs")
  os.makedirs(folder, exist_ok=True)
  jobs = []  # (path, [(cache file, copy key, seed), ...] one per copy, rate, chain, upsample, silence_db, dtype, gain,
  #          target_phase)
  for path in files:
    key = datasets.file_key(path, root)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.basename(key))[-40:]
    outs = []
    for k in range(copies):
      copy_key = key if k == 0 else f"{key}#{k}"
      seed = degrade.file_seed(run_seed, copy_key)
      params = (CACHE_VERSION, datasets.file_identity(path), chain, rate, upsample, seed, silence_db, dtype)
      if gain_db != (0.0, 0.0):
        params += (("gain_db",) + gain_db,)
      if target_phase:
        params += ("target_phase",)
      digest = hashlib.sha1(repr(params).encode()).hexdigest()[:20]
      outs.append((os.path.join(folder, f"{name}-{digest}.npy"), copy_key, seed))
    jobs.append((path, outs, rate, chain, upsample, silence_db, dtype, gain_db, target_phase))
  workers = config.data.workers if workers is None else workers
  todo = []
  for job in jobs:
    missing = [o for o in job[1] if not (os.path.exists(o[0]) or os.path.exists(_skip_path(o[0])))]
    if missing:
      todo.append((job[0], missing) + job[2:])
  if todo:
    pairs = sum(len(job[1]) for job in todo)
    logging.info("degrading %d of %d %s files%s into %s (%d workers)", len(todo), len(jobs), what,
                 f" ({pairs} pairs, {copies} copies each)" if copies > 1 else "", folder, workers)
    start, every = time.time(), max(1, len(todo) // 10)
    pool = multiprocessing.get_context("spawn").Pool(min(workers, len(todo))) if workers > 0 and len(todo) > 1 else None
    try:
      for done, _ in enumerate(pool.imap_unordered(_prepare_one, todo) if pool else map(_prepare_one, todo), 1):
        if done % every == 0 or done == len(todo):
          logging.info("degraded %d/%d files (%.1f s)", done, len(todo), time.time() - start)
    finally:
      if pool:
        pool.close()
        pool.join()
  counter = datasets.SkipCounter()
  paths, keys, lengths = [], [], []
  for job in jobs:
    for k, (out, copy_key, _) in enumerate(job[1]):
      length, reason, detail = _cached(out)
      if k == 0:  # a file's copies are skipped together (the silence test comes before any gain)
        counter.add(reason)
        if reason is not None:
          logging.warning("skipping %s: %s", job[0], detail)
      if reason is None:
        paths.append(out)
        keys.append(copy_key)
        lengths.append(length)
  counter.log(f"{what} files" if what else "files")
  return Prepared(tuple(paths), tuple(keys), tuple(lengths), counter)


def check_copies(copies) -> int:
  """data.copies as an int >= 1, else a `UserError`."""
  if isinstance(copies, bool) or not isinstance(copies, (int, np.integer)) or copies < 1:
    raise UserError(f"data.copies must be an integer >= 1 (degraded pairs per training file), got {copies!r}")
  return int(copies)


def check_gain(gain_db) -> tuple[float, float]:
  """data.gain_db as a (low, high) pair of floats with low <= high, else a `UserError`."""
  try:
    low, high = (float(g) for g in gain_db)
  except (TypeError, ValueError):
    low = high = None
  if low is None or not np.isfinite([low, high]).all() or low > high:
    raise UserError(f"data.gain_db must be a range (low, high) in dB with low <= high, e.g. (-12.0, 0.0); "
                    f"got {gain_db!r}")
  return low, high


def copy_gain(seed: int, gain_db: tuple[float, float]) -> float:
  """The linear gain of the copy degraded with `seed`: 10^(g / 20), g uniform in gain_db from
  `np.random.default_rng(degrade.file_seed(seed, "gain"))` (a stream of its own: the chain's steps draw from
  `default_rng([seed, step])`); exactly 1.0 for (0, 0)."""
  from sr_jax.data import degrade

  low, high = gain_db
  if low == high == 0.0:
    return 1.0
  db = np.random.default_rng(degrade.file_seed(seed, "gain")).uniform(low, high)
  return float(10.0 ** (db / 20.0))


def _prepare_one(job: tuple) -> None:
  """Reads one file once, degrades and caches each of its missing copies (or writes their .skip markers). Runs in a
  worker process."""
  from sr_jax.data import degrade

  path, outs, rate, chain, upsample, silence_db, dtype, gain_db, target_phase = job
  clean, reason, detail = sources.read_checked(path, rate, silence_db)
  for out, _, seed in outs:
    if reason is not None:
      _write_atomic(_skip_path(out), lambda f: f.write(f"{reason}\t{detail}".encode()))
      continue
    gain = copy_gain(seed, gain_db)
    audio = clean if gain == 1.0 else (clean * np.float32(gain)).astype(np.float32)
    inp, target, _ = degrade.degrade(audio, rate, chain, seed, upsample=upsample, target_phase=target_phase)
    pair = np.stack([inp, target]).astype(dtype, copy=False)
    _write_atomic(out, lambda f, pair=pair: np.save(f, pair))


def _skip_path(npy_path: str) -> str:
  return npy_path[:-len(".npy")] + ".skip"


def _write_atomic(path: str, write) -> None:
  """Calls write(binary file) on a temporary file next to `path`, then renames it to `path`."""
  tmp = f"{path}.{os.getpid()}.tmp"
  try:
    with open(tmp, "wb") as f:
      write(f)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def _cached(npy_path: str) -> tuple[int | None, str | None, str]:
  """(frames, None, '') of a cached pair, or (None, reason, detail) from its .skip marker."""
  if os.path.exists(npy_path):
    return int(np.load(npy_path, mmap_mode="r").shape[1]), None, ""
  with open(_skip_path(npy_path), encoding="utf-8") as f:
    reason, detail = f.read().split("\t", 1)
  return None, reason, detail


# ----- windows -----------------------------------------------------------------------------------------------


class WindowSource:
  """Random access to the windows of cached pairs: item i -> {"input", "target"} (window, 1) float32.

  Window i is (file, offset) in file order, offsets 0, stride, 2 * stride, ... (`windows.num_windows` of
  them per file); the last window of a file is zero-padded. The .npy files are memory-mapped here, and again
  in each grain worker process (the object pickles without them). Opening goes through a lock: np.load
  parses the .npy header with `ast.literal_eval`, which CPython 3.11 < 3.11.8 cannot run in two threads at
  once ("SystemError: AST constructor recursion depth mismatch"), and grain reads in threads.
  """

  def __init__(self, paths, lengths, window: int, stride: int):
    self.paths, self.window, self.stride = tuple(paths), int(window), int(stride)
    counts = [windows.num_windows(n, self.window, self.stride) for n in lengths]
    self.starts = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])  # first window of each file
    self._arrays: list[np.ndarray] | None = None
    self._open()

  def _open(self) -> list[np.ndarray]:
    if self._arrays is None:
      with _OPEN_LOCK:
        if self._arrays is None:
          self._arrays = [np.load(p, mmap_mode="r") for p in self.paths]
    return self._arrays

  def __len__(self) -> int:
    return int(self.starts[-1])

  def locate(self, index: int) -> tuple[int, int]:
    """(file number, offset in samples) of window `index`."""
    if not 0 <= index < len(self):
      raise IndexError(f"window {index} out of range 0..{len(self) - 1}")
    f = int(np.searchsorted(self.starts, index, side="right")) - 1
    return f, int(index - self.starts[f]) * self.stride

  def pair(self, index: int) -> np.ndarray:
    """Window `index` as a (2, window) float32 array (input, target)."""
    f, offset = self.locate(int(index))
    piece = self._open()[f][:, offset:offset + self.window]
    if piece.shape[1] < self.window:
      piece = np.pad(piece, ((0, 0), (0, self.window - piece.shape[1])))
    return np.array(piece, np.float32)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    p = self.pair(index)
    return {"input": p[0, :, None], "target": p[1, :, None]}

  def __getstate__(self):
    return dict(self.__dict__, _arrays=None)


# ----- training -----------------------------------------------------------------------------------------------


def _process(process_index: int | None, process_count: int | None) -> tuple[int, int]:
  if process_index is None or process_count is None:
    import jax  # lazy: grain's worker processes import this module and need no jax

    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index {process_index} out of range for process_count {process_count}")
  return process_index, process_count


def per_process_batch(config, process_count: int) -> int:
  """config.train.batch_size // process_count; the global batch must split evenly over processes."""
  batch = config.train.batch_size
  if batch <= 0 or batch % process_count:
    raise UserError(f"train.batch_size {batch} must be a positive multiple of the number of processes "
                    f"({process_count})")
  return batch // process_count


def shard_files(files: list[str], process_index: int, process_count: int) -> list[str]:
  """This process's share of `files`: every process_count-th file from process_index on."""
  return list(files[process_index::process_count])


def split_files(config, split: str) -> tuple[list[str], str]:
  """(files of `split`, data root) for config.data; a split without files is a `UserError`."""
  files = sources.list_files(config.data)[split]
  if not files:
    raise UserError(f"the {split} split of data.source={config.data.source!r} (data.dir={config.data.dir!r}) has "
                    "no files: add files, or change data.split / the train/valid/test subfolders")
  return files, sources.data_root(config.data)


def eval_seed(config) -> int:
  """The run seed of the validation/test degradations: config.data.eval_seed (default 0), not config.seed,
  so runs with different seeds are evaluated on the same degraded inputs."""
  return int(config.data.eval_seed)


def shuffle_seed(config) -> int:
  """The grain shuffle seed (32 bits) from config.seed and config.data.shuffle_seed."""
  from sr_jax.data import degrade

  return degrade.file_seed(config.seed, f"shuffle:{config.data.shuffle_seed}") % 2**32


def train_dataset(config, workdir: str, process_index: int | None = None,
                  process_count: int | None = None) -> grain.IterDataset:
  """The infinite, shuffled training batches of this process as a grain IterDataset (see module docstring).
  The cache is `resolve_cache_dir(config, workdir)`."""
  process_index, process_count = _process(process_index, process_count)
  batch = per_process_batch(config, process_count)
  files, root = split_files(config, "train")
  if len(files) < process_count:
    raise UserError(f"{len(files)} training files cannot be shared by {process_count} processes: each needs "
                    "at least one")
  shard = shard_files(files, process_index, process_count)
  prepared = prepare(config, shard, root, resolve_cache_dir(config, workdir), what="train",
                     copies=config.data.copies, gain_db=config.data.gain_db)
  if not prepared.paths:
    raise UserError(f"no usable training files in this process's shard ({prepared.counter.summary()})")
  source = WindowSource(prepared.paths, prepared.lengths, config.data.window, config.data.stride)
  ds = grain.MapDataset.source(source).shuffle(seed=shuffle_seed(config)).repeat(None)
  ds = ds.batch(batch, drop_remainder=True)
  workers = config.data.workers
  it_ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=4))
  if workers > 0:
    if not flags.FLAGS.is_parsed():  # grain's multiprocessing reads its absl flags (defaults outside an absl app)
      flags.FLAGS.mark_as_parsed()
    it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers, per_worker_buffer_size=2))
  return it_ds


def train_iterator(config, workdir: str, process_index: int | None = None,
                   process_count: int | None = None) -> grain.DatasetIterator:
  """A checkpointable iterator over `train_dataset`: save `it.get_state()` (or grain.checkpoint.CheckpointSave(it)
  in orbax) and `set_state` it on a fresh iterator to continue with exactly the same batches."""
  return iter(train_dataset(config, workdir, process_index, process_count))


# ----- evaluation ---------------------------------------------------------------------------------------------


class EvalBatches:
  """The deterministic, finite batches of one split for this process; iterable again and again.

  Batches: {"input", "target": (B, W, 1) float32, "mask": (B,) float32}; `len()` batches on every process;
  over all processes each window (stride config.data.eval_stride) appears exactly once with mask 1. Window
  `indices[j]` comes from file `keys[f]` at sample `offset`, (f, offset) = `source.locate(indices[j])`.
  """

  def __init__(self, source: WindowSource, batch: int, process_index: int, process_count: int,
               indices: np.ndarray | None = None, keys: tuple[str, ...] = (), baseline: WindowSource | None = None):
    self.source, self.batch, self.keys = source, batch, keys  # keys[f]: the file key of source file f
    self.baseline = baseline
    self.process_index, self.process_count = process_index, process_count
    self.indices = np.arange(len(source)) if indices is None else np.asarray(indices)
    self.num_windows = len(self.indices)

  def __len__(self) -> int:
    return -(-self.num_windows // (self.batch * self.process_count))

  def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
    width = self.source.window
    for b in range(len(self)):
      start = (b * self.process_count + self.process_index) * self.batch
      chosen = self.indices[start:start + self.batch]
      pairs = np.zeros((self.batch, 2, width), np.float32)
      for row, index in enumerate(chosen):
        pairs[row] = self.source.pair(index)
      mask = (np.arange(self.batch) < len(chosen)).astype(np.float32)
      out = {"input": pairs[:, 0, :, None], "target": pairs[:, 1, :, None], "mask": mask}
      if self.baseline is not None:  # the same windows of the input made with another upsampling (e.g. cubic)
        base = np.zeros((self.batch, width, 1), np.float32)
        for row, index in enumerate(chosen):
          base[row, :, 0] = self.baseline.pair(index)[0]
        out["baseline"] = base
      yield out


def eval_batches(config, split: str, workdir: str, process_index: int | None = None,
                 process_count: int | None = None, batch_size: int | None = None,
                 max_batches: int | None = None, baseline_upsample: str | None = None) -> EvalBatches:
  """Validation/test batches of `split` ("valid" or "test"); see `EvalBatches`.

  batch_size: per process (default the training one, config.train.batch_size // process_count).
  max_batches: if set and the split has more windows, `max_batches` global batches of windows evenly spread
  over the split (deterministic) instead of all of them.
  baseline_upsample: also give each batch a "baseline" (B, W, 1): the same windows of the input degraded with this
  upsampling method instead (e.g. "cubic": Kuleshov et al.'s spline baseline), same seeds.
  """
  process_index, process_count = _process(process_index, process_count)
  batch = batch_size or per_process_batch(config, process_count)
  files, root = split_files(config, split)
  prepared = prepare(config, files, root, resolve_cache_dir(config, workdir), what=split,
                     run_seed=eval_seed(config))
  if not prepared.paths:
    raise UserError(f"no usable files in the {split} split ({prepared.counter.summary()})")
  source = WindowSource(prepared.paths, prepared.lengths, config.data.window, config.data.eval_stride)
  baseline = None
  if baseline_upsample:
    other = config.copy_and_resolve_references()
    other.data.upsample = baseline_upsample
    base = prepare(other, files, root, resolve_cache_dir(config, workdir), what=f"{split} ({baseline_upsample})",
                   run_seed=eval_seed(config))
    if base.lengths != prepared.lengths:
      raise UserError(f"the {baseline_upsample} baseline of the {split} split does not match its files")
    baseline = WindowSource(base.paths, base.lengths, config.data.window, config.data.eval_stride)
  indices = None
  if max_batches and len(source) > max_batches * batch * process_count:
    indices = np.unique(np.linspace(0, len(source) - 1, max_batches * batch * process_count).round().astype(int))
  return EvalBatches(source, batch, process_index, process_count, indices, prepared.keys, baseline)


# ----- throughput ---------------------------------------------------------------------------------------------


def pipeline_throughput(config, workdir: str, num_batches: int = 50, warmup: int = 5) -> dict[str, float]:
  """Times the training pipeline of `config` after `warmup` batches (worker start-up excluded):
  {"batches_per_s", "windows_per_s", "samples_per_s"} with samples = windows * window length."""
  it = train_iterator(config, workdir, 0, 1)
  try:
    for _ in range(warmup):
      next(it)
    start = time.perf_counter()
    for _ in range(num_batches):
      batch = next(it)
    seconds = time.perf_counter() - start
  finally:
    close = getattr(it, "close", None)
    if close:
      close()
  b, w = batch["input"].shape[:2]
  return {"batches_per_s": num_batches / seconds, "windows_per_s": num_batches * b / seconds,
          "samples_per_s": num_batches * b * w / seconds}
