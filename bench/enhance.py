r"""How fast is enhancement, and does its memory stay flat in the file length? Real-time factor and peak RSS.

  python bench/enhance.py [--minutes=1,10,60 --collab=false,true --json=FILE]
                          [--checkpoint=STEP_DIR | --workdir=RUN] [--batch=16 --rate=16000 --signal=piano|noise]
                          [--eta=1.0 --max_steps=K --tmpdir=DIR] [--stride=N] [--window=N]

Each input length is enhanced in a fresh subprocess through the product path, `sr_jax.enhance.Enhancer(...)
.enhance_file(src, dst)`: soundfile blocks -> soxr (when --rate differs from the model's) -> windows -> batches of
--batch windows through the jitted network -> overlap-crop merge -> a 16-bit WAV. The input is a generated mono
16-bit WAV (a looped piano phrase from sr_jax.data.piano, or white noise), written block by block. Without a model
flag the bench saves an untrained model of configs/quickstart.py (depth 4, width 1/4, window 2048) with a
discriminator (loss.lambda_adv = 0.01), exactly as training saves its checkpoints.
Columns:
  realtime_factor   seconds of audio per second of wall time (higher is faster): audio seconds / Report.elapsed of
                    the long file, after the same process has enhanced a 2-second file (load + compile excluded)
  peak_rss_mb       peak resident memory of the subprocess (ru_maxrss from os.wait4), warm-up included, in MiB
  warmup_s          loading the checkpoint, then enhancing the 2-second file (compilation)
  elapsed_s         Report.elapsed of the long file
With --collab=true the network is collaborative sampling with the checkpoint's (shaped, else trained)
discriminator, K = --max_steps (default config.collab.max_steps = 10) and --eta=1.0 by default, so no window stops
early: every batch runs K iterations (the worst case). Targets: realtime_factor >= 20 without collab (depth 4 on
2 cores), and the peak RSS of the longest input within 10% of the shortest's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
from absl import app, flags  # noqa: E402

from bench import common  # noqa: E402
from sr_jax.errors import UserError, exit_on_user_error  # noqa: E402

FLAGS = flags.FLAGS
COLUMNS = ["minutes", "collab", "realtime_factor", "peak_rss_mb", "warmup_s", "elapsed_s"]
WARMUP_SECONDS = 2.0
RTF_TARGET, RSS_TOLERANCE = 20.0, 0.10


def define_flags() -> None:
  """The flags, defined only when run as a script (tests import this module beside other bench scripts)."""
  flags.DEFINE_list("minutes", ["1", "10", "60"], "Input lengths in minutes.")
  flags.DEFINE_list("collab", ["false", "true"], "Without and/or with collaborative sampling.")
  flags.DEFINE_string("checkpoint", None, "A step folder (state/ + config/) of a trained model.")
  flags.DEFINE_string("workdir", None, "Or a training workdir (its latest checkpoint).")
  flags.DEFINE_integer("batch", 16, "Windows per network call (Enhancer batch_size).")
  flags.DEFINE_integer("stride", None, "Hop between windows (Enhancer stride; default: the checkpoint's "
                       "config.data.eval_stride). Below the window the network does window / stride times the work.")
  flags.DEFINE_integer("window", None, "Window in samples (Enhancer window; default: config.data.enhance_window, "
                       "else the training window; collab rows: the training window). Its default stride keeps the "
                       "config's overlap fraction.")
  flags.DEFINE_integer("rate", 16000, "Sample rate of the generated input files.")
  flags.DEFINE_enum("signal", "piano", ["piano", "noise"], "Generated input: a looped piano phrase, or white noise.")
  flags.DEFINE_float("eta", 1.0, "Collaborative sampling: stop once D(y) >= eta (1.0: never early).")
  flags.DEFINE_integer("max_steps", None, "Collaborative sampling: K (default config.collab.max_steps).")
  flags.DEFINE_string("tmpdir", None, "Folder for the generated files (default: the system's).")
  flags.DEFINE_string("json", None, "Also write the table as JSON here.")
  flags.DEFINE_string("measure", None, "(internal) enhance this file in this process and print one JSON line.")
  flags.DEFINE_string("warmup_input", None, "(internal) the file enhanced first by --measure.")


# ----- generated inputs -------------------------------------------------------------------------------------------


def segment(rate: int, kind: str = "piano", seconds: float = 8.0, seed: int = 0) -> np.ndarray:
  """A float32 loop of `seconds`: a random piano phrase (peak -1 dBFS, faded out at its end) or white noise."""
  frames = int(round(seconds * rate))
  rng = np.random.default_rng(seed)
  if kind == "noise":
    return (0.1 * rng.standard_normal(frames)).astype(np.float32)
  from sr_jax.data import piano  # noqa: PLC0415

  phrase = piano.render_notes(piano.random_notes(rng, seconds - 1.0), rate, seed=seed)
  return piano.fit_length(phrase, frames, rate).astype(np.float32)


def signal_blocks(frames: int, loop: np.ndarray, block_frames: int) -> Iterator[np.ndarray]:
  """`frames` samples of `loop` repeated, as consecutive blocks of at most `block_frames` samples."""
  for start in range(0, frames, block_frames):
    yield loop[(start + np.arange(min(block_frames, frames - start))) % len(loop)]


def write_signal(path: str, seconds: float, rate: int, kind: str = "piano", block_frames: int = 1 << 18) -> int:
  """Writes a mono 16-bit WAV of `seconds` (block by block: memory does not grow with the length); its frames."""
  frames = int(round(seconds * rate))
  with sf.SoundFile(path, "w", rate, 1, "PCM_16") as f:
    for block in signal_blocks(frames, segment(rate, kind), block_frames):
      f.write(block)
  return frames


# ----- the model --------------------------------------------------------------------------------------------------


def make_checkpoint(workdir: str, arg: str = "loss.lambda_adv=0.01") -> str:
  """Saves an untrained state of configs/quickstart.py (with `arg` overrides) as training saves it; its step dir."""
  from configs import quickstart  # noqa: PLC0415
  from sr_jax.train import loop  # noqa: PLC0415
  from sr_jax.train.checkpoint import Checkpointer  # noqa: PLC0415

  config = quickstart.get_config(arg)
  ckpt = Checkpointer(workdir, config, keep_best=False, async_save=False)
  ckpt.save(0, loop.build_training(config).init(), force=True)
  ckpt.wait()
  ckpt.close()
  return os.path.join(workdir, "checkpoints", "0")


# ----- one measurement (in the subprocess) ------------------------------------------------------------------------


def measure(checkpoint: str, src: str, warmup: str, collab: bool, batch: int, eta: float,
            max_steps: int | None, stride: int | None = None, window: int | None = None) -> dict:
  """Loads the model, enhances `warmup`, then `src` (outputs beside them, removed); seconds and timings."""
  from sr_jax.enhance import Enhancer  # noqa: PLC0415

  start = time.perf_counter()
  enhancer = Enhancer(checkpoint, batch_size=batch, collab=collab, stride=stride, window=window,
                      collab_overrides={"eta": eta, "max_steps": max_steps} if collab else None)
  outputs = [f"{warmup}.out.wav", f"{src}.out.wav"]
  try:
    enhancer.enhance_file(warmup, outputs[0], overwrite=True, progress=False)
    warmup_s = time.perf_counter() - start
    report = enhancer.enhance_file(src, outputs[1], overwrite=True, progress=False)
  finally:
    for path in outputs:
      if os.path.exists(path):
        os.remove(path)
  return {"collab": enhancer.collab, "seconds": report.seconds, "elapsed_s": report.elapsed, "warmup_s": warmup_s,
          "realtime_factor": report.seconds / report.elapsed, "frames_out": report.frames_out,
          "stride": enhancer.stride, "window": enhancer.window}


def measure_in_subprocess(checkpoint: str, src: str, warmup: str, collab: bool, batch: int = 16, eta: float = 1.0,
                          max_steps: int | None = None, stride: int | None = None,
                          window: int | None = None) -> dict:
  """`measure` in a fresh Python process; adds its peak RSS (MiB). A failure is a UserError with its last line."""
  args = [sys.executable, os.path.abspath(__file__), f"--measure={src}", f"--warmup_input={warmup}",
          f"--checkpoint={checkpoint}", f"--collab={str(collab).lower()}", f"--batch={batch}", f"--eta={eta}"]
  if max_steps is not None:
    args.append(f"--max_steps={max_steps}")
  if stride is not None:
    args.append(f"--stride={stride}")
  if window is not None:
    args.append(f"--window={window}")
  with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
    p = subprocess.Popen(args, stdout=out, stderr=err, text=True)
    _, status, usage = os.wait4(p.pid, 0)  # the child's own rusage (RUSAGE_CHILDREN would be the max of all)
    p.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    err.seek(0)
    lines, errors = out.read().strip().splitlines(), err.read().strip().splitlines()
  if p.returncode != 0 or not lines:
    raise UserError(f"enhancing {src} failed (exit {p.returncode}): {errors[-1] if errors else 'no output'}")
  return {**json.loads(lines[-1]), "peak_rss_mb": usage.ru_maxrss / 1024}  # Linux: KiB


# ----- the table --------------------------------------------------------------------------------------------------


def parse_bools(values: list[str]) -> list[bool]:
  table = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
  if not values or any(v.strip().lower() not in table for v in values):
    raise UserError(f"--collab takes true and/or false, got {','.join(values)!r}")
  return [table[v.strip().lower()] for v in values]


def parse_minutes(values: list[str]) -> list[float]:
  try:
    minutes = [float(v) for v in values]
  except ValueError:
    minutes = []
  if not minutes or min(minutes) <= 0:
    raise UserError(f"--minutes takes positive numbers, got {','.join(values)!r}")
  return minutes


def target_lines(rows: list[dict]) -> list[str]:
  """One line per collab setting: the lowest realtime factor against 20 (plain model) and the peak RSS growth
  from the shortest to the longest input against 10%."""
  lines = []
  for collab in sorted({r["collab"] for r in rows}):
    mine = sorted((r for r in rows if r["collab"] == collab), key=lambda r: r["minutes"])
    rtf = min(r["realtime_factor"] for r in mine)
    text = f"{'collab' if collab else 'plain '}: realtime_factor min {rtf:.1f}"
    if not collab:
      text += f" ({'OK' if rtf >= RTF_TARGET else 'BELOW'} target >= {RTF_TARGET:g})"
    if len(mine) > 1:
      first, last = mine[0], mine[-1]
      growth = last["peak_rss_mb"] / first["peak_rss_mb"] - 1
      text += (f"; peak RSS {last['minutes']:g} min vs {first['minutes']:g} min {100 * growth:+.1f}% "
               f"({'OK' if growth <= RSS_TOLERANCE else 'ABOVE'} target <= +{100 * RSS_TOLERANCE:.0f}%)")
    lines.append(text)
  return lines


@exit_on_user_error
def main(argv):
  del argv
  if FLAGS.checkpoint and FLAGS.workdir:
    raise UserError("give at most one of --checkpoint and --workdir")
  collabs = parse_bools(FLAGS.collab)
  if FLAGS.measure:
    print(json.dumps(measure(FLAGS.checkpoint, FLAGS.measure, FLAGS.warmup_input, collabs[0], FLAGS.batch,
                             FLAGS.eta, FLAGS.max_steps, FLAGS.stride, FLAGS.window)), flush=True)
    return
  minutes = parse_minutes(FLAGS.minutes)
  with tempfile.TemporaryDirectory(prefix="sr_jax_bench_enhance_", dir=FLAGS.tmpdir) as tmp:
    model = FLAGS.checkpoint or FLAGS.workdir or make_checkpoint(os.path.join(tmp, "run"))
    from sr_jax.train.checkpoint import restore_config  # noqa: PLC0415

    c = restore_config(model)
    label = model if FLAGS.checkpoint or FLAGS.workdir else "untrained configs/quickstart.py (lambda_adv 0.01)"
    from sr_jax.enhance import geometry  # noqa: PLC0415

    window, stride = geometry(c, FLAGS.window, FLAGS.stride)  # checked before any file is made, as Enhancer will
    collab_geometry = geometry(c, FLAGS.window, FLAGS.stride, collab=True) if True in collabs else (window, stride)
    collab_note = "" if collab_geometry == (window, stride) else \
        " (collab rows: the training window {}, stride {})".format(*collab_geometry)
    print(f"model {label}: depth {c.model.depth}, width {c.model.width}, window {window}"
          f"{'' if FLAGS.window is None else ' (--window)'}, stride {stride}"
          f"{'' if FLAGS.stride is None else ' (--stride)'}{collab_note}"
          f", rate {c.data.rate}; batch {FLAGS.batch}; collab K = "
          f"{FLAGS.max_steps if FLAGS.max_steps is not None else c.collab.max_steps}, eta {FLAGS.eta}; input "
          f"{FLAGS.signal} at {FLAGS.rate} Hz; {common.machine()}", flush=True)
    warmup = os.path.join(tmp, "warmup.wav")
    write_signal(warmup, WARMUP_SECONDS, FLAGS.rate, FLAGS.signal)
    rows = []
    for m in minutes:
      src = os.path.join(tmp, f"{m:g}min.wav")
      write_signal(src, 60 * m, FLAGS.rate, FLAGS.signal)
      for collab in collabs:
        r = measure_in_subprocess(model, src, warmup, collab, FLAGS.batch, FLAGS.eta, FLAGS.max_steps, FLAGS.stride,
                                  FLAGS.window)
        rows.append({"name": f"{m:g} min{' collab' if collab else ''}", "minutes": m, **r})
        print(f"  {rows[-1]['name']}: {r['realtime_factor']:.1f}x real time, peak RSS {r['peak_rss_mb']:.0f} MiB",
              flush=True)
      os.remove(src)
  common.print_table(rows, COLUMNS)
  print("targets: realtime_factor >= 20 for the shipped model on 2 cores; peak RSS of 60 min within 10% of 1 min")
  print("\n".join(f"  {line}" for line in target_lines(rows)))
  if FLAGS.json:
    common.write_json(FLAGS.json, rows, model=label, batch=FLAGS.batch, rate=FLAGS.rate, signal=FLAGS.signal,
                      stride=stride, window=window)


if __name__ == "__main__":
  define_flags()
  app.run(main)
