r"""Where does a model's LSD come from? Its budget by band, split into level and detail, and two what-if bounds.

  python bench/lsd_budget.py --checkpoint=pretrained/piano_r4_16k --data=FOLDER_OF_CLEAN_AUDIO
                             [--bands=0,2000,2500,3000,4000,6000,8000 --max_files=-1 --max_seconds=30 --json=FILE]

Each clean file is degraded with the model's chain (or --chain) and enhanced by
`sr_jax.report.evaluation.evaluate_files`, as `launch/evaluate.py` does (same seeds and inputs). With the LSD of
`sr_jax.metrics` (X = log10(|S|^2 + 1e-8), STFT n_fft 2048, hop 512, Hann; per frame the root mean over bins of
(X^ - X)^2, then the mean over frames), for each system and band [edge_i, edge_i+1) (the last one includes Nyquist):
  d2      mean over frames and the band's bins of (X^ - X)^2, in bels^2 (sums over files: frames weigh alike)
  share   the band's part of the sum of (X^ - X)^2 over all bins: what each frame's mean is made of
  level   mean over frames of (the band's mean of X^ - X)^2: what one gain per frame and band would remove
  detail  d2 - level: the within-band variance of X^ - X, i.e. peaks and valleys (partials, the fine structure of
          noise) in one spectrum and not the other; no gain removes it
and three LSD values per system (mean over files, as launch/evaluate.py's summary):
  lsd     the system's LSD
  smooth  its log spectrum above the input's Nyquist replaced, in each frame and band, by its own band mean: its
          level kept, its detail removed
  oracle  the same bins replaced by the reference's band means: the true level of every band in every frame and
          no detail (what a predictor of each band's loudness, frame by frame, would reach without predicting
          partials)
The two bounds are what-ifs in the log domain, not signals (no waveform need have exactly those spectra): they say
how much of the LSD above the input's band is level and how much is detail.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from bench import common  # noqa: E402
from bench import hf_coherence  # noqa: E402
from bench.hf_coherence import SYSTEMS  # noqa: E402
from sr_jax.errors import exit_on_user_error  # noqa: E402

BAND_COLUMNS = ("d2", "share", "level", "detail")
BOUND_COLUMNS = ("lsd", "smooth", "oracle")
N_FFT, HOP = 2048, 512  # sr_jax.metrics.lsd's defaults, the convention of every LSD in this project


def define_flags() -> None:
  hf_coherence.define_flags(bands="0,2000,2500,3000,4000,6000,8000")


def log_power(x: np.ndarray) -> np.ndarray:
  """(frames, bins) float64: X = log10(|S|^2 + 1e-8) of sr_jax.metrics' LSD."""
  from sr_jax import metrics, spectral  # noqa: PLC0415

  return np.log10(np.asarray(spectral.power(spectral.stft(np.asarray(x, np.float64), N_FFT, HOP)), np.float64)
                  + metrics.EPS_POWER)


def band_masks(rate: int, edges: list[float]) -> list[np.ndarray]:
  """One boolean mask over the n_fft // 2 + 1 bins per band [edges[i], edges[i+1]) (the last includes its edge)."""
  freqs = np.arange(N_FFT // 2 + 1) * rate / N_FFT
  last = len(edges) - 2
  return [(freqs >= lo) & ((freqs < hi) if i < last else (freqs <= hi)) for i, (lo, hi) in
          enumerate(zip(edges, edges[1:]))]


def band_sums(ref: np.ndarray, est: np.ndarray, masks: list[np.ndarray]) -> np.ndarray:
  """(bands, 4): the sums over frames and bins of (X^ - X)^2 and of (band mean of X^ - X)^2 (once per bin), the
  number of values, and the sum of (X^ - X)^2 over all bins (the same in every row) of log spectra (frames, bins)."""
  diff = est - ref
  total = np.sum(diff ** 2)
  out = np.zeros((len(masks), 4))
  for i, m in enumerate(masks):
    d = diff[:, m]
    out[i] = [np.sum(d ** 2), np.sum(d.mean(axis=1) ** 2) * m.sum(), d.size, total]
  return out


def band_rows(system: str, sums: np.ndarray, edges: list[float]) -> list[dict]:
  """The table's rows of one system from its summed `band_sums`."""
  rows = []
  for (d2, level, n, total), lo, hi in zip(sums, edges, edges[1:]):
    rows.append(dict(name=f"{system} {lo:g}-{hi:g} Hz", d2=d2 / n if n else None,
                     share=d2 / total if total > 0 else None, level=level / n if n else None,
                     detail=(d2 - level) / n if n else None))
  return rows


def _lsd(ref: np.ndarray, est: np.ndarray) -> float:
  return float(np.mean(np.sqrt(np.mean((est - ref) ** 2, axis=1))))


def bounds(ref: np.ndarray, est: np.ndarray, masks: list[np.ndarray], above: np.ndarray) -> dict[str, float]:
  """{"lsd", "smooth", "oracle"} of one file's log spectra (see the module docstring); the bins of each band that
  are also in `above` (the bins above the input's Nyquist) are replaced."""
  smooth, oracle = est.copy(), est.copy()
  for m in masks:
    m = m & above
    if m.any():
      smooth[:, m] = est[:, m].mean(axis=1, keepdims=True)
      oracle[:, m] = ref[:, m].mean(axis=1, keepdims=True)
  return {"lsd": _lsd(ref, est), "smooth": _lsd(ref, smooth), "oracle": _lsd(ref, oracle)}


@exit_on_user_error
def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  f = flags.FLAGS
  chain, rate, edges, _, results = hf_coherence.evaluated_files(f)
  from sr_jax.report import evaluation  # noqa: PLC0415

  masks = band_masks(rate, edges)
  above = np.arange(N_FFT // 2 + 1) * rate / N_FFT >= evaluation.cutoff_hz(chain, rate)
  sums = {s: np.zeros((len(edges) - 1, 4)) for s in SYSTEMS}
  per_file = {s: [] for s in SYSTEMS}
  for result in results:
    ref = log_power(result.signals["target"])
    for system in SYSTEMS:
      est = log_power(result.signals[system])
      sums[system] += band_sums(ref, est, masks)
      per_file[system].append(bounds(ref, est, masks, above))
  band_table = [r for system, s in sums.items() for r in band_rows(system, s, edges)]
  bound_table = [dict(name=system, **{k: float(np.mean([b[k] for b in per_file[system]])) for k in BOUND_COLUMNS})
                 for system in SYSTEMS]
  print(f"{f.checkpoint} on {len(per_file['model'])} files of {f.data} (chain {chain!r}, {common.machine()})")
  common.print_table(band_table, BAND_COLUMNS)
  print()
  common.print_table(bound_table, BOUND_COLUMNS)
  if f.json:
    common.write_json(f.json, band_table + bound_table, checkpoint=f.checkpoint, data=f.data, chain=chain)


if __name__ == "__main__":
  define_flags()
  app.run(main)
