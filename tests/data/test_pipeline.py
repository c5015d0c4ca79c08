"""Tests of sr_jax.data.pipeline: degraded-pair cache, grain training batches, checkpointing, eval batches."""

from __future__ import annotations

import collections
import json
import logging
import os

import grain
import numpy as np
import pytest
import soundfile as sf
from etils import epath

from configs.default import get_config
from sr_jax.data import datasets, degrade, pipeline, sources, windows
from sr_jax.errors import UserError

RATE, WINDOW, STRIDE, EVAL_STRIDE = 16000, 512, 256, 384
CHAIN = "sample 4000 16000,whitenoise 0.0001 0.01"  # seeded: the per-file seeds matter


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  """train: 6 files (+ 1 silent), valid: 2, test: 1; band-limited noise of different lengths at 16/8 kHz."""
  root = tmp_path_factory.mktemp("pipeline_audio")
  rng = np.random.default_rng(1)
  lengths = {"train": [3000, 2600, 4100, 512, 300, 3333], "valid": [2000, 2900], "test": [1500]}
  for split, ns in lengths.items():
    os.makedirs(root / split)
    for i, n in enumerate(ns):
      rate = 8000 if i == 1 else RATE  # one file is resampled on reading
      sf.write(str(root / split / f"{split}{i}.wav"), (0.1 * rng.standard_normal(n)).astype(np.float32), rate,
               subtype="FLOAT")
  sf.write(str(root / "train" / "zz_silent.wav"), np.zeros(2000, np.float32), RATE)
  return str(root)


def _config(folder, **data):
  c = get_config()
  c.data.source, c.data.dir, c.data.rate, c.data.chain = "folder", folder, RATE, CHAIN
  c.data.window, c.data.stride, c.data.eval_stride, c.data.workers = WINDOW, STRIDE, EVAL_STRIDE, 0
  c.train.batch_size = 4
  for k, v in data.items():
    c.data[k] = v
  return c


def _reference_pairs(config, paths, root, stride, run_seed=None):
  """(input, target) windows of `paths`, computed directly: load, degrade with the file seed, split."""
  run_seed = config.seed if run_seed is None else run_seed
  out = []
  for path in paths:
    clean = datasets.load_clean(path, RATE)
    if clean is None:
      continue
    key = datasets.file_key(path, root)
    inp, tgt, _ = degrade.degrade(clean, RATE, config.data.chain, degrade.file_seed(run_seed, key))
    for a, b in zip(windows.split(inp, WINDOW, stride), windows.split(tgt, WINDOW, stride)):
      out.append((a, b))
  return out


def _rows(batch):
  return [(batch["input"][i, :, 0], batch["target"][i, :, 0]) for i in range(batch["input"].shape[0])]


def _key(pair):
  return pair[0].tobytes() + pair[1].tobytes()


def _assert_same(batches_a, batches_b):
  assert len(batches_a) == len(batches_b)
  for a, b in zip(batches_a, batches_b):
    assert a.keys() == b.keys()
    for k in a:
      np.testing.assert_array_equal(a[k], b[k])


def test_train_batches_first_epoch_is_a_shuffle_of_all_windows(folder, tmp_path):
  config = _config(folder)
  files = sources.list_files(config.data)["train"]
  reference = _reference_pairs(config, files, folder, STRIDE)
  it = pipeline.train_iterator(config, str(tmp_path), 0, 1)
  batches = [next(it) for _ in range(-(-len(reference) // 4) + 1)]
  for b in batches:
    assert set(b) == {"input", "target"}
    for k in b:
      assert b[k].shape == (4, WINDOW, 1) and b[k].dtype == np.float32
  rows = [r for b in batches for r in _rows(b)]
  first_epoch = collections.Counter(_key(r) for r in rows[:len(reference)])
  assert first_epoch == collections.Counter(_key(r) for r in reference)
  in_order = [_key(r) for r in reference]
  assert [_key(r) for r in rows[:len(reference)]] != in_order  # shuffled
  assert os.path.isdir(os.path.join(tmp_path, "data_cache", "pairs"))  # default cache dir: <workdir>/data_cache


def test_restored_iterator_continues_bit_exactly(folder, tmp_path):
  config = _config(folder)
  num_windows = len(_reference_pairs(config, sources.list_files(config.data)["train"], folder, STRIDE))
  it = pipeline.train_iterator(config, str(tmp_path), 0, 1)
  for _ in range(num_windows // 4 - 2):  # the batches after the saved state cross into the second epoch
    next(it)
  state = json.loads(json.dumps(it.get_state()))
  following = [next(it) for _ in range(6)]
  restored = pipeline.train_iterator(config, str(tmp_path), 0, 1)
  restored.set_state(state)
  _assert_same(following, [next(restored) for _ in range(6)])
  # A different shuffle seed gives different batches.
  other = pipeline.train_iterator(_config(folder, shuffle_seed=1), str(tmp_path), 0, 1)
  other.set_state(state)
  assert not np.array_equal(next(other)["input"], following[0]["input"])


def test_worker_processes_and_orbax_checkpoint_handler(folder, tmp_path):
  """workers=2 gives the batches of workers=0; grain's orbax handler saves and restores the iterator."""
  serial = pipeline.train_iterator(_config(folder), str(tmp_path), 0, 1)
  expected = [next(serial) for _ in range(8)]
  config = _config(folder, workers=2)
  it = pipeline.train_iterator(config, str(tmp_path), 0, 1)
  try:
    _assert_same(expected[:3], [next(it) for _ in range(3)])
    handler = grain.checkpoint.CheckpointHandler()
    ckpt = epath.Path(tmp_path / "ckpt")
    ckpt.mkdir()
    handler.save(ckpt, args=grain.checkpoint.CheckpointSave(it))
    assert list(os.listdir(ckpt)) == ["process_0-of-1.json"]
  finally:
    it.close()
  restored = pipeline.train_iterator(config, str(tmp_path), 0, 1)
  try:
    handler.restore(ckpt, args=grain.checkpoint.CheckpointRestore(restored))
    _assert_same(expected[3:], [next(restored) for _ in range(5)])
  finally:
    restored.close()


def test_process_shards_are_disjoint_and_cover_the_files(folder, tmp_path):
  config = _config(folder)
  config.train.batch_size = 6
  files = sources.list_files(config.data)["train"]
  shards = [pipeline.shard_files(files, p, 3) for p in range(3)]
  assert sorted(f for s in shards for f in s) == sorted(files)
  assert sum(len(s) for s in shards) == len(set(files))
  for p, shard in enumerate(shards):
    reference = collections.Counter(_key(r) for r in _reference_pairs(config, shard, folder, STRIDE))
    it = pipeline.train_iterator(config, str(tmp_path), p, 3)
    batches = [next(it) for _ in range(-(-sum(reference.values()) // 2))]
    assert all(b["input"].shape == (2, WINDOW, 1) for b in batches)  # per-process batch: 6 // 3
    rows = [r for b in batches for r in _rows(b)]
    assert collections.Counter(_key(r) for r in rows[:sum(reference.values())]) == reference
  with pytest.raises(UserError, match="multiple of the number of processes"):
    pipeline.train_iterator(config, str(tmp_path), 0, 4)
  with pytest.raises(UserError, match="cannot be shared by 9 processes"):
    config.train.batch_size = 9
    pipeline.train_iterator(config, str(tmp_path), 0, 9)


def test_eval_batches_cover_every_window_once_in_order(folder, tmp_path):
  config = _config(folder)
  files = sources.list_files(config.data)["valid"]
  reference = _reference_pairs(config, files, folder, EVAL_STRIDE)
  per_process = [pipeline.eval_batches(config, "valid", str(tmp_path), p, 2, batch_size=3) for p in range(2)]
  assert len(per_process[0]) == len(per_process[1]) == -(-len(reference) // 6)
  batches = [list(ev) for ev in per_process]
  _assert_same(batches[0], list(per_process[0]))  # deterministic, iterable again
  gathered = []
  for b in range(len(batches[0])):
    for p in range(2):
      batch = batches[p][b]
      assert batch["input"].shape == (3, WINDOW, 1) and batch["mask"].shape == (3,)
      assert batch["mask"].dtype == np.float32
      for row, keep in zip(_rows(batch), batch["mask"]):
        if keep:
          gathered.append(row)
        else:
          assert not row[0].any() and not row[1].any()  # padding
  assert [_key(r) for r in gathered] == [_key(r) for r in reference]
  # max_batches: a deterministic subset spread over the whole split.
  few = pipeline.eval_batches(config, "valid", str(tmp_path), 0, 1, batch_size=2, max_batches=2)
  rows = [_key(r) for b in few for r, keep in zip(_rows(b), b["mask"]) if keep]
  assert len(rows) == 4 and rows[0] == _key(reference[0]) and rows[-1] == _key(reference[-1])
  with pytest.raises(UserError, match="the valid split .* has no files"):
    pipeline.eval_batches(_config(folder, max_files=0), "valid", str(tmp_path), 0, 1)


def test_cache_is_incremental_and_skips_are_reported_each_run(folder, tmp_path, caplog, monkeypatch):
  config = _config(folder, cache_dir=str(tmp_path / "cache"))
  files = sources.list_files(config.data)["train"]
  with caplog.at_level(logging.INFO):
    first = pipeline.prepare(config, files, folder, pipeline.resolve_cache_dir(config, "unused"), what="train")
  assert len(first.paths) == 6 and first.counter.summary() == "skipped 1 of 7 files: 1 silent"
  assert sum("skipping" in m and "zz_silent.wav: silent" in m for m in caplog.messages) == 1
  assert any("train files: skipped 1 of 7 files: 1 silent" in m for m in caplog.messages)
  lengths = [datasets.load_clean(f, RATE).shape[0] for f in files if "silent" not in f]
  assert list(first.lengths) == lengths
  caplog.clear()

  def fail(*args, **kwargs):
    raise AssertionError("degrade must not run for cached files")

  monkeypatch.setattr(degrade, "degrade", fail)
  with caplog.at_level(logging.WARNING):
    again = pipeline.prepare(config, files, folder, str(tmp_path / "cache"), what="train")
  assert again == first
  assert sum("zz_silent.wav: silent" in m for m in caplog.messages) == 1
  monkeypatch.undo()
  # Another chain: new cache entries, the old ones stay.
  config.data.chain = "sample 8000 16000"
  pipeline.prepare(config, files[:2], folder, str(tmp_path / "cache"), workers=2)
  assert len([n for n in os.listdir(tmp_path / "cache" / "pairs") if n.endswith(".npy")]) == 8


def test_chain_must_match_the_rate(folder, tmp_path):
  with pytest.raises(UserError, match="makes 22050 Hz targets but data.rate is 16000 Hz"):
    pipeline.train_iterator(_config(folder, chain="sample 8000 22050"), str(tmp_path), 0, 1)


def test_float16_cache_halves_the_pairs(folder, tmp_path):
  config = _config(folder, cache_dtype="float16")
  reference = _reference_pairs(config, sources.list_files(config.data)["test"], folder, EVAL_STRIDE)
  ev = pipeline.eval_batches(config, "test", str(tmp_path), 0, 1, batch_size=len(reference))
  (batch,) = list(ev)
  assert batch["input"].dtype == np.float32 and batch["mask"].all()
  for row, (a, b) in zip(_rows(batch), reference):
    np.testing.assert_array_equal(row[0], a.astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(row[1], b.astype(np.float16).astype(np.float32))
  (cached,) = [n for n in os.listdir(tmp_path / "data_cache" / "pairs") if n.endswith(".npy")]
  assert np.load(tmp_path / "data_cache" / "pairs" / cached, mmap_mode="r").dtype == np.float16
  with pytest.raises(UserError, match="data.cache_dtype 'int8'"):
    pipeline.eval_batches(_config(folder, cache_dtype="int8"), "test", str(tmp_path), 0, 1)


def test_seeds_train_with_the_run_seed_and_evaluate_with_the_eval_seed(folder, tmp_path):
  config = _config(folder)
  config.seed = 5
  files = sources.list_files(config.data)
  train_ref = _reference_pairs(config, files["train"], folder, STRIDE)
  assert {_key(r) for r in train_ref}.isdisjoint(_key(r) for r in _reference_pairs(config, files["train"], folder,
                                                                                     STRIDE, run_seed=0))
  it = pipeline.train_iterator(config, str(tmp_path), 0, 1)
  rows = [r for _ in range(-(-len(train_ref) // 4)) for r in _rows(next(it))]
  assert collections.Counter(_key(r) for r in rows[:len(train_ref)]) == collections.Counter(map(_key, train_ref))
  (batch,) = list(pipeline.eval_batches(config, "test", str(tmp_path), 0, 1, batch_size=16))
  test_ref = _reference_pairs(config, files["test"], folder, EVAL_STRIDE, run_seed=0)  # data.eval_seed = 0
  assert [_key(r) for r, keep in zip(_rows(batch), batch["mask"]) if keep] == [_key(r) for r in test_ref]


def test_a_mix_of_the_data_root_mixes_the_training_files(folder, tmp_path):
  """`mix {data}/train SNR`: the training data's own files are the interference (babble of other voices); the
  pairs equal degrade's with the folder written out."""
  config = _config(folder, chain="mix {data}/train 10")
  files = sources.list_files(config.data)
  written_out = _config(folder, chain=f"mix {os.path.join(folder, 'train')} 10")
  want = _reference_pairs(written_out, files["valid"], folder, EVAL_STRIDE, run_seed=0)
  (batch,) = list(pipeline.eval_batches(config, "valid", str(tmp_path), 0, 1, batch_size=32))
  got = [r for r, keep in zip(_rows(batch), batch["mask"]) if keep]
  assert [_key(r) for r in got] == [_key(r) for r in want]
  assert all(not np.array_equal(a, b) for a, b in got)  # something was mixed in


def test_eval_batches_spline_baseline_is_the_cubic_degradation_of_the_same_windows(folder, tmp_path):
  config = _config(folder)
  files = sources.list_files(config.data)["valid"]
  batches = list(pipeline.eval_batches(config, "valid", str(tmp_path), 0, 1, batch_size=3, baseline_upsample="cubic"))
  expected = []
  for path in files:
    clean = datasets.load_clean(path, RATE)
    key = datasets.file_key(path, folder)
    cubic, _, _ = degrade.degrade(clean, RATE, config.data.chain, degrade.file_seed(pipeline.eval_seed(config), key),
                                  upsample="cubic")
    expected.extend(windows.split(cubic, WINDOW, EVAL_STRIDE))
  got = [b["baseline"][i, :, 0] for b in batches for i in range(3) if b["mask"][i]]
  assert len(got) == len(expected) > 0
  for a, b in zip(got, expected):
    np.testing.assert_array_equal(a, b)
  assert not np.array_equal(got[0], batches[0]["input"][0, :, 0])  # soxr input differs from the spline


# ----- copies and gain ------------------------------------------------------------------------------------------

RANDOM_CHAIN = "sample 4000 16000,lowpass random 1000 3500,maybe 0.5 noise random 0 30"


def _digest_name(config, path, root, seed, gain_db=None, target_phase=False):
  """The documented cache file name, computed here: <basename>-<sha1 of the pair's parameters>[:20].npy."""
  import hashlib

  chain = ",".join(str(s) for s in degrade.parse_chain(config.data.chain))
  params = (pipeline.CACHE_VERSION, datasets.file_identity(path), chain, RATE, config.data.upsample, seed,
            config.data.silence_db, config.data.cache_dtype)
  if gain_db is not None:
    params += (("gain_db",) + tuple(float(g) for g in gain_db),)
  if target_phase:
    params += ("target_phase",)
  key = datasets.file_key(path, root)
  return f"{os.path.basename(key)}-{hashlib.sha1(repr(params).encode()).hexdigest()[:20]}.npy"


def test_cache_names_are_unchanged_without_copies_or_gain(folder, tmp_path):
  """copies=1 and no gain: the cache file of each file is named as before copies existed (same parameters hashed),
  so existing caches stay valid; copy k > 0 hashes the seed of '<key>#k'."""
  config = _config(folder)
  assert config.data.copies == 1 and tuple(config.data.gain_db) == (0.0, 0.0)
  files = [f for f in sources.list_files(config.data)["train"] if "silent" not in f]
  prepared = pipeline.prepare(config, files, folder, str(tmp_path / "one"), what="train",
                              copies=config.data.copies, gain_db=config.data.gain_db)
  seeds = [degrade.file_seed(config.seed, datasets.file_key(f, folder)) for f in files]
  assert [os.path.basename(p) for p in prepared.paths] == [_digest_name(config, f, folder, s)
                                                           for f, s in zip(files, seeds)]
  assert prepared.keys == tuple(datasets.file_key(f, folder) for f in files)
  two = pipeline.prepare(config, files, folder, str(tmp_path / "two"), copies=2)
  key1 = [degrade.file_seed(config.seed, datasets.file_key(f, folder) + "#1") for f in files]
  assert [os.path.basename(p) for p in two.paths] == [
      n for f, s, s1 in zip(files, seeds, key1) for n in (_digest_name(config, f, folder, s),
                                                            _digest_name(config, f, folder, s1))]
  gained = pipeline.prepare(config, files[:1], folder, str(tmp_path / "gain"), gain_db=(-6.0, 0.0))
  assert [os.path.basename(p) for p in gained.paths] == [_digest_name(config, files[0], folder, seeds[0], (-6, 0))]


def test_target_phase_pairs_hold_the_turned_target_under_their_own_name(folder, tmp_path):
  """data.target_phase: the pair's target row is degrade's turned target (its input row unchanged), cached under a
  name that hashes the setting too, so pairs with the clean target stay valid beside them."""
  config = _config(folder, chain="lowpass butter 3000")
  files = [f for f in sources.list_files(config.data)["train"] if "silent" not in f][:2]
  plain = pipeline.prepare(config, files, folder, str(tmp_path))
  config.data.target_phase = True
  turned = pipeline.prepare(config, files, folder, str(tmp_path))
  for f, p, t in zip(files, plain.paths, turned.paths):
    seed = degrade.file_seed(config.seed, datasets.file_key(f, folder))
    assert os.path.basename(t) == _digest_name(config, f, folder, seed, target_phase=True) != os.path.basename(p)
    x, target, _ = degrade.degrade(datasets.load_clean(f, RATE), RATE, config.data.chain, seed, target_phase=True)
    pair, clean_pair = np.load(t), np.load(p)
    np.testing.assert_array_equal(pair[0], clean_pair[0])
    np.testing.assert_array_equal(pair[1], target)
    assert np.sqrt(np.mean((pair[1] - clean_pair[1]) ** 2)) > 0.05 * np.sqrt(np.mean(clean_pair[1] ** 2))


def test_copies_degrade_each_training_file_k_ways(folder, tmp_path):
  """copies=3 with a random chain: 3 pairs per usable file, copy k degraded with the seed of '<key>#k' (checked
  against degrade.degrade directly), copy 0 the very bytes of copies=1, all inputs different, one target; the
  training windows are those of every copy; validation uses copy 0 only."""
  config = _config(folder, chain=RANDOM_CHAIN)
  files = sources.list_files(config.data)["train"]
  one = pipeline.prepare(config, files, folder, str(tmp_path / "one"))
  config.data.copies = 3
  three = pipeline.prepare(config, files, folder, str(tmp_path / "three"), copies=config.data.copies)
  usable = [f for f in files if "silent" not in f]
  assert len(three.paths) == 3 * len(usable) == 3 * len(one.paths)
  assert three.counter.summary() == one.counter.summary() == "skipped 1 of 7 files: 1 silent"
  assert list(three.lengths) == [n for n in one.lengths for _ in range(3)]
  for i, path in enumerate(usable):
    key = datasets.file_key(path, folder)
    assert three.keys[3 * i:3 * i + 3] == (key, f"{key}#1", f"{key}#2")
    pairs = [np.load(p) for p in three.paths[3 * i:3 * i + 3]]
    with open(one.paths[i], "rb") as a, open(three.paths[3 * i], "rb") as b:
      assert a.read() == b.read()  # copy 0: today's pair, byte for byte
    clean = datasets.load_clean(path, RATE)
    for k, pair in enumerate(pairs):
      seed = degrade.file_seed(config.seed, three.keys[3 * i + k])
      inp, tgt, _ = degrade.degrade(clean, RATE, RANDOM_CHAIN, seed)
      np.testing.assert_array_equal(pair, np.stack([inp, tgt]))
      np.testing.assert_array_equal(pair[1], pairs[0][1])  # no gain: one target
    assert all(not np.array_equal(pairs[a][0], pairs[b][0]) for a, b in ((0, 1), (0, 2), (1, 2)))
  # Training windows: every copy's.
  reference = []
  for path in three.paths:
    pair = np.load(path)
    reference += list(zip(windows.split(pair[0], WINDOW, STRIDE), windows.split(pair[1], WINDOW, STRIDE)))
  it = pipeline.train_iterator(config, str(tmp_path / "run"), 0, 1)
  rows = [r for _ in range(-(-len(reference) // 4)) for r in _rows(next(it))]
  assert collections.Counter(_key(r) for r in rows[:len(reference)]) == collections.Counter(map(_key, reference))
  # Validation: copy 0 (eval seed), as with copies=1.
  ev3 = list(pipeline.eval_batches(config, "valid", str(tmp_path / "run"), 0, 1, batch_size=4))
  config.data.copies = 1
  _assert_same(ev3, list(pipeline.eval_batches(config, "valid", str(tmp_path / "run1"), 0, 1, batch_size=4)))


def test_gain_scales_input_and_target_alike(folder, tmp_path):
  """gain_db: each copy's clean audio times one gain g = 10^(u / 20), u uniform in the range from the copy's own
  stream; the noise step's SNR is relative, so input and target both scale by g against the ungained pairs."""
  chain = "sample 4000 16000,noise white 10 30"
  config = _config(folder, chain=chain)
  files = [f for f in sources.list_files(config.data)["train"] if "silent" not in f]
  plain = pipeline.prepare(config, files, folder, str(tmp_path / "plain"), copies=2)
  gained = pipeline.prepare(config, files, folder, str(tmp_path / "gained"), copies=2, gain_db=(-12.0, -3.0))
  assert plain.keys == gained.keys and plain.lengths == gained.lengths
  gains, by_key = [], {datasets.file_key(f, folder): f for f in files}
  for key, a_path, b_path in zip(plain.keys, plain.paths, gained.paths):
    seed = degrade.file_seed(config.seed, key)
    g = 10.0 ** (np.random.default_rng(degrade.file_seed(seed, "gain")).uniform(-12.0, -3.0) / 20.0)
    gains.append(g)
    a, b = np.load(a_path), np.load(b_path)
    np.testing.assert_allclose(b[1], g * a[1], rtol=1e-5, atol=1e-7)  # target
    np.testing.assert_allclose(b[0], g * a[0], rtol=1e-4, atol=1e-6)  # input: same gain, noise relative to it
    clean = datasets.load_clean(by_key[key.split("#")[0]], RATE)
    inp, tgt, _ = degrade.degrade(clean * np.float32(g), RATE, chain, seed)
    np.testing.assert_array_equal(b, np.stack([inp, tgt]))
  assert len(set(gains)) == len(gains) and all(10 ** (-12 / 20) <= g <= 10 ** (-3 / 20) for g in gains)
  config.data.gain_db = (-12.0, -3.0)
  (batch,) = list(pipeline.eval_batches(config, "test", str(tmp_path / "run"), 0, 1, batch_size=16))
  config.data.gain_db = (0.0, 0.0)
  _assert_same([batch], list(pipeline.eval_batches(config, "test", str(tmp_path / "run0"), 0, 1, batch_size=16)))


@pytest.mark.parametrize("data, message", [
    (dict(copies=0), "data.copies must be an integer >= 1"),
    (dict(gain_db=(0.0, -6.0)), "data.gain_db must be a range"),
    (dict(gain_db=(1.0,)), "data.gain_db must be a range"),
])
def test_bad_copies_and_gain_are_user_errors(folder, tmp_path, data, message):
  with pytest.raises(UserError, match=message):
    pipeline.train_iterator(_config(folder, **data), str(tmp_path), 0, 1)
