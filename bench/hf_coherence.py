r"""How much of a restored band is the real signal? Band-wise coherence of a model's output with the reference.

  python bench/hf_coherence.py --checkpoint=pretrained/piano_r4_16k --data=FOLDER_OF_CLEAN_AUDIO
                               [--bands=0,2000,2500,3000,4000,8000 --max_files=-1 --max_seconds=30 --json=FILE]

Each clean file is degraded with the model's chain (or --chain) and enhanced by
`sr_jax.report.evaluation.evaluate_files`, as `launch/evaluate.py` does (same seeds and inputs), then compared with
the reference in the frequency bands [edge_i, edge_i+1) of one FFT of the whole file; sums over files (so a
band's numbers weigh files by their energy there). Columns per system and band:
  rho       Re<Y, X> / (|Y| |X|): normalised correlation of the output Y with the reference X in the band (1: the true
            waveform; 0: energy unrelated in phase to the truth, as invented texture or noise is)
  energy    |Y|^2 / |X|^2: the output's energy in the band relative to the reference's
  err       |Y - X|^2 / |X|^2: the band's squared error relative to its energy; 1 = leaving the band empty (as the
            band-limited input does); below 1 the band adds to SNR, above 1 it takes from it
  best_err  1 - rho^2: the error the same output would have at its best gain
LSD rewards the right energy in a band whatever its phase; SNR rewards only the coherent part. A model that adds
energy with rho ~ 0 lowers LSD and raises err above 1 (SNR below the input's): this table tells the two apart.
Systems: the model, cubic spline and the soxr band-limited input (what the model receives).
"""

from __future__ import annotations

import os
import sys
from typing import Iterator

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from bench import common  # noqa: E402
from sr_jax.errors import UserError, exit_on_user_error  # noqa: E402

COLUMNS = ("rho", "energy", "err", "best_err")
SYSTEMS = ("model", "spline", "input")  # the model, cubic spline, the band-limited input (names of evaluation)


def define_flags(bands: str = "0,2000,2500,3000,4000,8000") -> None:
  """The flags of this script (and of bench/lsd_budget.py, with its default `bands`)."""
  flags.DEFINE_string("checkpoint", None, "The model: an exported folder, a run's workdir or a checkpoint step.")
  flags.DEFINE_string("data", None, "Folder of clean reference audio (e.g. a corpus's test/ split).")
  flags.DEFINE_string("chain", None, "Degradation chain (default: the model's config.data.chain).")
  flags.DEFINE_string("bands", bands, "Band edges in Hz, increasing.")
  flags.DEFINE_integer("max_files", -1, "At most this many files (sorted); -1: all.")
  flags.DEFINE_float("max_seconds", 30.0, "Crop each file to its first this many seconds (0: whole files).")
  flags.DEFINE_integer("seed", 0, "Degradation seed (as launch/evaluate.py's --seed).")
  flags.DEFINE_string("json", None, "Also write the rows to this JSON file.")


def parse_edges(text: str, rate: int) -> list[float]:
  """Band edges from 'e0,e1,...' (Hz): at least two, strictly increasing, within [0, rate / 2]."""
  try:
    edges = [float(e) for e in text.split(",")]
  except ValueError:
    raise UserError(f"--bands must be numbers in Hz separated by commas, got {text!r}") from None
  if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])) or edges[0] < 0 or edges[-1] > rate / 2:
    raise UserError(f"--bands must be >= 2 increasing edges within 0..{rate // 2} Hz, got {text!r}")
  return edges


def band_sums(target: np.ndarray, estimate: np.ndarray, rate: int, edges: list[float]) -> np.ndarray:
  """(bands, 3) float64: Re<Y, X>, |Y|^2, |X|^2 over the rfft bins f with edges[i] <= f < edges[i+1]
  (the last band includes rate / 2)."""
  x = np.fft.rfft(np.asarray(target, np.float64))
  y = np.fft.rfft(np.asarray(estimate, np.float64))
  freqs = np.fft.rfftfreq(len(target), 1.0 / rate)
  out = np.zeros((len(edges) - 1, 3))
  for i, (lo, hi) in enumerate(zip(edges, edges[1:])):
    m = (freqs >= lo) & ((freqs < hi) if i < len(edges) - 2 else (freqs <= hi))
    out[i] = [np.real(np.vdot(x[m], y[m])), np.sum(np.abs(y[m]) ** 2), np.sum(np.abs(x[m]) ** 2)]
  return out


def band_rows(system: str, sums: np.ndarray, edges: list[float]) -> list[dict]:
  """The table's rows of one system from its summed `band_sums`."""
  rows = []
  for (yx, yy, xx), lo, hi in zip(sums, edges, edges[1:]):
    rho = yx / np.sqrt(yy * xx) if yy > 0 and xx > 0 else 0.0
    rows.append(dict(name=f"{system} {lo:g}-{hi:g} Hz", rho=float(rho),
                     energy=float(yy / xx) if xx > 0 else None,
                     err=float((yy + xx - 2 * yx) / xx) if xx > 0 else None, best_err=float(1 - rho ** 2)))
  return rows


def evaluated_files(f) -> tuple[str, int, list[float], list[str], Iterator]:
  """From the parsed flags `f`: (chain, rate, band edges, files, an iterator of evaluation.FileResult), with the same
  files, seeds, degradation and model input as launch/evaluate.py. `UserError` for a missing or bad flag."""
  if not f.checkpoint or not f.data:
    raise UserError("--checkpoint and --data are required")
  from sr_jax.enhance import Enhancer  # noqa: PLC0415
  from sr_jax.report import evaluation  # noqa: PLC0415

  files = evaluation.clean_files(f.data, f.max_files)
  enhancer = Enhancer(f.checkpoint)
  chain = f.chain or enhancer.config.data.chain
  rate = evaluation.eval_rate(enhancer.config, chain)
  edges = parse_edges(f.bands, rate)
  results = evaluation.evaluate_files(files, os.path.abspath(f.data), {"model": enhancer.enhance_array}, chain, rate,
                                      seed=f.seed, model_upsample=enhancer.config.data.upsample,
                                      max_seconds=f.max_seconds or None)
  return chain, rate, edges, files, results


@exit_on_user_error
def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  f = flags.FLAGS
  chain, rate, edges, files, results = evaluated_files(f)
  sums = {s: np.zeros((len(edges) - 1, 3)) for s in SYSTEMS}
  for result in results:
    for system in SYSTEMS:
      sums[system] += band_sums(result.signals["target"], result.signals[system], rate, edges)
  rows = [r for system, s in sums.items() for r in band_rows(system, s, edges)]
  print(f"{f.checkpoint} on {len(files)} files of {f.data} (chain {chain!r}, {common.machine()})")
  common.print_table(rows, COLUMNS)
  if f.json:
    common.write_json(f.json, rows, checkpoint=f.checkpoint, data=f.data, chain=chain)


if __name__ == "__main__":
  define_flags()
  app.run(main)
