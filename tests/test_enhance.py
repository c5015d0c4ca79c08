"""sr_jax.enhance: streaming enhancement of files of any rate/channels/length, and its in-memory twin.

One tiny model is trained (4 steps) once per session and shared with tests/test_enhance_cli.py.
"""

import os
import shutil

import jax
import numpy as np
import pytest
import soundfile as sf
import soxr

from sr_jax import enhance
from sr_jax.data import windows as windows_lib
from sr_jax.errors import UserError

# ----- shared fixtures (also used by tests/test_enhance_cli.py) -------------------------------------------------------


def trained_run(tmp_path_factory) -> str:
  """The workdir of the tiny config trained for 4 steps, made once per session (in the session's base temp)."""
  root = tmp_path_factory.getbasetemp() / "enhance_tiny"
  workdir = root / "run"
  if not (root / "DONE").exists():
    from configs import tiny
    from sr_jax.data import corpus
    from sr_jax.train import train_and_evaluate

    shutil.rmtree(root, ignore_errors=True)
    corpus.build_tiny_corpus(str(root / "corpus"))
    c = tiny.get_config()
    c.data.dir = str(root / "corpus")
    c.train.num_steps = c.checkpoint.every = c.train.eval_every = c.log.audio_every = c.train.log_every = 4
    c.train.eval_batches = 1
    c.log.tensorboard = c.log.progress = False
    train_and_evaluate(c, str(workdir))
    (root / "DONE").touch()
  return str(workdir)


def init_checkpoint(workdir: str, gan: bool = False, **fields) -> str:
  """A checkpoint of a freshly initialised state (step 0) of the tiny config with `fields` ("model.depth": 2,
  ...) changed; with `gan` it also holds a discriminator. Written exactly as training writes its checkpoints."""
  from configs import tiny
  from sr_jax.train import state as state_lib
  from sr_jax.train.checkpoint import Checkpointer

  c = tiny.get_config()
  c.loss.lambda_adv = 0.01 if gan else 0.0
  for path, value in fields.items():
    section, leaf = path.split(".")
    c[section][leaf] = value
  state = jax.jit(lambda: state_lib.init_state(c, state_lib.build_models(c), state_lib.make_optimizers(c)))()
  ckpt = Checkpointer(workdir, c, keep_best=False, async_save=False)
  ckpt.save(0, state, force=True)
  ckpt.wait()
  ckpt.close()
  return os.path.join(workdir, "checkpoints", "0")


def tone(seconds: float, rate: int, channels: int = 1, seed: int = 0) -> np.ndarray:
  """A different tone mixture (+ a little noise) per channel, float32 (frames, channels), peak < 0.6."""
  rng = np.random.default_rng(seed)
  t = np.arange(round(seconds * rate)) / rate
  freqs = 300.0 * (1 + np.arange(channels))
  x = 0.3 * np.sin(2 * np.pi * freqs * t[:, None]) + 0.2 * np.sin(2 * np.pi * 1.5 * freqs * t[:, None] + 1.0)
  return (x + 0.01 * rng.standard_normal(x.shape)).astype(np.float32)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  return trained_run(tmp_path_factory)


@pytest.fixture(scope="module")
def enhancer(workdir):
  return enhance.Enhancer(workdir, batch_size=16)


def reference(enhancer: enhance.Enhancer, audio: np.ndarray, rate: int) -> np.ndarray:
  """Enhancement computed without any streaming: soxr on the whole file, windows.split per channel, the windows
  of all channels interleaved position-major through enhance_windows, windows.merge per channel."""
  x = soxr.resample(audio, rate, enhancer.rate, quality="VHQ") if rate != enhancer.rate else audio
  x = x.reshape(len(x), -1)
  w, s = enhancer.window, enhancer.stride
  wins = np.stack([windows_lib.split(x[:, c], w, s) for c in range(x.shape[1])], axis=1)  # (n, ch, W)
  out = enhancer.enhance_windows(wins.reshape(-1, w)).reshape(wins.shape)
  return np.stack([windows_lib.merge(out[:, c], w, s, len(x)) for c in range(x.shape[1])], axis=1)


# ----- the tests --------------------------------------------------------------------------------------------------


def test_stereo_flac_at_44k1_keeps_channels_and_duration(enhancer, tmp_path):
  audio = tone(60.0, 44100, channels=2)
  src, dst = str(tmp_path / "in.flac"), str(tmp_path / "out" / "in.flac")
  sf.write(src, audio, 44100, subtype="PCM_16")
  report = enhancer.enhance_file(src, dst)
  info = sf.info(dst)
  expected = round(len(audio) * 16000 / 44100)
  assert (info.format, info.subtype, info.samplerate, info.channels) == ("FLAC", "PCM_16", 16000, 2)
  assert abs(info.frames - expected) <= 1 and report.frames_out == info.frames
  assert (report.frames_in, report.rate_in, report.channels, report.clipped) == (len(audio), 44100, 2, 0)
  assert os.listdir(tmp_path / "out") == ["in.flac"]  # the temporary file was renamed
  # Channels stay in place: each output channel follows its own input channel (300 Hz vs 600 Hz tones).
  out, _ = sf.read(dst, dtype="float32")
  ref = soxr.resample(audio, 44100, 16000)[:len(out)]
  corr = np.corrcoef(out.T, ref.T)[:2, 2:]  # rows: output channels, columns: input channels
  assert corr[0, 0] > 0.7 and corr[1, 1] > 0.7 and abs(corr[0, 1]) < 0.1 and abs(corr[1, 0]) < 0.1


@pytest.mark.parametrize("block", [enhance.BLOCK_FRAMES, 3001])
def test_streaming_file_equals_in_memory_and_unstreamed_reference(enhancer, tmp_path, monkeypatch, block):
  monkeypatch.setattr(enhance, "BLOCK_FRAMES", block)
  audio = tone(3.3, 22050, channels=3, seed=1)  # 72765 frames: several blocks, 3 channels, a partial last batch
  src, dst = str(tmp_path / "in.wav"), str(tmp_path / "out.wav")
  sf.write(src, audio, 22050, subtype="FLOAT")
  enhancer.enhance_file(src, dst)
  streamed, rate = sf.read(dst, dtype="float32")
  in_memory, rate_mem = enhancer.enhance_array(audio, 22050)
  assert rate == rate_mem == 16000 and sf.info(dst).subtype == "FLOAT"
  np.testing.assert_array_equal(streamed, in_memory)
  np.testing.assert_array_equal(in_memory, reference(enhancer, audio, 22050))
  mono, _ = enhancer.enhance_array(audio[:, 1], 22050)  # a channel alone gives the same samples
  assert mono.shape == (len(in_memory),)
  np.testing.assert_allclose(mono, in_memory[:, 1], atol=1e-6)


def test_a_smaller_stride_overlaps_the_windows(workdir, enhancer):
  """stride=: the windows overlap and each keeps its centre (the same split/merge as the reference); the output
  has the same length, and differs from the default stride's only where a window edge moved."""
  half = enhance.Enhancer(workdir, batch_size=16, stride=enhancer.window // 4)
  assert (half.window, half.stride, enhancer.stride) == (512, 128, 256)  # the tiny config's eval_stride is 256
  audio = tone(1.3, 16000, channels=2, seed=2)
  out, rate = half.enhance_array(audio, 16000)
  default, _ = enhancer.enhance_array(audio, 16000)
  assert rate == 16000 and out.shape == default.shape == audio.shape
  np.testing.assert_array_equal(out, reference(half, audio, 16000))
  assert np.max(np.abs(out - default)) > 1e-4  # another stride really gives other windows
  # The first window (samples 0-511, the same in both) gives [0, a + stride): a = (512 - 128) // 2 = 192, so 320
  # samples with stride 128, and 128 + 256 = 384 with 256; the next samples come from other windows.
  np.testing.assert_allclose(out[:320], default[:320], atol=1e-6)
  assert np.max(np.abs(out[320:384] - default[320:384])) > 1e-5


@pytest.mark.parametrize("stride, words", [(0, "stride must be a positive integer"), (True, "positive integer"),
                                           (2.5, "positive integer"),
                                           (513, "stride (513) must not exceed the model's window (512")])
def test_bad_strides(workdir, stride, words):
  with pytest.raises(UserError) as e:
    enhance.Enhancer(workdir, stride=stride)
  assert words in str(e.value)


def test_a_longer_window(workdir, enhancer):
  """window=: the fully convolutional generator on longer windows; the default stride keeps the config's overlap
  fraction, and each window is the generator applied to that many samples (here one window, zero-padded)."""
  long = enhance.Enhancer(workdir, batch_size=16, window=4 * enhancer.window)
  assert (long.window, long.stride) == (2048, 4 * enhancer.stride) == (2048, 1024)
  assert enhance.Enhancer(workdir, window=2048, stride=512).stride == 512
  x = (0.1 * np.random.default_rng(3).standard_normal(1500)).astype(np.float32)
  out, _ = long.enhance_array(x, long.rate)
  padded = np.zeros((1, 2048), np.float32)
  padded[0, :1500] = x
  want = np.asarray(long.gen.apply({"params": long._params}, padded)).reshape(-1)[:1500]
  np.testing.assert_allclose(out, want, atol=1e-5, rtol=0)
  short, _ = enhancer.enhance_array(x, enhancer.rate)  # 512-sample windows see less context: other samples
  assert np.max(np.abs(out - short)) > 1e-4


def test_the_configs_enhance_window_is_the_default(tmp_path):
  """config.data.enhance_window: the window used when none is given (its stride keeps the overlap fraction); the same
  samples as that window given explicitly; a window given still wins."""
  step_dir = init_checkpoint(str(tmp_path / "run"), **{"data.enhance_window": 2048})
  default = enhance.Enhancer(step_dir, batch_size=4)
  assert (default.window, default.stride) == (2048, 1024)  # tiny: window 512, eval_stride 256
  given = enhance.Enhancer(step_dir, batch_size=4, window=2048)
  assert (given.window, given.stride) == (2048, 1024)
  assert (enhance.Enhancer(step_dir, window=512).window, enhance.Enhancer(step_dir, window=512).stride) == (512, 256)
  x = (0.1 * np.random.default_rng(5).standard_normal(5000)).astype(np.float32)
  np.testing.assert_array_equal(default.enhance_array(x, 16000)[0], given.enhance_array(x, 16000)[0])
  with pytest.raises(UserError, match=r"stride \(4096\) must not exceed the model's window \(2048 samples"):
    enhance.Enhancer(step_dir, stride=4096)


def test_geometry_of_configs_with_and_without_enhance_window():
  """enhance.geometry by hand: the key absent (a config saved before it existed) or 0 means the training window;
  collab keeps the training window whatever the key says and refuses another one given."""
  from configs import tiny

  c = tiny.get_config()  # depth 3, window 512, eval_stride 256
  assert enhance.geometry(c) == (512, 256)
  c.data.enhance_window = 4096
  assert enhance.geometry(c) == (4096, 2048) and enhance.geometry(c, 1024) == (1024, 512)
  assert enhance.geometry(c, collab=True) == (512, 256) and enhance.geometry(c, 512, 128, collab=True) == (512, 128)
  with pytest.raises(UserError, match=r"collaborative sampling runs at the training window \(512 samples\): drop "
                                      r"the window \(4096\)"):
    enhance.geometry(c, 4096, collab=True)
  del c.data["enhance_window"]
  assert enhance.geometry(c) == (512, 256)


@pytest.mark.parametrize("kwargs, words", [(dict(window=1000), "window 1000 does not fit a depth-3 network"),
                                           (dict(window=0), "window must be a positive integer"),
                                           (dict(window=1024, stride=2048), "must not exceed the chosen window "
                                                                           "(1024")])
def test_bad_windows(workdir, kwargs, words):
  with pytest.raises(UserError) as e:
    enhance.Enhancer(workdir, **kwargs)
  assert words in str(e.value)


def test_a_window_does_not_depend_on_its_batch(enhancer):
  """Bit-exactness of streaming vs in-memory comes from identical batches; across batch positions and neighbours
  XLA's CPU results for a window agree to float32 rounding (the last row of a batch may differ by an ulp)."""
  rng = np.random.default_rng(0)
  wins = (0.1 * rng.standard_normal((16, enhancer.window))).astype(np.float32)
  base = enhancer.enhance_windows(wins)
  perm = rng.permutation(16)
  np.testing.assert_allclose(enhancer.enhance_windows(wins[perm]), base[perm], atol=1e-6, rtol=0)
  np.testing.assert_allclose(enhancer.enhance_windows(wins[:5]), base[:5], atol=1e-6, rtol=0)
  assert np.abs(base - wins).max() > 1e-4  # the network does change its input


def test_silence_stays_digital_silence(enhancer, tmp_path):
  params = enhancer._params
  zeros = np.zeros((1, enhancer.window, 1), np.float32)
  raw = np.asarray(enhancer.gen.apply({"params": params}, zeros))
  assert np.abs(raw).max() > 0  # without the gate the trained biases would add a small signal to silence
  out, _ = enhancer.enhance_array(np.zeros((40000, 2), np.float32), 16000)
  assert out.shape == (40000, 2) and not out.any()
  half = np.concatenate([np.zeros(16000, np.float32), tone(1.0, 16000)[:, 0]])  # 1 s silence, then a tone
  out, _ = enhancer.enhance_array(half, 16000)
  edge = 16000 - enhancer.window  # windows that hold only zeros give zeros
  assert not out[:edge].any() and np.abs(out[16000 + enhancer.window:]).max() > 0.3


def test_short_inputs(enhancer, tmp_path):
  x = tone(0.0125, 8000)[:, 0]  # 100 frames at 8 kHz: less than one window at 16 kHz
  out, rate = enhancer.enhance_array(x, 8000)
  assert out.shape == (200,) and rate == 16000
  np.testing.assert_array_equal(out, reference(enhancer, x, 8000)[:, 0])
  with pytest.raises(UserError, match="too short"):
    enhancer.enhance_array(np.ones(1, np.float32) * 0.1, 44100)  # one frame: no sample at 16 kHz
  with pytest.raises(UserError, match="out of range"):
    enhancer.enhance_array(x, 500)


def test_clipping_only_where_the_format_needs_it(enhancer, tmp_path):
  loud = 1.5 * tone(0.5, 16000) / 0.5  # peaks about 1.5 full scale
  src = str(tmp_path / "loud.wav")
  sf.write(src, loud, 16000, subtype="FLOAT")
  as_float = enhancer.enhance_file(src, str(tmp_path / "float.wav"))
  as_int = enhancer.enhance_file(src, str(tmp_path / "int.flac"))
  assert (as_float.subtype, as_float.clipped) == ("FLOAT", 0)
  assert as_int.subtype == "PCM_24" and as_int.clipped > 0
  f, _ = sf.read(str(tmp_path / "float.wav"), dtype="float32")
  i, _ = sf.read(str(tmp_path / "int.flac"), dtype="float32")
  assert np.abs(f).max() > 1.2 and np.abs(i).max() <= 1.0
  assert as_int.clipped == int(np.count_nonzero(np.abs(f) > 1.0))
  np.testing.assert_allclose(i, np.clip(f, -1, 1), atol=2.0 ** -22)


def test_output_subtypes():
  assert enhance.output_subtype("PCM_16", "FLAC") == "PCM_16"
  assert enhance.output_subtype("PCM_24", "WAV") == "PCM_24"
  assert enhance.output_subtype("FLOAT", "WAV") == "FLOAT"
  assert enhance.output_subtype("FLOAT", "FLAC") == "PCM_24"
  assert enhance.output_subtype("PCM_U8", "WAV") == "PCM_16"  # 8-bit would bury the restored band
  assert enhance.output_subtype("ULAW", "WAV") == "PCM_16"
  assert enhance.output_subtype("VORBIS", "WAV") == "PCM_16"
  assert enhance.output_subtype("PCM_16", "OGG") == "VORBIS"
  assert enhance.output_format("a/b.Aif") == "AIFF"
  with pytest.raises(UserError, match="unknown audio format"):
    enhance.output_format("out.xyz")


@pytest.mark.parametrize("subtype,rate", [("PCM_U8", 8000), ("PCM_24", 96000), ("VORBIS", 48000)])
def test_formats_and_rates(enhancer, tmp_path, subtype, rate):
  ext = ".ogg" if subtype == "VORBIS" else ".wav"
  src = str(tmp_path / f"in{ext}")
  sf.write(src, tone(0.4, rate), rate, subtype=subtype)
  report = enhancer.enhance_file(src, str(tmp_path / f"out{ext}"))
  assert report.subtype == enhance.output_subtype(subtype, "OGG" if ext == ".ogg" else "WAV")
  assert abs(report.frames_out - round(report.frames_in * 16000 / rate)) <= 1


def test_checkpoint_errors(workdir, tmp_path):
  with pytest.raises(UserError, match="no checkpoint"):
    enhance.Enhancer(str(tmp_path))
  with pytest.raises(UserError, match="no checkpoint of step 7"):
    enhance.Enhancer(workdir, step=7)
  step_dir = tmp_path / "4"  # a step folder whose config does not describe its weights
  shutil.copytree(os.path.join(workdir, "checkpoints", "4"), step_dir)
  meta = step_dir / "config" / "metadata"
  meta.write_text(meta.read_text().replace('"depth": 3', '"depth": 2'))
  with pytest.raises(UserError, match="another shape"):
    enhance.Enhancer(str(step_dir))
  with pytest.raises(UserError, match=r"has no discriminator \(it was trained or exported without one\); "
                     r"collaborative sampling \(--collab\) needs one: train a critic"):
    enhance.Enhancer(workdir, collab=True)


def test_collaborative_sampling(tmp_path):
  step_dir = init_checkpoint(str(tmp_path / "gan"), gan=True, **{"model.depth": 2, "data.window": 256,
                                                                  "data.eval_stride": 128})
  x = tone(0.1, 16000)[:, 0]  # 13 windows: one batch
  base, _ = enhance.Enhancer(step_dir).enhance_array(x, 16000)
  collab = enhance.Enhancer(step_dir, collab=True, collab_overrides={"eta": 1.0, "max_steps": 3, "step_size": 10.0})
  assert collab.collab and not collab.shaped  # no WORKDIR/shaped_disc: the trained discriminator
  y, rate = collab.enhance_array(x, 16000)
  assert rate == 16000 and y.shape == base.shape and np.isfinite(y).all()
  assert np.abs(y - base).max() > 1e-4  # D < eta = 1 always: every window was moved
  with pytest.raises(UserError, match="eta"):
    enhance.Enhancer(step_dir, collab=True, collab_overrides={"eta": 2.0})
  with pytest.raises(UserError, match="collaborative sampling runs at the training window \\(256 samples\\)"):
    enhance.Enhancer(step_dir, collab=True, window=512)
  assert enhance.Enhancer(step_dir, collab=True, window=256).window == 256  # the training window itself is fine


def test_collab_prefers_the_shaped_discriminator(tmp_path):
  import orbax.checkpoint as ocp

  from sr_jax.sampling import shaping
  from sr_jax.train.checkpoint import restore_for_inference

  workdir = str(tmp_path / "gan")
  step_dir = init_checkpoint(workdir, gan=True, **{"model.depth": 2, "data.window": 256})
  _, nets = restore_for_inference(step_dir, parts=("disc",))
  shaped = jax.tree.map(lambda a: a + 1.0, nets["disc"])  # recognisably not the trained discriminator
  manager = shaping._manager(os.path.join(workdir, shaping.SHAPED_DIR))  # as launch/shape.py saves it
  manager.save(5, args=ocp.args.Composite(disc=ocp.args.StandardSave(shaped),
                                          config=ocp.args.JsonSave({"steps": 5, "gen_step": 0})), force=True)
  manager.wait_until_finished()
  manager.close()
  for path in (workdir, step_dir):
    collab = enhance.Enhancer(path, collab=True)
    assert collab.shaped
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(collab._params[1]), shaped)
