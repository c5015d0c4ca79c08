"""Enhancement: run a trained generator over audio files of any length, format, rate and channel count.

  enhancer = Enhancer("runs/quickstart")                 # a workdir (latest step, or step=) or a step folder
  report = enhancer.enhance_file("in.flac", "out.flac")  # streaming, memory flat in the file length
  out, rate = enhancer.enhance_array(audio, 44100)       # in memory; the same samples as enhance_file
  note = enhancer.file_bandwidth_warning("in.flac")      # a line when the input is wider than the model's band

The model and its config come from the checkpoint (`restore_for_inference`): no model flags. The network runs at
config.data.rate, so every input is resampled to that rate with soxr (band-limited; `soxr.ResampleStream` while
streaming). For the chain "sample 4000 16000" the model expects 16 kHz audio band-limited to 2 kHz: a 4 kHz (or 8,
44.1, ... kHz) recording is brought to 16 kHz and enhanced there (nothing is low-passed to the chain's rate: a
full-band input keeps its band, plus what the model adds). `file_bandwidth_warning` / `bandwidth_warning` say when
the input is clearly wider than that band, which the model was not trained on (sr_jax.bandwidth).

Output rate (`output_rate=`): "input" (default) writes an input above the model's rate at its own rate, so nothing
above the model's Nyquist frequency N is lost; "model" writes the model's rate. Inputs at or below the model's rate
are written at the model's rate either way. Above it, the model's output u (brought to the input's rate with soxr)
and the input x are joined by a complementary linear-phase crossover, centred (LP's delay D removed: zero phase):
  out = LP * u + (delta_D - LP) * x = x + LP * (u - x)
LP (`crossover_taps`) is a Kaiser-window FIR low-pass, odd and symmetric, its transition band CROSSOVER_BAND =
0.80-0.90 N (6.4-7.2 kHz for 16 kHz models; -6 dB at 0.85 N), CROSSOVER_DB = 100 dB ripple and rejection. The two
paths sum to the identity wherever u = x; below 0.80 N the output is the model's, above 0.90 N the input's. The band
lies below where soxr's round trip (input rate -> model rate -> input rate, VHQ) rolls off (flat to about 0.92 N,
-6 dB at 0.95 N), so a band the model leaves unchanged comes back as the input. The filter streams (overlap-save,
`_Crossover`; at most a few thousand taps): memory stays flat.

Pipeline (one pass; memory: about one block, one window per channel and one batch, whatever the length):
  soundfile blocks (BLOCK_FRAMES frames) -> soxr stream -> one WindowStream per channel (the `window` given, else
  config.data.enhance_window or the training window config.data.window; the `stride` given, else
  config.data.eval_stride scaled to the window: `geometry`) -> windows interleaved across channels
  (window i of channel 0, 1, ...) -> batches of exactly `batch_size` windows (the last padded with zero windows:
  ONE jitted function, one compile) -> one StreamMerger per channel [-> soxr stream up to the input's rate ->
  crossover with the input] -> a temporary file beside the output, renamed over it once complete (a failed run
  leaves no output file, never a partial one).
`enhance_array` runs the same pipeline on the array cut into the same blocks: the same windows in the same batches,
so the same samples. (Only identical batches make that bit-exact: XLA's CPU result for a window can change by an
ulp with its position in the batch, e.g. as the last row.)

Network: the generator in eval mode (no dropout; it has no BatchNorm), or with `collab=True` collaborative sampling
(sr_jax.sampling) with the shaped discriminator when the run has one (launch/shape.py), else the trained one.
An all-zero input window (digital silence, or a padding window) gives an all-zero output window: the generator's
biases would otherwise add a small hum to silence.

Output format: from the output file's extension (.wav, .flac, .ogg, .aiff, .mp3, ... anything libsndfile writes).
Subtype: the input's when the output format supports it and it has at least 16 bits (PCM_16/24/32, FLOAT, DOUBLE,
VORBIS, OPUS, ...); 8-bit, u-law and A-law inputs are written as 16-bit PCM (their noise floor would bury the
restored band); otherwise PCM_24 for FLAC and libsndfile's default for the format (PCM_16 for WAV/AIFF). Integer and
compressed subtypes cannot hold samples beyond full scale, so their output is clipped to [-1, 1] (the number of
clipped samples is reported); FLOAT/DOUBLE outputs are written unclipped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import soundfile as sf
import soxr

from sr_jax import bandwidth
from sr_jax.data import audio as audio_lib
from sr_jax.data.windows import StreamMerger, WindowStream, check_count, check_geometry
from sr_jax.errors import UserError

BLOCK_FRAMES = 1 << 16  # input frames read (and resampled) at a time
DEFAULT_BATCH = 16
OUTPUT_RATES = ("input", "model")  # output_rate= values: the input's rate when above the model's, or the model's
CROSSOVER_BAND = (0.80, 0.90)  # the crossover's transition band, as fractions of the model's Nyquist frequency
CROSSOVER_DB = 100.0  # its stop-band rejection and pass-band ripple (Kaiser design)
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")
LOW_BIT_SUBTYPES = ("PCM_S8", "PCM_U8", "ULAW", "ALAW", "IMA_ADPCM", "MS_ADPCM", "GSM610", "G721_32", "G723_24",
                    "G723_40", "DWVW_12", "DPCM_8", "VOX_ADPCM")  # written as PCM_16


@dataclasses.dataclass
class Report:
  """What one enhancement did: input/output frames and rates, channels, clipped output samples, seconds taken; the
  model's rate, and the crossover frequency (Hz, its -6 dB point) where the output keeps the input's own band above
  the model's (None: the output is the model's, at its rate)."""
  input: str
  output: str
  channels: int
  rate_in: int
  rate_out: int
  frames_in: int
  frames_out: int
  subtype: str
  clipped: int
  elapsed: float
  rate_model: int
  crossover: float | None

  @property
  def seconds(self) -> float:
    return self.frames_in / self.rate_in

  @property
  def rtf(self) -> float:
    """Real-time factor: processing time / audio duration (< 1 is faster than real time)."""
    return self.elapsed / max(self.seconds, 1e-9)


def output_format(path: str) -> str:
  """libsndfile's major format for an output path's extension; an unknown one is a UserError."""
  ext = os.path.splitext(path)[1].lstrip(".").upper()
  ext = {"AIF": "AIFF", "OGA": "OGG", "OPUS": "OGG"}.get(ext, ext)
  if ext not in sf.available_formats():
    raise UserError(f"cannot write {path}: unknown audio format {os.path.splitext(path)[1] or '(no extension)'!r} "
                    "(use .wav, .flac, .ogg, .aiff or .mp3)")
  return ext


def output_subtype(input_subtype: str | None, fmt: str) -> str:
  """The output subtype for an input subtype and output format (see the module docstring)."""
  if input_subtype and input_subtype not in LOW_BIT_SUBTYPES and sf.check_format(fmt, input_subtype):
    return input_subtype
  if input_subtype in LOW_BIT_SUBTYPES and sf.check_format(fmt, "PCM_16"):
    return "PCM_16"
  return "PCM_24" if fmt == "FLAC" else sf.default_subtype(fmt)


def _fill_gain(config, gain_db: float | None, checkpoint: str) -> float | None:
  """The spectral fill level (dB) the model at `checkpoint` runs with: `gain_db` if given (set into
  config.model.fill_gain_db), else its config's; None for a model without a fill. UserError for a level given to a
  model without a fill, or a level that is not a finite number."""
  has_fill = int(config.model.fill_channels) > 0
  if gain_db is not None:
    if not has_fill:
      raise UserError(f"--fill_gain_db sets the spectral fill's level, and the model at {checkpoint} has no fill "
                      "(model.fill_channels 0)")
    if isinstance(gain_db, bool) or not math.isfinite(gain_db):
      raise UserError(f"--fill_gain_db must be a finite number of dB, got {gain_db}")
    config.model.fill_gain_db = float(gain_db)
  return float(config.model.fill_gain_db) if has_fill else None


class Enhancer:
  """A trained generator (optionally with collaborative sampling) ready to enhance arrays and files."""

  def __init__(self, path: str, step: int | None = None, batch_size: int = DEFAULT_BATCH, collab: bool = False,
               collab_overrides: dict | None = None, stride: int | None = None, window: int | None = None,
               fill_gain_db: float | None = None):
    """path: a workdir (its latest checkpoint, or `step`), a checkpoints/ folder or a step folder (state/ +
    config/). collab_overrides: eta / max_steps / layer / step_size replacing config.collab's (None = keep).
    stride: hop between windows in samples at the model's rate (default: the checkpoint's config.data.eval_stride);
    below the window, consecutive windows overlap and each keeps only its centre (the overlap-crop rule of
    sr_jax.data.windows), so fewer output samples come from a window's edges, where the network sees zeros beyond
    the window: window / stride times the network's work.
    window: the window in samples (default: config.data.enhance_window if the config sets one, else the training
    window, config.data.window). The generator is fully convolutional, so a longer one (a multiple of
    2**(depth+1)) gives every sample more context; its default stride keeps the config's overlap fraction
    (eval_stride * window / data.window). With collab always the training window: the discriminator is built for
    it (another window given is refused; the config's enhance_window is not used).
    fill_gain_db: the spectral fill's level re its trained one, in dB, replacing the config's model.fill_gain_db
    (a model with a fill only; `self.fill_gain_db` is the level in use, None for a model without one)."""
    import jax  # noqa: PLC0415  (jax only once a model is loaded: the input checks stay light and fast)

    from sr_jax.models import build_discriminator, build_generator  # noqa: PLC0415
    from sr_jax.train.checkpoint import MissingNetworks, find_step_dir, restore_for_inference  # noqa: PLC0415

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
      raise UserError(f"batch size must be a positive integer, got {batch_size!r}")
    self.batch_size = batch_size
    if stride is not None:
      check_count(stride, "stride")  # before the checkpoint is read
    if window is not None:
      check_count(window, "window")
    try:
      self.checkpoint = find_step_dir(path, step)
    except OSError:  # e.g. an existing folder without checkpoints/ or step folders
      raise UserError(f"no checkpoint in {path}: train first (launch/train.py --workdir={path})") from None
    shaped = _shaped_disc(self.checkpoint) if collab else None  # WORKDIR/shaped_disc (launch/shape.py), if any
    self.collab, self.shaped = collab, shaped is not None
    try:
      with _quiet_absl():  # orbax warns about metadata it does not need; the user cannot act on it
        self.config, nets = restore_for_inference(self.checkpoint, parts=("gen", "disc") if collab and not
                                                  self.shaped else ("gen",))
    except MissingNetworks as e:
      if "disc" not in e.parts:
        raise
      raise UserError(f"{e}; collaborative sampling (--collab) needs one: train a critic against this generator "
                      "and shape it (`sr-jax recipe --config=piano_r4_16k --stages=critic`, then `sr-jax shape`, "
                      "show how)") from None
    except UserError:
      raise
    except Exception as e:  # orbax/tensorstore errors of a damaged checkpoint
      raise UserError(f"cannot read the checkpoint {self.checkpoint} ({audio_lib._reason(e)})") from None
    data = self.config.data
    self.rate = audio_lib.check_rate(int(data.rate), "config.data.rate of the checkpoint")
    self.window, self.stride = geometry(self.config, window, stride, collab)
    self.trained_band = bandwidth.trained_band(self.config)  # the input band (Hz) the model learnt to extend
    self.fill_gain_db = _fill_gain(self.config, fill_gain_db, self.checkpoint)
    self.gen = build_generator(self.config)
    params = _checked(nets["gen"]["params"], self.gen, self.window, self.checkpoint, "generator")
    if collab:
      from sr_jax.sampling.collaborative import sampler_from_config  # noqa: PLC0415

      disc = build_discriminator(self.config)
      disc_vars = shaped if self.shaped else nets["disc"]
      _checked(disc_vars["params"], disc, self.window, self.checkpoint, "discriminator")
      sampler = sampler_from_config(self.config, self.gen, disc, **(collab_overrides or {}))
      self._net = _gated(lambda p, x: sampler.pure(p[0], p[1], x, *sampler.knobs())[0])
      self._params = jax.device_put((params, disc_vars))
    else:
      self._net = _gated(lambda p, x: self.gen.apply({"params": p}, x))
      self._params = jax.device_put(params)

  # ----- windows ------------------------------------------------------------------------------------------------

  def enhance_windows(self, windows: np.ndarray) -> np.ndarray:
    """(n, window) float32 -> (n, window): the network on each window, `batch_size` windows per call (the last
    call padded with zero windows)."""
    windows = np.asarray(windows, np.float32)
    n, b = len(windows), self.batch_size
    out = np.empty_like(windows)
    for i in range(0, n, b):
      batch = windows[i:i + b]
      if len(batch) < b:
        batch = np.concatenate([batch, np.zeros((b - len(batch), self.window), np.float32)])
      out[i:i + b] = np.asarray(self._net(self._params, batch))[:min(b, n - i)]
    return out

  def output_rate(self, rate: int, output_rate: str = "input") -> int:
    """The rate an input at `rate` is written at: `rate` when output_rate is "input" and `rate` is above the
    model's, else the model's (self.rate)."""
    if output_rate not in OUTPUT_RATES:
      raise UserError(f"output rate must be one of {', '.join(OUTPUT_RATES)}, got {output_rate!r}")
    return rate if output_rate == "input" and rate > self.rate else self.rate

  def stream(self, blocks: Iterable[np.ndarray], rate: int, channels: int, output_rate: str = "input",
             what: str = "the audio") -> Iterator[np.ndarray]:
    """Enhances audio given as blocks (frames, channels) at `rate`; yields the output (m, channels) at
    `self.output_rate(rate, output_rate)` as it is finished (above the model's rate: the crossover of the module
    docstring). Memory: about one block, one window per channel and one batch (and the input they span)."""
    out_rate = self.output_rate(rate, output_rate)
    frames = [0, 0]  # input frames read, model frames made
    crossover = _Crossover(crossover_taps(out_rate, self.rate), channels) if out_rate != self.rate else None
    resampler = _Resampler(self.rate, out_rate, channels)

    def read() -> Iterator[np.ndarray]:
      for block in blocks:
        frames[0] += len(block)
        if crossover is not None:
          crossover.push_input(block)
        yield block

    for piece in self._model_stream(read(), rate, channels):
      frames[1] += len(piece)
      piece = piece if crossover is None else crossover.push_model(resampler.push(piece))
      if len(piece):
        yield piece
    if frames[0] == 0:
      raise UserError(f"{what} has no audio (zero frames)")
    if frames[1] == 0:
      raise UserError(f"{what} is too short: {frames[0]} frames at {rate} Hz are less than one sample at the model "
                      "rate")
    if crossover is not None:
      yield np.concatenate([crossover.push_model(resampler.finish()), crossover.finish()])

  def _model_stream(self, blocks: Iterable[np.ndarray], rate: int, channels: int) -> Iterator[np.ndarray]:
    """The network's output (m, channels) at self.rate for blocks at `rate`, as it is finished."""
    resampler = _Resampler(rate, self.rate, channels)
    splitters = [WindowStream(self.window, self.stride) for _ in range(channels)]
    mergers = [StreamMerger(self.window, self.stride) for _ in range(channels)]
    batcher = _Batcher(self.enhance_windows, self.batch_size, channels, self.window)
    for block in blocks:
      yield from self._step(resampler.push(block), splitters, mergers, batcher)
    yield from self._step(resampler.finish(), splitters, mergers, batcher, last=True)
    length = splitters[0].frames
    yield np.stack([m.finish(length) for m in mergers], axis=1)

  def _step(self, audio: np.ndarray, splitters, mergers, batcher, last: bool = False) -> Iterator[np.ndarray]:
    windows = [s.push(audio[:, c]) for c, s in enumerate(splitters)]
    if last:
      windows = [np.concatenate([w, s.finish()]) for w, s in zip(windows, splitters)]
    for done in batcher.push(np.stack(windows, axis=1), flush=last):  # (k, channels, window)
      pieces = [m.push(done[:, c]) for c, m in enumerate(mergers)]
      if len(pieces[0]):
        yield np.stack(pieces, axis=1)

  # ----- arrays and files ---------------------------------------------------------------------------------------

  def enhance_array(self, audio: np.ndarray, rate: int, output_rate: str = "input") -> tuple[np.ndarray, int]:
    """audio (frames,) or (frames, channels) at `rate` -> (enhanced audio of the same rank, its rate: see
    `output_rate`). Gives the same samples as `enhance_file` of the same audio."""
    rate = audio_lib.check_rate(rate, "input sample rate")
    audio = np.asarray(audio, np.float32)
    if audio.ndim not in (1, 2) or audio.size == 0:
      raise UserError(f"expected audio of shape (frames,) or (frames, channels) with frames > 0, got {audio.shape}")
    x = audio.reshape(len(audio), -1)
    _check_finite(x, "the audio", 0, rate)
    blocks = (x[i:i + BLOCK_FRAMES] for i in range(0, len(x), BLOCK_FRAMES))
    out = np.concatenate(list(self.stream(blocks, rate, x.shape[1], output_rate)))
    return (out[:, 0] if audio.ndim == 1 else out), self.output_rate(rate, output_rate)

  def enhance_file(self, src: str, dst: str, overwrite: bool = False, progress: bool | None = None,
                   output_rate: str = "input") -> Report:
    """Enhances audio file `src` into `dst` (format from its extension), streaming; see the module docstring.
    progress: a tqdm bar over seconds of audio (None: only on a terminal). output_rate: see `output_rate`."""
    from tqdm import tqdm  # noqa: PLC0415

    file_info = check_input(src)
    fmt = output_format(dst)
    check_output(src, dst, overwrite)
    subtype = output_subtype(file_info.subtype, fmt)
    clip = subtype not in FLOAT_SUBTYPES
    start, frames, clipped = time.perf_counter(), 0, 0
    rate, channels = file_info.samplerate, file_info.channels
    out_rate = self.output_rate(rate, output_rate)
    bar = tqdm(total=file_info.frames / rate, unit="s", desc=os.path.basename(src), leave=False,
               disable=None if progress is None else not progress,  # None: tqdm shows it on a terminal only
               bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}]")
    reader = _BlockReader(src, bar)
    with bar, _AtomicWriter(dst, out_rate, channels, subtype, fmt) as out:
      for piece in self.stream(reader, rate, channels, output_rate, what=src):
        if clip:
          clipped += int(np.count_nonzero(np.abs(piece) > 1.0))
          piece = np.clip(piece, -1.0, 1.0)
        try:
          out.write(piece)
        except Exception as e:  # e.g. a full disk
          raise UserError(f"cannot write {dst} ({audio_lib._reason(e)})") from None
        frames += len(piece)
    return Report(src, dst, channels, rate, out_rate, reader.frames, frames, subtype, clipped,
                  time.perf_counter() - start, self.rate, crossover_hz(self.rate) if out_rate != self.rate else None)

  # ----- bandwidth ------------------------------------------------------------------------------------------------

  def bandwidth_warning(self, audio: np.ndarray, rate: int, what: str = "the audio") -> str | None:
    """One line (without `warning: `) when audio (frames,) or (frames, channels) at `rate` is clearly wider than
    the band this model was trained to extend (sr_jax.bandwidth: its first HEAD_SECONDS are measured), naming the
    shipped model that fits it if one does; None otherwise."""
    audio = np.asarray(audio)[:int(bandwidth.HEAD_SECONDS * rate)]
    return bandwidth.warning(bandwidth.measure(audio, rate), self.trained_band, self.rate,
                             str(self.config.data.chain), what)

  def file_bandwidth_warning(self, path: str) -> str | None:
    """`bandwidth_warning` of the first HEAD_SECONDS of an audio file (read again: cheap, whatever its length)."""
    audio, rate = bandwidth.head(path)
    return self.bandwidth_warning(audio, rate, path)


# ----- checks -----------------------------------------------------------------------------------------------------


def default_window(config) -> int:
  """The window enhancement uses when none is given: config.data.enhance_window, or the training window
  (config.data.window) where that is 0 or the config predates the key."""
  return int(config.data.enhance_window) or int(config.data.window)


def geometry(config, window: int | None = None, stride: int | None = None, collab: bool = False) -> tuple[int, int]:
  """(window, stride) that enhancement uses for a model of `config`: `window` (default: `default_window(config)`,
  the training window unless config.data.enhance_window names a longer one; with `collab` the training window,
  the only one its discriminator judges) and `stride` (default: config.data.eval_stride, scaled by window /
  data.window for another window, so the overlap fraction stays). A window other than the training window must be a
  multiple of 2**(depth+1). `UserError` for a bad value, a stride above the window or collab at another window."""
  from sr_jax.models import check_window  # noqa: PLC0415  (jax: only once a model is wanted)

  data = config.data
  trained = int(data.window)
  if window is not None:
    check_count(window, "window")
    if collab and window != trained:
      raise UserError(f"collaborative sampling runs at the training window ({trained} samples): drop the window "
                      f"({window}) or collab")
  whose = "the chosen" if window is not None and window != trained else "the model's"
  window = window if window is not None else trained if collab else default_window(config)
  if window != trained:
    check_window(window, int(config.model.depth))
  if stride is None:
    stride = int(data.eval_stride) if window == trained else max(1, int(data.eval_stride) * window // trained)
  return check_geometry(window, stride, f"{whose} window ({window} samples at {int(data.rate)} Hz)")


def check_input(path: str):
  """soundfile's info of an input file, after the checks every input must pass (readable, rate, frames)."""
  file_info = audio_lib.info(path)
  audio_lib.check_rate(file_info.samplerate, f"sample rate of {path}")
  if file_info.frames == 0:
    raise UserError(f"{path} has no audio (zero frames)")
  return file_info


def check_output(src: str, dst: str, overwrite: bool) -> None:
  """Refuses an existing output (without overwrite), a folder as output and writing over the input."""
  if os.path.isdir(dst):
    raise UserError(f"output {dst} is a folder; give a file name (e.g. {os.path.join(dst, os.path.basename(src))})")
  if os.path.exists(dst):
    if os.path.samefile(src, dst):
      raise UserError(f"output {dst} is the input file; write to another file")
    if not overwrite:
      raise UserError(f"output {dst} already exists; pass --overwrite to replace it")


def _check_finite(block: np.ndarray, what: str, offset: int, rate: int) -> None:
  if not np.isfinite(block).all():
    bad = offset + int(np.argmin(np.isfinite(block).all(axis=1)))
    raise UserError(f"{what} has NaN or infinite samples (first at {bad / rate:.3f} s)")


def _checked(params, net, window: int, path: str, what: str):
  """The restored params, after checking their shapes against those the config's network needs."""
  import jax  # noqa: PLC0415
  import jax.numpy as jnp  # noqa: PLC0415

  x = jax.ShapeDtypeStruct((1, window, 1), jnp.float32)
  args = (x, x) if what == "discriminator" and getattr(net, "conditional", False) else (x,)
  expected = jax.eval_shape(net.init, jax.random.key(0), *args)["params"]
  shapes = lambda tree: jax.tree.map(lambda a: tuple(a.shape), tree)  # noqa: E731
  try:
    same = jax.tree.structure(expected) == jax.tree.structure(params) and shapes(expected) == shapes(params)
  except (TypeError, ValueError):
    same = False
  if not same:
    sizes = ", ".join(f"{k} {getattr(net, k)}" for k in ("depth", "width", "stft_fft_sizes", "channels")
                      if hasattr(net, k))
    raise UserError(f"the checkpoint at {path} holds a {what} of another shape than its saved config describes "
                    f"({sizes}): the config and the weights do not belong together")
  return params


@contextlib.contextmanager
def _quiet_absl():
  """Only errors of absl logging (orbax's channel) while the block runs."""
  logger = logging.getLogger("absl")
  level = logger.level
  logger.setLevel(max(level, logging.ERROR))
  try:
    yield
  finally:
    logger.setLevel(level)


def _shaped_disc(path: str):
  from sr_jax.sampling.shaping import load_shaped_disc  # noqa: PLC0415

  try:
    return load_shaped_disc(path)
  except UserError:
    raise
  except Exception as e:
    raise UserError(f"cannot read the shaped discriminator of {path} ({audio_lib._reason(e)})") from None


def _gated(net: Callable) -> Callable:
  """jit of net(params, x (N, W)) -> (N, W) where an all-zero input window gives an all-zero output window."""
  import jax  # noqa: PLC0415
  import jax.numpy as jnp  # noqa: PLC0415

  def fn(params, x):
    y = net(params, x[..., None])[..., 0]
    return jnp.where(jnp.any(x != 0, axis=1, keepdims=True), y, 0.0)

  return jax.jit(fn)


# ----- streaming pieces -------------------------------------------------------------------------------------------


class _Resampler:
  """soxr streaming resampler (VHQ) of (frames, channels) float32 blocks; the identity when the rates agree."""

  def __init__(self, rate_in: int, rate_out: int, channels: int):
    self.channels = channels
    self._soxr = None if rate_in == rate_out else soxr.ResampleStream(rate_in, rate_out, channels, dtype="float32",
                                                                       quality="VHQ")

  def push(self, block: np.ndarray, last: bool = False) -> np.ndarray:
    block = np.ascontiguousarray(block, np.float32).reshape(-1, self.channels)
    return block if self._soxr is None else self._soxr.resample_chunk(block, last=last).reshape(-1, self.channels)

  def finish(self) -> np.ndarray:
    return self.push(np.zeros((0, self.channels), np.float32), last=True)


def crossover_hz(model_rate: int) -> float:
  """The crossover's -6 dB frequency in Hz: the middle of CROSSOVER_BAND (0.85 of the model's Nyquist frequency)."""
  low, high = (f * model_rate / 2 for f in CROSSOVER_BAND)
  return (low + high) / 2


def crossover_taps(rate: int, model_rate: int) -> np.ndarray:
  """The crossover's low-pass at `rate` for a model at `model_rate` (float64, odd length, symmetric): a Kaiser-window
  FIR whose transition band is CROSSOVER_BAND of the model's Nyquist frequency, CROSSOVER_DB ripple and rejection,
  unit gain at 0 Hz."""
  from scipy import signal  # noqa: PLC0415  (scipy.signal takes a second to import: only when it is needed)

  low, high = (f * model_rate / 2 for f in CROSSOVER_BAND)
  length, beta = signal.kaiserord(CROSSOVER_DB, (high - low) / (rate / 2))
  return signal.firwin(length | 1, crossover_hz(model_rate), window=("kaiser", beta), fs=rate)


class _Fir:
  """A streaming FIR filter (overlap-save) of (frames, channels) blocks: y[n] = sum_k taps[k] x[n - k], with x = 0
  before the first block; float64."""

  def __init__(self, taps: np.ndarray, channels: int):
    self.taps = np.asarray(taps, np.float64)[:, None]
    self._tail = np.zeros((len(taps) - 1, channels))  # the last len(taps) - 1 input samples

  def push(self, block: np.ndarray) -> np.ndarray:
    from scipy import signal  # noqa: PLC0415

    if not len(block):
      return np.zeros((0, self._tail.shape[1]))
    x = np.concatenate([self._tail, block])
    self._tail = x[len(x) - len(self._tail):]
    return signal.oaconvolve(x, self.taps, mode="valid", axes=0)


class _Crossover:
  """The streaming crossover of the module docstring: out = x + LP * (u - x), centred (LP's delay D removed). Input
  blocks x (`push_input`) and the model's output u at the input's rate (`push_model`, which returns the output
  finished so far) arrive independently; the input is kept until the model's output for it has passed the
  filter. At the end (`finish`) u's samples beyond the input's last are dropped and where u ends first (a sample or
  two: soxr's lengths round) the output is the input (u = x there)."""

  def __init__(self, taps: np.ndarray, channels: int):
    self._fir = _Fir(taps, channels)
    self.delay = self._skip = (len(taps) - 1) // 2  # FIR outputs still to drop (the first D)
    self._x = np.zeros((0, channels), np.float32)  # input not yet written, from frame self._written
    self._u = np.zeros((0, channels), np.float32)  # model output not yet filtered, from frame self._filtered
    self._lp = np.zeros((0, channels))  # LP * (u - x), centred, from frame self._written
    self._written = self._filtered = self._frames = 0  # frames written, filtered, input frames pushed

  def push_input(self, block: np.ndarray) -> None:
    self._x = np.concatenate([self._x, np.asarray(block, np.float32).reshape(-1, self._x.shape[1])])
    self._frames += len(block)

  def push_model(self, block: np.ndarray) -> np.ndarray:
    self._u = np.concatenate([self._u, block])
    self._take()
    return self._ready()

  def finish(self) -> np.ndarray:
    self._take()
    self._filter(np.zeros((self._frames - self._filtered + self.delay, self._x.shape[1])))  # u = x, then flush
    self._filtered = self._frames
    return self._ready()

  def _take(self) -> None:
    """Filters u - x over the frames where both have arrived."""
    k = min(len(self._u), self._frames - self._filtered)
    if k > 0:
      at = self._filtered - self._written
      self._filter(self._u[:k].astype(np.float64) - self._x[at:at + k])
      self._u, self._filtered = self._u[k:], self._filtered + k

  def _filter(self, diff: np.ndarray) -> None:
    lp = self._fir.push(diff)
    drop = min(self._skip, len(lp))
    self._skip -= drop
    self._lp = np.concatenate([self._lp, lp[drop:]])

  def _ready(self) -> np.ndarray:
    n = len(self._lp)
    out = (self._x[:n] + self._lp).astype(np.float32)
    self._x, self._lp, self._written = self._x[n:], self._lp[:0], self._written + n
    return out


class _Batcher:
  """Collects windows (k, channels, W) and runs `enhance` on exactly `batch` windows at a time (channels
  interleaved); returns the enhanced windows of complete positions, (k', channels, W)."""

  def __init__(self, enhance: Callable, batch: int, channels: int, window: int):
    self.enhance, self.batch, self.channels, self.window = enhance, batch, channels, window
    self._todo = np.zeros((0, window), np.float32)
    self._done = np.zeros((0, window), np.float32)

  def push(self, windows: np.ndarray, flush: bool = False) -> Iterator[np.ndarray]:
    todo = np.concatenate([self._todo, windows.reshape(-1, self.window)])
    full = len(todo) if flush else len(todo) // self.batch * self.batch
    self._todo = todo[full:]
    for i in range(0, full, self.batch):
      done = np.concatenate([self._done, self.enhance(todo[i:i + self.batch])])
      complete = len(done) // self.channels * self.channels
      self._done = done[complete:]
      if complete:
        yield done[:complete].reshape(-1, self.channels, self.window)


class _BlockReader:
  """Iterates over a file's audio as float32 blocks (BLOCK_FRAMES, channels), counting the frames read and
  advancing a tqdm bar in seconds; read errors and NaN/inf samples are UserErrors."""

  def __init__(self, path: str, bar):
    self.path, self.bar, self.frames = path, bar, 0

  def __iter__(self) -> Iterator[np.ndarray]:
    try:
      f = sf.SoundFile(self.path)
    except Exception as e:
      raise UserError(f"cannot read {self.path} as audio ({audio_lib._reason(e)})") from None
    with f:
      while True:
        try:
          block = f.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
        except Exception as e:
          raise UserError(f"cannot read {self.path}: decoding failed after {self.frames / f.samplerate:.1f} s "
                          f"({audio_lib._reason(e)})") from None
        if not len(block):
          return
        _check_finite(block, self.path, self.frames, f.samplerate)
        self.frames += len(block)
        self.bar.update(min(self.frames / f.samplerate, self.bar.total) - self.bar.n)
        yield block


class _AtomicWriter:
  """A SoundFile writing to a temporary file beside `path`, renamed over `path` on a clean exit (removed on error)."""

  def __init__(self, path: str, rate: int, channels: int, subtype: str, fmt: str):
    self.path = os.path.abspath(path)
    self.args = {"samplerate": rate, "channels": channels, "subtype": subtype, "format": fmt}

  def __enter__(self) -> sf.SoundFile:
    folder = os.path.dirname(self.path)
    os.makedirs(folder, exist_ok=True)
    fd, self.tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(self.path)[1], dir=folder)
    os.close(fd)
    try:
      self.file = sf.SoundFile(self.tmp, "w", **self.args)
    except Exception as e:
      os.remove(self.tmp)
      raise UserError(f"cannot write {self.path} ({audio_lib._reason(e)})") from None
    return self.file

  def __exit__(self, exc_type, exc, tb) -> None:
    try:
      self.file.close()
      if exc_type is None:
        os.chmod(self.tmp, 0o666 & ~audio_lib._umask())
        os.replace(self.tmp, self.path)
    finally:
      if os.path.exists(self.tmp):
        os.remove(self.tmp)
