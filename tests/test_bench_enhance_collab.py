"""bench/enhance.py and bench/collab.py: the block-wise test-file writer, the subprocess measurement, the target lines,
and the collaborative-sampling rows (exactly K iterations, temp memory the same for every K) at a tiny size."""

import os
import sys

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import collab, enhance  # noqa: E402  (bench/ is a namespace package: no __init__.py)
from sr_jax.enhance import geometry  # noqa: E402
from sr_jax.errors import UserError  # noqa: E402
from sr_jax.train.checkpoint import restore_config, restore_for_inference  # noqa: E402

TINY = "loss.lambda_adv=0.01,depth=1,width=0.0625,window=256,data.stride=128,data.eval_stride=256,collab.layer=1"


# ----- bench/enhance.py -------------------------------------------------------------------------------------------


def test_signal_blocks_repeat_the_loop_in_bounded_blocks():
  loop = np.arange(7, dtype=np.float32)
  blocks = list(enhance.signal_blocks(20, loop, 6))
  assert [len(b) for b in blocks] == [6, 6, 6, 2]
  np.testing.assert_array_equal(np.concatenate(blocks), np.resize(loop, 20))
  assert [len(b) for b in enhance.signal_blocks(12, loop, 6)] == [6, 6]


def test_write_signal_writes_the_requested_frames(tmp_path):
  path = str(tmp_path / "noise.wav")
  assert enhance.write_signal(path, 1.3, 4000, "noise", block_frames=1000) == 5200
  info = sf.info(path)
  assert (info.frames, info.samplerate, info.channels, info.subtype) == (5200, 4000, 1, "PCM_16")
  audio, _ = sf.read(path, dtype="float32")
  np.testing.assert_allclose(audio, np.resize(enhance.segment(4000, "noise"), 5200), atol=1 / 32768)


def test_piano_segment_is_a_loud_loop_of_the_requested_length():
  x = enhance.segment(4000, "piano", seconds=2.0)
  assert x.shape == (8000,) and x.dtype == np.float32
  assert 0.8 < np.abs(x).max() <= 1.0  # peak -1 dBFS
  assert np.sqrt(np.mean(x[:4000] ** 2)) > 0.01  # notes, not silence
  assert x[-1] == 0.0  # faded out: the loop restarts without a click


def _rows(rtf_plain, rss, rtf_collab=1.0):
  return [{"minutes": m, "collab": c, "realtime_factor": rtf_collab if c else rtf_plain, "peak_rss_mb": r}
          for m, r in zip((1, 60), rss) for c in (False, True)]


def test_enhance_target_lines():
  good = enhance.target_lines(_rows(25.0, (500.0, 540.0)))
  assert len(good) == 2 and good[0].startswith("plain") and good[1].startswith("collab")
  assert "OK target >= 20" in good[0] and "+8.0% (OK" in good[0]
  bad = enhance.target_lines(_rows(19.0, (500.0, 560.0)))
  assert "BELOW target >= 20" in bad[0] and "+12.0% (ABOVE" in bad[0]
  assert "target >= 20" not in bad[1]  # the realtime target is for the plain model only
  assert "peak RSS" not in enhance.target_lines(_rows(25.0, (500.0, 540.0))[:2])[0]  # one length: no growth


def test_enhance_flag_parsers():
  assert enhance.parse_bools(["false", "True"]) == [False, True]
  assert enhance.parse_minutes(["1", "0.5"]) == [1.0, 0.5]
  for bad in (["maybe"], []):
    with pytest.raises(UserError, match="--collab"):
      enhance.parse_bools(bad)
  for bad in (["0"], ["x"]):
    with pytest.raises(UserError, match="--minutes"):
      enhance.parse_minutes(bad)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
  return enhance.make_checkpoint(str(tmp_path_factory.mktemp("bench_run")), TINY)


def test_make_checkpoint_saves_generator_and_discriminator(checkpoint):
  config, nets = restore_for_inference(checkpoint, parts=("gen", "disc"))
  assert (config.model.depth, config.data.window, config.model.width) == (1, 256, 0.0625)
  assert restore_config(checkpoint).loss.lambda_adv == 0.01
  assert nets["gen"]["params"] and nets["disc"]["params"]


def test_measure_in_subprocess_plain_and_collab(checkpoint, tmp_path):
  src, warm = str(tmp_path / "src.wav"), str(tmp_path / "warm.wav")
  enhance.write_signal(src, 0.5, 16000, "noise")
  enhance.write_signal(warm, 0.2, 16000, "noise")
  for is_collab in (False, True):
    r = enhance.measure_in_subprocess(checkpoint, src, warm, is_collab, batch=16, max_steps=1)
    assert r["collab"] is is_collab and r["seconds"] == 0.5 and r["frames_out"] == 8000
    assert r["realtime_factor"] == pytest.approx(0.5 / r["elapsed_s"])
    assert r["warmup_s"] > 0
    assert 100 < r["peak_rss_mb"] < 4000  # a process that imported jax, measured by its own rusage
    assert r["stride"] == 256  # the checkpoint's config.data.eval_stride
  r = enhance.measure_in_subprocess(checkpoint, src, warm, False, batch=16, stride=128)  # overlapped windows
  assert r["stride"] == 128 and r["frames_out"] == 8000
  r = enhance.measure_in_subprocess(checkpoint, src, warm, False, batch=16, window=1024)  # longer windows
  assert (r["window"], r["stride"], r["frames_out"]) == (1024, 1024, 8000)
  assert sorted(os.listdir(tmp_path)) == ["src.wav", "warm.wav"]  # the outputs are removed


def test_geometry_checks_the_flags_against_the_window(checkpoint):
  """What bench/enhance.py checks --stride and --window with before any file is made."""
  config = restore_config(checkpoint)  # depth 1, window 256, eval_stride 256
  assert geometry(config) == (256, 256) and geometry(config, stride=192) == (256, 192)
  assert geometry(config, 1024) == (1024, 1024)  # the overlap fraction of the config (none)
  with pytest.raises(UserError, match="stride must be a positive integer"):
    geometry(config, stride=0)
  with pytest.raises(UserError, match=r"stride \(512\) must not exceed the model's window \(256 samples"):
    geometry(config, stride=512)
  with pytest.raises(UserError, match="window 1002 does not fit a depth-1 network"):  # a multiple of 4
    geometry(config, 1002)


def test_measure_in_subprocess_reports_the_child_error(tmp_path):
  src = str(tmp_path / "src.wav")
  enhance.write_signal(src, 0.1, 16000, "noise")
  with pytest.raises(UserError, match="no checkpoint"):
    enhance.measure_in_subprocess(str(tmp_path / "missing"), src, src, False)


# ----- bench/collab.py --------------------------------------------------------------------------------------------


def test_ratio_and_bound():
  assert collab.ratio_and_bound(3, 0.8, 0.2) == {"ratio": pytest.approx(4.0), "bound": 4, "within": True}
  assert collab.ratio_and_bound(0, 0.3, 0.2) == {"ratio": pytest.approx(1.5), "bound": 1, "within": False}
  assert collab.ratio_and_bound(0, 0.204, 0.2)["within"] and not collab.ratio_and_bound(0, 0.212, 0.2)["within"]
  assert collab.parse_ks(["10", "0", "1", "1"]) == [0, 1, 10]
  with pytest.raises(UserError, match="--k"):
    collab.parse_ks(["-1"])


def test_collab_rows_run_exactly_k_iterations_in_flat_memory():
  config = collab.make_config(depth=2, width=1 / 16, window=64, layer=1)
  rows = collab.measure(config, [0, 1, 3], batch=2, repeats=1)
  assert [r["name"] for r in rows] == ["G forward", "forward+backward", "K=0", "K=1", "K=3"]
  fwd_bwd = rows[1]["time_s"]
  for r in rows[2:]:
    assert {"name", "k", "time_s", "fwd_bwd_s", "ratio", "bound", "temp_mb", "rss_mb"} <= set(r)
    assert r["iterations"] == r["k"] and r["bound"] == r["k"] + 1
    assert r["fwd_bwd_s"] == fwd_bwd and r["ratio"] == pytest.approx(r["time_s"] / fwd_bwd)
  by_k = {r["k"]: r for r in rows[2:]}
  assert by_k[3]["temp_mb"] == by_k[1]["temp_mb"] > 0  # (that the iterations run: "iterations" above, not timing,
  # which a loaded machine can invert at this tiny size)
  lines = collab.target_lines(rows)
  assert "the same for every K" in lines[1]
  assert "NOT flat" in collab.target_lines(rows[:-1] + [{**rows[-1], "temp_mb": 99.0}])[1]
  slow = collab.target_lines([{**r, "within": r.get("k") != 3} for r in rows])[0]
  assert slow.startswith("time: ABOVE the bound for K=3 (") and "K=0" not in slow
