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

from sr_jax import config as config_lib
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


def reference(enhancer: enhance.Enhancer, audio: np.ndarray, rate: int, output_rate: str = "input") -> np.ndarray:
  """Enhancement computed without any streaming: soxr on the whole file, windows.split per channel, the windows
  of all channels interleaved position-major through enhance_windows, windows.merge per channel. Above the model's
  rate (unless output_rate is "model"), the crossover by its formula: the output y brought back to the input's
  rate u (soxr on the whole signal; u = x past its end), out = x + (taps * (u - x)) centred (np.convolve)."""
  x = soxr.resample(audio, rate, enhancer.rate, quality="VHQ") if rate != enhancer.rate else audio
  x = x.reshape(len(x), -1)
  w, s = enhancer.window, enhancer.stride
  wins = np.stack([windows_lib.split(x[:, c], w, s) for c in range(x.shape[1])], axis=1)  # (n, ch, W)
  out = enhancer.enhance_windows(wins.reshape(-1, w)).reshape(wins.shape)
  y = np.stack([windows_lib.merge(out[:, c], w, s, len(x)) for c in range(x.shape[1])], axis=1)
  if output_rate == "model" or rate <= enhancer.rate:
    return y
  x = audio.reshape(len(audio), -1).astype(np.float64)
  u = soxr.resample(y, enhancer.rate, rate, quality="VHQ")[:len(x)]
  u = np.concatenate([u, x[len(u):]])
  taps = enhance.crossover_taps(rate, enhancer.rate)
  delay = (len(taps) - 1) // 2
  low = np.stack([np.convolve(u[:, c] - x[:, c], taps)[delay:delay + len(x)] for c in range(x.shape[1])], axis=1)
  return x + low


def spectrum(x: np.ndarray) -> np.ndarray:
  """The Hann-windowed spectrum of each channel of x (frames, channels): rfft bins (frames // 2 + 1, channels)."""
  return np.fft.rfft(np.hanning(len(x))[:, None] * x.reshape(len(x), -1), axis=0)


def relative(a: np.ndarray, b: np.ndarray) -> float:
  """|a - b| / |b| over all bins given (Euclidean norms)."""
  return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# ----- the tests --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("output_rate, rate_out", [("input", 44100), ("model", 16000)])
def test_stereo_flac_at_44k1_keeps_channels_and_duration(enhancer, tmp_path, output_rate, rate_out):
  audio = tone(60.0, 44100, channels=2)
  src, dst = str(tmp_path / "in.flac"), str(tmp_path / "out" / "in.flac")
  sf.write(src, audio, 44100, subtype="PCM_16")
  report = enhancer.enhance_file(src, dst, output_rate=output_rate)
  info = sf.info(dst)
  expected = round(len(audio) * rate_out / 44100)
  assert (info.format, info.subtype, info.samplerate, info.channels) == ("FLAC", "PCM_16", rate_out, 2)
  assert abs(info.frames - expected) <= 1 and report.frames_out == info.frames
  assert (report.frames_in, report.rate_in, report.rate_out, report.channels, report.clipped) == (
      len(audio), 44100, rate_out, 2, 0)
  assert report.rate_model == 16000 and report.crossover == (6800.0 if output_rate == "input" else None)
  assert os.listdir(tmp_path / "out") == ["in.flac"]  # the temporary file was renamed
  # Channels stay in place: each output channel follows its own input channel (300 Hz vs 600 Hz tones).
  out, _ = sf.read(dst, dtype="float32")
  ref = soxr.resample(audio, 44100, rate_out)[:len(out)] if rate_out != 44100 else audio
  corr = np.corrcoef(out.T, ref.T)[:2, 2:]  # rows: output channels, columns: input channels
  assert corr[0, 0] > 0.7 and corr[1, 1] > 0.7 and abs(corr[0, 1]) < 0.1 and abs(corr[1, 0]) < 0.1


def test_above_the_model_rate_the_input_keeps_its_band(enhancer, tmp_path):
  """A 48 kHz input with content up to 24 kHz (a 12 kHz tone and white noise): the output is at 48 kHz; above the
  crossover (0.9 x 8 kHz = 7.2 kHz) its spectrum is the input's, below 0.8 x 8 kHz = 6.4 kHz it is the model's
  output (the 16 kHz output of output_rate="model", brought to 48 kHz with soxr), which differs from the input.
  Checked on Hann-windowed spectra of the whole signals (numpy), bins a little away from the transition band."""
  t = np.arange(3 * 48000)[:, None] / 48000
  noise = 0.03 * np.random.default_rng(7).standard_normal((len(t), 2))
  x = (tone(3.0, 48000, channels=2) + 0.1 * np.sin(2 * np.pi * 12000 * t) + noise).astype(np.float32)
  out, rate = enhancer.enhance_array(x, 48000)
  model, model_rate = enhancer.enhance_array(x, 48000, output_rate="model")
  assert (rate, model_rate, out.shape, model.shape) == (48000, 16000, x.shape, (48000, 2))
  u = soxr.resample(model, 16000, 48000, quality="VHQ")
  f = np.fft.rfftfreq(len(x), 1 / 48000)
  high, low = f >= 7300, f <= 6300
  out_s, x_s, u_s = spectrum(out), spectrum(x[:len(u)]), spectrum(u)
  assert relative(out_s[high], x_s[high]) < 1e-4
  assert relative(out_s[low], u_s[low]) < 1e-4
  assert relative(u_s[low], x_s[low]) > 1e-2  # the model did change its band: the check above means something
  tone_bin = np.argmin(np.abs(f - 12000))
  np.testing.assert_allclose(np.abs(out_s[tone_bin]), np.abs(x_s[tone_bin]), rtol=1e-4)  # the 12 kHz tone stays
  # The file gives the same samples, at 48 kHz, and says where the band came from.
  src = str(tmp_path / "in.wav")
  sf.write(src, x, 48000, subtype="FLOAT")
  report = enhancer.enhance_file(src, str(tmp_path / "out.wav"))
  np.testing.assert_array_equal(sf.read(str(tmp_path / "out.wav"), dtype="float32")[0], out)
  assert (report.rate_in, report.rate_out, report.rate_model, report.crossover) == (48000, 48000, 16000, 6800.0)


@pytest.mark.parametrize("block, output_rate", [(enhance.BLOCK_FRAMES, "model"), (3001, "model"),
                                                (enhance.BLOCK_FRAMES, "input"), (3001, "input")])
def test_streaming_file_equals_in_memory_and_unstreamed_reference(enhancer, tmp_path, monkeypatch, block,
                                                                   output_rate):
  monkeypatch.setattr(enhance, "BLOCK_FRAMES", block)
  audio = tone(3.3, 22050, channels=3, seed=1)  # 72765 frames: several blocks, 3 channels, a partial last batch
  src, dst = str(tmp_path / "in.wav"), str(tmp_path / "out.wav")
  sf.write(src, audio, 22050, subtype="FLOAT")
  enhancer.enhance_file(src, dst, output_rate=output_rate)
  streamed, rate = sf.read(dst, dtype="float32")
  in_memory, rate_mem = enhancer.enhance_array(audio, 22050, output_rate=output_rate)
  want = 16000 if output_rate == "model" else 22050
  assert rate == rate_mem == want and sf.info(dst).subtype == "FLOAT"
  np.testing.assert_array_equal(streamed, in_memory)
  if output_rate == "model":
    np.testing.assert_array_equal(in_memory, reference(enhancer, audio, 22050, output_rate))
  else:  # the streamed FIR (overlap-save in blocks, float64) and np.convolve round differently
    assert in_memory.shape == audio.shape
    np.testing.assert_allclose(in_memory, reference(enhancer, audio, 22050), atol=1e-6, rtol=0)
  mono, _ = enhancer.enhance_array(audio[:, 1], 22050, output_rate=output_rate)  # a channel alone: the same samples
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


@pytest.mark.parametrize("rate", [16001, 22050, 44100, 96000, 384000])
def test_crossover_taps_meet_their_spec(rate):
  """The low-pass's frequency response (numpy FFT of its taps, 0.25 Hz resolution), against CROSSOVER_BAND and
  CROSSOVER_DB for a 16 kHz model: 1 (to 1e-5, i.e. -100 dB) up to 6.4 kHz, 0.5 (-6 dB) at 6.8 kHz, below 1e-5
  from 7.2 kHz on; odd, symmetric (linear phase, an integer delay), so delta_D - taps is its complement."""
  taps = enhance.crossover_taps(rate, 16000)
  assert len(taps) % 2 == 1 and len(taps) < 4000
  np.testing.assert_array_equal(taps, taps[::-1])
  n = 4 * rate
  response = np.abs(np.fft.rfft(taps, n))
  f = np.fft.rfftfreq(n, 1 / rate)
  assert np.abs(response[f <= 6400] - 1).max() < 1.2e-5
  assert response[f >= 7200].max() < 1.2e-5
  assert abs(response[np.argmin(np.abs(f - 6800))] - 0.5) < 1e-3
  assert enhance.crossover_hz(16000) == 6800.0 and enhance.crossover_hz(22050) == pytest.approx(0.85 * 11025)


@pytest.mark.parametrize("extra", [-3, 0, 5])
def test_the_streaming_crossover_is_the_formula(extra):
  """_Crossover fed in random, interleaved pieces = x + (taps * (u - x)) centred, by np.convolve; u longer than x
  (extra > 0) is cut, shorter (extra < 0) counts as u = x at the end."""
  rng = np.random.default_rng(extra + 10)
  taps = rng.standard_normal(41)
  x = rng.standard_normal((3000, 2)).astype(np.float32)
  u = rng.standard_normal((3000 + extra, 2)).astype(np.float32)
  xover = enhance._Crossover(taps, 2)
  pieces, i, j = [], 0, 0
  while i < len(x) or j < len(u):
    if i < len(x) and (j >= len(u) or rng.random() < 0.5):
      k = int(rng.integers(1, 400))
      xover.push_input(x[i:i + k])
      i += k
    else:
      k = int(rng.integers(0, 400))
      pieces.append(xover.push_model(u[j:j + k]))
      j += k
  pieces.append(xover.finish())
  out = np.concatenate(pieces)
  full_u = np.concatenate([u[:len(x)], x[len(u):]]).astype(np.float64)
  want = x + np.stack([np.convolve(full_u[:, c] - x[:, c], taps)[20:3020] for c in range(2)], axis=1)
  assert out.dtype == np.float32 and out.shape == x.shape
  np.testing.assert_allclose(out, want, atol=1e-5, rtol=0)


def test_bandwidth_warning(enhancer, tmp_path):
  """The tiny model was trained on "sample 4000 16000" (a 2 kHz band): an 8 kHz recording (soxr: content up to
  about 3.7 kHz) is clearly wider and fits the shipped piano_r2_16k; a 4 kHz recording (up to 1.9 kHz) is what it
  expects; a 48 kHz full-band file is wider than any shipped model's band."""
  assert enhancer.trained_band == 2000.0
  x = tone(3.0, 16000)[:, 0] + 0.05 * np.random.default_rng(3).standard_normal(48000).astype(np.float32)
  for rate, fits in ((8000, "the shipped model piano_r2_16k (trained on a 4 kHz band) fits it"), (4000, None),
                     (48000, "no shipped model is trained on input that wide")):
    path = str(tmp_path / f"at_{rate}.wav")
    sf.write(path, soxr.resample(x, 16000, rate), rate, subtype="PCM_16")
    note = enhancer.file_bandwidth_warning(path)
    if fits is None:
      assert note is None
    else:
      assert note.startswith(f"{path} has content up to ") and "wider than the 2 kHz band this model was trained to "
      "extend (chain 'sample 4000 16000')" in note and note.endswith(fits), note
  assert enhancer.bandwidth_warning(soxr.resample(x, 16000, 4000), 4000) is None
  assert enhancer.bandwidth_warning(x, 16000, "x").startswith("x has content up to 8.0 kHz")


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
  """enhance.geometry by hand: the key 0, or absent from a config saved before it existed (read back through
  sr_jax.config.complete), means the training window; collab keeps the training window whatever the key says and
  refuses another one given."""
  from configs import tiny

  c = tiny.get_config()  # depth 3, window 512, eval_stride 256
  assert enhance.geometry(c) == (512, 256)
  c.data.enhance_window = 4096
  assert enhance.geometry(c) == (4096, 2048) and enhance.geometry(c, 1024) == (1024, 512)
  assert enhance.geometry(c, collab=True) == (512, 256) and enhance.geometry(c, 512, 128, collab=True) == (512, 128)
  with pytest.raises(UserError, match=r"collaborative sampling runs at the training window \(512 samples\): drop "
                                      r"the window \(4096\)"):
    enhance.geometry(c, 4096, collab=True)
  saved = c.to_dict()
  del saved["data"]["enhance_window"]
  assert enhance.geometry(config_lib.complete(saved)) == (512, 256)


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
  out, rate = enhancer.enhance_array(np.zeros((96000, 2), np.float32), 48000)  # through the crossover too
  assert rate == 48000 and out.shape == (96000, 2) and not out.any()


def test_short_inputs(enhancer, tmp_path):
  x = tone(0.0125, 8000)[:, 0]  # 100 frames at 8 kHz: less than one window at 16 kHz
  out, rate = enhancer.enhance_array(x, 8000)
  assert out.shape == (200,) and rate == 16000
  np.testing.assert_array_equal(out, reference(enhancer, x, 8000)[:, 0])
  for output_rate in enhance.OUTPUT_RATES:
    with pytest.raises(UserError, match="too short"):  # one frame: no sample at 16 kHz
      enhancer.enhance_array(np.ones(1, np.float32) * 0.1, 44100, output_rate=output_rate)
  out, rate = enhancer.enhance_array(np.full(7, 0.1, np.float32), 44100)  # 2 or 3 samples at 16 kHz
  assert out.shape == (7,) and rate == 44100
  with pytest.raises(UserError, match="output rate must be one of input, model, got 'native'"):
    enhancer.enhance_array(x, 8000, output_rate="native")
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
  assert report.rate_out == max(rate, 16000) == sf.info(str(tmp_path / f"out{ext}")).samplerate
  assert abs(report.frames_out - round(report.frames_in * report.rate_out / rate)) <= 1


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


def test_fill_gain_db_scales_the_fill_and_is_checked(workdir, tmp_path):
  """A model with a spectral fill runs at its config's model.fill_gain_db, or at the level given: the output is the
  U-Net's plus 10^(g/20) times the fill (the fill at -120 dB stands for none: 1e-6 of it), so the fill at -6 dB is
  0.5012 of the fill at 0 dB, sample for sample. A level for a model without a fill, or not finite: one UserError."""
  step_dir = init_checkpoint(str(tmp_path / "run"), **{"model.fill_channels": 4, "model.mask_fft": 64,
                                                       "model.mask_hop": 16})
  x = (0.1 * np.random.default_rng(6).standard_normal(3000)).astype(np.float32)
  default = enhance.Enhancer(step_dir, batch_size=4)
  assert default.fill_gain_db == 0.0 and default.config.model.fill_gain_db == 0.0
  out = {g: enhance.Enhancer(step_dir, batch_size=4, fill_gain_db=g) for g in (0.0, -6.0, -120.0)}
  assert out[-6.0].fill_gain_db == -6.0 and out[-6.0].config.model.fill_gain_db == -6.0
  y = {g: e.enhance_array(x, 16000)[0].astype(np.float64) for g, e in out.items()}
  np.testing.assert_array_equal(y[0.0], default.enhance_array(x, 16000)[0])
  fill = y[0.0] - y[-120.0]
  assert np.sqrt(np.mean(fill ** 2)) > 1e-4 * np.sqrt(np.mean(y[0.0] ** 2))  # a fresh fill: 40 dB under, not zero
  # float32 outputs near 0.1: rounding of ~1e-8 against a fill of ~1e-4
  np.testing.assert_allclose(y[-6.0] - y[-120.0], 10 ** (-6 / 20) * fill, atol=1e-3 * np.abs(fill).max())
  with pytest.raises(UserError, match="--fill_gain_db sets the spectral fill's level, and the model at .* has no fill"):
    enhance.Enhancer(workdir, fill_gain_db=-6.0)
  assert enhance.Enhancer(workdir).fill_gain_db is None
  with pytest.raises(UserError, match="--fill_gain_db must be a finite number of dB, got inf"):
    enhance.Enhancer(step_dir, fill_gain_db=float("inf"))


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
