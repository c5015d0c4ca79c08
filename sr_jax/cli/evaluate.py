r"""Evaluates a trained model on clean audio files and writes a report: metrics.json and a self-contained page.

  python launch/evaluate.py --workdir=runs/tiny --data=CORPUS/test --report=runs/tiny/report
  python launch/evaluate.py --checkpoint=runs/gan/checkpoints/2000 --data=clean/ --report=out/ --collab \
      --chain="sample 4000 16000,whitenoise 0 0.002" --max_files=20 --max_seconds=30
  python launch/evaluate.py --model=piano_r2_16k --data=CORPUS/test --report=out/ \
      --chains="bw2k=lowpass random 2000;bw4k=sample 8000 16000;noise10=noise random 10;reverb05=room random 0.5"

Each clean file is degraded with --chain (default: the model's config.data.chain), or with each of the named
--chains in turn (NAME=CHAIN;NAME=CHAIN..., or a file of NAME=CHAIN lines; every chain with the same per-file seed
as a --chain run of it alone), and --seed, enhanced by the model (loaded once, for all chains; and with --collab by
the model with collaborative sampling), and scored with LSD, LSD-HF, LSD-LF, SNR and SI-SDR (and wideband PESQ and
STOI where `pip install -e ".[speech]"` installed them) against the clean file, next to the baselines: cubic-spline
and linear interpolation of the low-rate input and the (soxr) degraded input itself. The summary is the plain mean
over files, per chain, and per test source where the files group by one (a packaged corpus's manifest.tsv in --data
or its parent, else several subfolders of --data). Open REPORT/index.html in a browser: a summary per chain and a
by-degradation table, a by-source table, every file's metrics in one sortable table, and audio and spectrograms of
at most --max_assets (chain, file) pairs (the first, the best, median and worst by the model's LSD gain over spline,
more spread over that ranking); metrics.json has every number, and report.md the by-degradation and by-source tables
in GitHub markdown for a model card. See sr_jax/report/evaluation.py for the metrics, sr_jax/report/schema.py for
metrics.json and the ranking, sr_jax/report/html.py for the page. The report is written to a temporary folder and
moved into place at the end: a failed run leaves no half report. The last line says where the time went: the model's
enhance calls, and the rest (reading, degrading, scoring, writing the report) per file (per file and chain with
--chains).
"""

from __future__ import annotations

import os
import time

from absl import app
from absl import flags

from sr_jax.cli import model_flags
from sr_jax.data import windows
from sr_jax.errors import UserError, exit_on_user_error
from sr_jax.report import evaluation, schema

FLAGS = flags.FLAGS
flags.DEFINE_string("data", None, "Folder of clean reference audio files (any format and rate, searched "
                    "recursively), e.g. a corpus split folder such as CORPUS/test.")
flags.DEFINE_string("chain", None, "Degradation chain making the inputs, e.g. 'sample 4000 16000,whitenoise 0 0.002' "
                    "(grammar: sr_jax/data/degrade.py); default: the model's config.data.chain.")
flags.DEFINE_string("chains", None, "Or several named chains, each applied to every file: 'NAME=CHAIN;NAME=CHAIN...' "
                    "(e.g. 'bw4k=sample 8000 16000;noise10=noise random 10'), or a text file with one NAME=CHAIN a "
                    "line (# comments). Names: letters, digits, _ . + -. One summary per chain in the report. The "
                    "chain 'none' scores the model on the clean audio itself (does it harm what needs no repair?).")
flags.DEFINE_integer("seed", 0, "Degradation seed; each file's seed derives from it and the file's name.")
flags.DEFINE_string("report", None, "Report folder to write (metrics.json, index.html, report.md, WAVs, "
                    "spectrograms).")
flags.DEFINE_bool("collab", False, "Also evaluate the model with collaborative sampling (needs a discriminator).")
flags.DEFINE_integer("max_files", -1, "Evaluate at most this many files (sorted by path); -1: all.")
flags.DEFINE_float("max_seconds", None, "Crop each file to its first this many seconds.")
flags.DEFINE_integer("max_assets", schema.DEFAULT_MAX_ASSETS, "Write audio and spectrograms of at most this many "
                     "(chain, file) pairs (the first, the best, median and worst by LSD gain over spline, more spread "
                     "over that ranking); -1: all, 0: none. Every file's metrics are in the report whatever this is.")
flags.DEFINE_bool("overwrite", False, "Replace an existing report folder.")
flags.DEFINE_integer("stride", None, "Hop between the model's windows, in samples at its rate (default: the "
                     "checkpoint's config.data.eval_stride, scaled by window / config.data.window for another "
                     "window); below the window they overlap (see launch/enhance.py).")
flags.DEFINE_integer("window", None, "The model's window in samples (default: the checkpoint's "
                     "config.data.enhance_window, else its training window); a longer one gives each sample more "
                     "context, see launch/enhance.py. Not with --collab, which evaluates the model and the sampler "
                     "both at the training window.")


def check_flags() -> dict[str, str] | None:
  """The flag mistakes found before anything is loaded; returns --chains as {name: chain} (None without it)."""
  model_flags.check(step_needs_workdir=False)
  for name in ("data", "report"):
    if not FLAGS[name].value:
      raise UserError(f"--{name} is required")
  if FLAGS.max_files == 0 or FLAGS.max_files < -1:
    raise UserError(f"--max_files must be a positive number of files or -1 (all), got {FLAGS.max_files}")
  if FLAGS.max_assets < -1:
    raise UserError(f"--max_assets must be a number of files, 0 (none) or -1 (all), got {FLAGS.max_assets}")
  if FLAGS.max_seconds is not None and not FLAGS.max_seconds > 0:
    raise UserError(f"--max_seconds must be > 0, got {FLAGS.max_seconds}")
  if FLAGS.seed < 0:
    raise UserError(f"--seed must not be negative, got {FLAGS.seed}")
  if FLAGS.stride is not None:
    windows.check_count(FLAGS.stride, "--stride")
  if FLAGS.window is not None:
    windows.check_count(FLAGS.window, "--window")
  if FLAGS.chain is not None and FLAGS.chains is not None:
    raise UserError("give --chain (one chain) or --chains (several named ones), not both")
  if FLAGS.chains is not None:
    if not FLAGS.chains.strip():
      raise UserError("--chains is empty: give NAME=CHAIN;NAME=CHAIN... or a file of NAME=CHAIN lines")
    return evaluation.parse_chains(FLAGS.chains)  # bad chains fail before the model is loaded
  if FLAGS.chain is not None:
    evaluation.check_chain(FLAGS.chain)
  return None


def build_systems(path: str, step: int | None, collab: bool, stride: int | None = None, window: int | None = None,
                  fill_gain_db: float | None = None):
  """(config, checkpoint step folder, {system: enhance function}, the Enhancer of "model") of the model at `path`."""
  from sr_jax import enhance  # noqa: PLC0415  (jax and the networks: only once the flags are fine)
  from sr_jax.train.checkpoint import find_step_dir  # noqa: PLC0415

  checkpoint = find_step_dir(path, step)
  if collab:
    # the sampler runs at the training window (enhance.geometry), and the plain model with it: the two rows then
    # differ by the sampler alone
    sampler = enhance.Enhancer(checkpoint, collab=True, stride=stride, window=window, fill_gain_db=fill_gain_db)
    window = sampler.window
  enhancer = enhance.Enhancer(checkpoint, stride=stride, window=window, fill_gain_db=fill_gain_db)
  systems = {"model": enhancer.enhance_array}
  if collab:
    systems["collab"] = sampler.enhance_array
  return enhancer.config, checkpoint, systems, enhancer


def _fmt(value: float | None) -> str:
  return "n/a" if value is None else f"{value:.3f}"


def _print_summary(doc: dict) -> None:
  views = schema.chain_views(doc)
  for view in views:
    if len(views) > 1 or view["name"] is not None:
      print(f"{view['name']}: {view['chain']}")
    metrics = schema.metric_names(view["summary"])
    print(f"{'system':<8}" + "".join(f"{m:>9}" for m in metrics))
    for system, row in view["summary"].items():
      print(f"{system:<8}" + "".join(f"{_fmt(row[m]):>9}" for m in metrics))


@exit_on_user_error
def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise UserError(f"unexpected arguments: {' '.join(argv[1:])} (use --workdir, --data, --report, ...)")
  named = check_flags()
  evaluation.check_report_dir(FLAGS.report, FLAGS.overwrite)
  files = evaluation.clean_files(FLAGS.data, FLAGS.max_files, exclude=FLAGS.report)
  config, checkpoint, systems, enhancer = build_systems(model_flags.folder(), FLAGS.step, FLAGS.collab,
                                                        FLAGS.stride, FLAGS.window, FLAGS.fill_gain_db)
  chain = named if named is not None else FLAGS.chain if FLAGS.chain is not None else config.data.chain
  chains = named if named is not None else {None: chain}
  rate = None
  for text in chains.values():
    rate = evaluation.eval_rate(config, text)
  done = []
  calls = []  # seconds spent inside each of the systems' enhance calls
  total = len(files) * len(chains)

  def timed(enhance: evaluation.EnhanceFn) -> evaluation.EnhanceFn:
    def call(audio, audio_rate):
      start = time.perf_counter()
      try:
        return enhance(audio, audio_rate)
      finally:
        calls.append(time.perf_counter() - start)
    return call

  def progress(result: evaluation.FileResult) -> None:
    done.append(result)
    m = result.metrics["model"]
    which = "" if result.chain is None else f" [{result.chain}]"
    print(f"[{len(done)}/{total}] {result.name}{which}: model LSD {_fmt(m['lsd'])}, SNR {_fmt(m['snr'])} dB",
          flush=True)

  start = time.perf_counter()
  doc = evaluation.write_report(
      FLAGS.report, files, FLAGS.data, {name: timed(fn) for name, fn in systems.items()}, chain, checkpoint, rate,
      seed=FLAGS.seed, model_upsample=config.data.upsample, max_seconds=FLAGS.max_seconds,
      silence_db=config.data.silence_db, overwrite=FLAGS.overwrite, progress=progress, stride=enhancer.stride,
      window=enhancer.window, max_assets=FLAGS.max_assets, fill_gain_db=enhancer.fill_gain_db)
  wall = time.perf_counter() - start
  _print_summary(doc)
  n = len(schema.chain_views(doc)[0]["files"])
  print(f"wrote {FLAGS.report}/index.html, metrics.json and report.md ({n} files"
        f"{'' if named is None else f' x {len(chains)} chains'}, mean over files; audio and spectrograms of "
        f"{len(doc['assets'])})")
  _print_time(wall, calls, n, len(chains) if named is not None else None)


def _print_time(wall: float, calls: list[float], files: int, chains: int | None = None) -> None:
  """Where the report's time went: the enhance calls (the first one compiles the model) and the rest, per file or,
  with named `chains`, per (file, chain) evaluation."""
  enhancing, other = sum(calls), wall - sum(calls)
  share = ""
  if enhancing > 0:
    share = f", {100 * other / enhancing:.0f}% of the enhancement time"
    if len(calls) > 1 and enhancing > calls[0]:
      steady = (enhancing - calls[0]) * len(calls) / (len(calls) - 1)  # the first call timed like the others
      share += f" ({100 * other / steady:.0f}% of it without the compilation)"
  first = f" ({calls[0]:.1f} s the first call, which compiles)" if calls else ""
  what = f"{files} files" if chains is None else f"{files} files x {chains} chains"
  runs = files if chains is None else files * chains
  unit = "file" if chains is None else "file and chain"
  print(f"time: {wall:.1f} s for {what}, {enhancing:.1f} s in the model's enhance calls{first}; the rest "
        f"(reading, degrading, scoring, writing the report) {other:.1f} s, {1000 * other / runs:.0f} ms per "
        f"{unit}{share}")
