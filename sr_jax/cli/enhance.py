r"""Enhances audio files with a trained model: any format, rate, length and channel count in.

  sr-jax enhance in.wav out.wav                      # the default model (music_16k), input and output in order
  python launch/enhance.py --workdir=runs/quickstart --input=low.wav --output=enhanced.wav
  python launch/enhance.py --checkpoint=models/piano/400 --input=recordings/ --output=enhanced/ --overwrite
  python launch/enhance.py --workdir=runs/gan --input=in.flac --output=out.flac --collab --eta=0.6

Without --model, --workdir or --checkpoint the shipped DEFAULT_MODEL restores the file (music of any instrument: band
limits, noise, rooms; its card says how far): on speech it scores as speech_16k does, while speech_16k on music does
worse (bench/RESULTS.md). The model and its config come from the checkpoint (--workdir: its latest step, or --step;
--checkpoint: a step folder holding state/ and config/, e.g. a shipped model), so no model flags are needed. Each file
is resampled to the model's rate (config.data.rate) with soxr and enhanced window by window (every channel), streaming:
memory stays flat whatever the file length. A file above the model's rate is written at its own rate
(--output_rate=input): the model's band from the model, the input's own content above it, joined by a linear-phase
crossover at 0.85 of the model's Nyquist frequency (6.8 kHz for 16 kHz models); --output_rate=model writes the model's
rate (dropping that band). Other files are written at the model's rate. A file clearly wider than the band the model was
trained to extend (e.g. an 8 kHz recording for a 4 kHz -> 16 kHz model) gets one `warning:` line on stderr naming the
shipped model that fits it, if one does. See sr_jax/enhance.py for the crossover, output format and subtype.

--input may be a folder: every audio file directly in it (not in subfolders; hidden files skipped) is enhanced
into the folder --output under the same name. All inputs are checked before the model is loaded, and an existing
output is never replaced without --overwrite. Outputs are written to a temporary file and renamed once complete.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

from sr_jax.cli import model_flags
from sr_jax.data import windows
from sr_jax.errors import UserError, exit_on_user_error

# Extensions enhanced in an input folder (what libsndfile reads without extra parameters).
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au", ".caf",
                    ".w64", ".rf64")
COLLAB_KNOBS = ("eta", "max_steps", "layer", "step_size")
DEFAULT_MODEL = "music_16k"  # for any recording: music of every kind, and on speech as good as speech_16k

FLAGS = flags.FLAGS
flags.DEFINE_string("input", None, "Audio file, or a folder of audio files (not searched recursively).")
flags.DEFINE_string("output", None, "Output file (format from its extension), or a folder (required for a folder "
                    "--input; a file --input keeps its name there).")
flags.DEFINE_bool("overwrite", False, "Replace existing output files.")
flags.DEFINE_integer("batch_size", 16, "Windows per network call.")
flags.DEFINE_integer("stride", None, "Hop between windows, in samples at the model's rate (default: the checkpoint's "
                     "config.data.eval_stride, scaled by window / config.data.window for another window). Below "
                     "the window, windows overlap and each keeps its centre: fewer window-edge errors, window/stride "
                     "times the work.")
flags.DEFINE_integer("window", None, "Window in samples at the model's rate (default: the checkpoint's "
                     "config.data.enhance_window, else the training window config.data.window): the generator is "
                     "fully convolutional, so a longer one (a multiple of 2**(depth+1)) gives each sample more "
                     "context; its default stride keeps the config's overlap fraction. --collab runs at the "
                     "training window (another --window is refused).")
flags.DEFINE_enum("output_rate", "input", ["input", "model"], "input: a file above the model's rate is written at "
                  "its own rate, the model's output (upsampled with soxr) below a crossover at 0.85 x the model's "
                  "Nyquist frequency (6.8 kHz for 16 kHz models) and the input's own content above it (complementary "
                  "linear-phase Kaiser FIR, transition 0.80-0.90 x Nyquist, 100 dB); files at or below the model's "
                  "rate are written at the model's rate. model: every file at the model's rate (the input's band "
                  "above the model's Nyquist frequency is dropped).")
flags.DEFINE_bool("collab", False, "Collaborative sampling with the (shaped, else trained) discriminator.")
flags.DEFINE_float("eta", None, "Collaborative sampling: stop once D(y) >= eta (default: config.collab.eta).")
flags.DEFINE_integer("max_steps", None, "Collaborative sampling: at most this many steps (config.collab.max_steps).")
flags.DEFINE_integer("layer", None, "Collaborative sampling: up block refined (config.collab.layer).")
flags.DEFINE_float("step_size", None, "Collaborative sampling: step size (config.collab.step_size).")
flags.DEFINE_bool("progress", None, "Show a progress bar (default: on a terminal only).")


def take_positional(args: list[str]) -> None:
  """`sr-jax enhance IN OUT`: the input and output as the only two arguments, instead of --input and --output."""
  if not args:
    return
  if FLAGS.input or FLAGS.output:
    raise UserError(f"unexpected arguments: {' '.join(args)} (give the input and output either in order or as "
                    f"--input and --output, not both)")
  if len(args) != 2:
    raise UserError(f"expected the input and the output (`sr-jax enhance IN OUT`), got {len(args)} "
                    f"argument{'s' if len(args) != 1 else ''}: {' '.join(args)}")
  FLAGS.input, FLAGS.output = args


def use_default_model() -> bool:
  """With no model flag: --model=DEFAULT_MODEL. True if it was needed."""
  if model_flags.given():
    return False
  FLAGS.model = DEFAULT_MODEL
  return True


def check_flags() -> None:
  """The flag mistakes found before any file is read."""
  model_flags.check(step_needs_workdir=True)
  for name in ("input", "output"):
    if not FLAGS[name].value:
      raise UserError(f"--{name} is required (or `sr-jax enhance IN OUT`)")
  if FLAGS.batch_size < 1:
    raise UserError(f"--batch_size must be a positive number of windows, got {FLAGS.batch_size}")
  if FLAGS.stride is not None:
    windows.check_count(FLAGS.stride, "--stride")
  if FLAGS.window is not None:
    windows.check_count(FLAGS.window, "--window")
  given = [k for k in COLLAB_KNOBS if FLAGS[k].value is not None]
  if given and not FLAGS.collab:
    raise UserError(f"--{', --'.join(given)} only apply with --collab")


def plan(src: str, dst: str) -> list[tuple[str, str]]:
  """(input file, output file) pairs for --input and --output."""
  if not os.path.exists(src):
    raise UserError(f"input {src} not found")
  if not os.path.isdir(src):
    return [(src, os.path.join(dst, os.path.basename(src)) if os.path.isdir(dst) else dst)]
  if os.path.exists(dst) and not os.path.isdir(dst):
    raise UserError(f"--input {src} is a folder, so --output must be a folder too, but {dst} is a file")
  names = sorted(n for n in os.listdir(src) if not n.startswith(".") and os.path.isfile(os.path.join(src, n))
                 and os.path.splitext(n)[1].lower() in AUDIO_EXTENSIONS)
  if not names:
    raise UserError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) in {src} (subfolders are not searched)")
  return [(os.path.join(src, n), os.path.join(dst, n)) for n in names]


@exit_on_user_error
def main(argv: list[str]) -> None:
  take_positional(argv[1:])
  default = use_default_model()
  check_flags()
  from sr_jax import enhance  # noqa: PLC0415  (light: jax is imported once a model is loaded)

  jobs = plan(FLAGS.input, FLAGS.output)
  for src, dst in jobs:  # every input and output is checked before the model is loaded
    enhance.check_input(src)
    enhance.output_format(dst)
    enhance.check_output(src, dst, FLAGS.overwrite)
  overrides = {k: FLAGS[k].value for k in COLLAB_KNOBS}
  enhancer = enhance.Enhancer(model_flags.folder(), FLAGS.step, batch_size=FLAGS.batch_size,
                              collab=FLAGS.collab, collab_overrides=overrides, stride=FLAGS.stride,
                              window=FLAGS.window, fill_gain_db=FLAGS.fill_gain_db)
  fill = "" if enhancer.fill_gain_db is None else f", spectral fill at {enhancer.fill_gain_db:+g} dB"
  collab = f", collaborative sampling ({'shaped' if enhancer.shaped else 'trained'} discriminator)"
  chosen = " (the default; --model=NAME for another)" if default else ""
  print(f"model {enhancer.checkpoint}{chosen}: {enhancer.rate} Hz, window {enhancer.window}, stride "
        f"{enhancer.stride}{fill}{collab if FLAGS.collab else ''}", flush=True)
  for src, dst in jobs:
    note = enhancer.file_bandwidth_warning(src)
    if note:
      print(f"warning: {note}", file=sys.stderr, flush=True)
    r = enhancer.enhance_file(src, dst, overwrite=FLAGS.overwrite, progress=FLAGS.progress,
                              output_rate=FLAGS.output_rate)
    clipped = f", {r.clipped} samples clipped to [-1, 1]" if r.clipped else ""
    joined = (f" (the model's output at {r.rate_model} Hz below {r.crossover / 1000:g} kHz, the input above)"
              if r.crossover else "")
    print(f"wrote {dst}: {r.seconds:.2f} s, {r.channels} ch, {r.rate_in} -> {r.rate_out} Hz{joined}, {r.subtype}, "
          f"{r.elapsed:.1f} s (real-time factor {r.rtf:.3f}){clipped}", flush=True)

