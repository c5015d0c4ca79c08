r"""What could a gain per STFT bin reach? Oracle masks, computed from the clean target, beside the degraded input.

  python bench/oracle_masks.py --data=FOLDER_OF_CLEAN_AUDIO --chains="noise10=noise random 10;reverb05=room random 0.5"
                               [--ffts=512,2048 --rate=16000 --max_files=-1 --max_seconds=6 --seed=0 --json=FILE]

Each clean file is read, cropped and degraded exactly as `sr-jax evaluate` does (same files, file seeds and chains),
then, for each STFT size (Hann, hop a quarter of it, numpy float64), masked with a gain per bin that knows the clean
STFT S and the degraded one X (N = X - S: noise, the room's tail, a missing band alike):
  irm     sqrt(|S|^2 / (|S|^2 + |N|^2))     the ideal ratio mask
  wiener  |S|^2 / (|S|^2 + |N|^2)           the ideal Wiener gain
  psm     clip(Re(S conj(X)) / |X|^2, 0, 1) the best real gain in [0, 1] per bin (least squares on the bin)
Means over files of SI-SDR (dB) and LSD (the project's convention). A learned real mask, such as the front-end of
music_16k and speech_16k (model.mask_fft 512), cannot beat psm at its STFT size, nor fill a missing band; the
U-Net after it can do more in principle. Where a target asks more than psm reaches, a mask alone cannot meet it.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import scipy.signal  # noqa: E402
from absl import app, flags  # noqa: E402

from bench import common  # noqa: E402
from sr_jax.errors import UserError, exit_on_user_error  # noqa: E402

GAINS = ("irm", "wiener", "psm")
COLUMNS = ("files", "si_sdr", "lsd")
EPS = 1e-20  # in the gains' denominators: a bin where S, N (or X) are all 0 gets gain 0


def oracle_gain(kind: str, clean: np.ndarray, degraded: np.ndarray) -> np.ndarray:
  """The `kind` (GAINS) oracle gain of each bin, from the clean STFT and the degraded one (same shapes)."""
  noise = degraded - clean
  s2, n2 = np.abs(clean) ** 2, np.abs(noise) ** 2
  if kind == "irm":
    return np.sqrt(s2 / (s2 + n2 + EPS))
  if kind == "wiener":
    return s2 / (s2 + n2 + EPS)
  if kind == "psm":
    return np.clip(np.real(clean * np.conj(degraded)) / (np.abs(degraded) ** 2 + EPS), 0.0, 1.0)
  raise ValueError(f"unknown gain {kind!r}: one of {', '.join(GAINS)}")


def masked(target: np.ndarray, degraded: np.ndarray, n_fft: int, kinds=GAINS) -> dict[str, np.ndarray]:
  """{kind: the degraded signal through the `kind` oracle gain} on its STFT (Hann, n_fft, hop n_fft / 4), float64;
  both STFTs are taken once for all `kinds`."""
  hop = n_fft // 4
  kw = dict(nperseg=n_fft, noverlap=n_fft - hop, window="hann")
  x = np.asarray(degraded, np.float64)
  _, _, spec_x = scipy.signal.stft(x, **kw)
  _, _, spec_s = scipy.signal.stft(np.asarray(target, np.float64), **kw)
  return {kind: scipy.signal.istft(spec_x * oracle_gain(kind, spec_s, spec_x), **kw)[1][:len(x)] for kind in kinds}


def oracle_rows(files: list[str], root: str, chains: dict[str, str], rate: int, ffts: list[int],
                max_seconds: float | None = None, seed: int = 0) -> list[dict]:
  """One row per chain for the input and per (chain, STFT size, gain): mean SI-SDR and LSD over the usable files,
  each degraded as `sr-jax evaluate` degrades it (its file seed from `seed` and the file's key under `root`)."""
  from sr_jax import metrics  # noqa: PLC0415
  from sr_jax.data import datasets, degrade  # noqa: PLC0415

  sums: dict[tuple, list] = {}
  for path in files:
    clean = datasets.load_clean(path, rate)
    if clean is None:
      continue
    if max_seconds:
      clean = clean[:max(1, int(round(max_seconds * rate)))]
    file_seed = degrade.file_seed(seed, datasets.file_key(path, root))
    for name, chain in chains.items():
      x, target, _ = degrade.degrade(clean, rate, chain, file_seed)
      target = np.asarray(target, np.float64)
      systems = {(name, "input", ""): np.asarray(x, np.float64)}
      for n_fft in ffts:
        systems.update({(name, kind, n_fft): y for kind, y in masked(target, x, n_fft).items()})
      for key, y in systems.items():
        sums.setdefault(key, []).append((metrics.si_sdr(target, y), metrics.lsd(target, y)))
  return [{"chain": k[0], "system": k[1], "fft": k[2], "files": len(v), "si_sdr": float(np.mean([a for a, _ in v])),
           "lsd": float(np.mean([b for _, b in v]))} for k, v in sums.items()]


def parse_ffts(text: str) -> list[int]:
  """STFT sizes from '512,2048': each a multiple of 4, at least 16."""
  try:
    sizes = [int(s) for s in text.split(",")]
  except ValueError:
    raise UserError(f"--ffts must be integers separated by commas, got {text!r}") from None
  if not sizes or any(s < 16 or s % 4 for s in sizes):
    raise UserError(f"--ffts must be multiples of 4, each at least 16, got {text!r}")
  return sizes


def define_flags() -> None:
  common.define_evaluation_flags("Folder of clean reference audio (e.g. a corpus's test/ split).")
  flags.DEFINE_string("ffts", "512,2048", "STFT sizes (hop a quarter of each).")
  flags.DEFINE_integer("rate", 16000, "Sample rate the files are read at (Hz).")


@exit_on_user_error
def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  f = flags.FLAGS
  if not f.data or not f.chains:
    raise UserError("--data and --chains are required")
  from sr_jax.report import evaluation  # noqa: PLC0415

  chains = evaluation.parse_chains(f.chains)
  files = evaluation.clean_files(f.data, f.max_files)
  rows = oracle_rows(files, os.path.abspath(f.data), chains, f.rate, parse_ffts(f.ffts), f.max_seconds or None,
                     f.seed)
  print(f"oracle masks on {len(files)} files of {f.data} ({common.machine()})")
  for row in rows:
    row["name"] = f"{row.pop('chain')} {row.pop('system')} {row.pop('fft')}".strip()
  common.print_table(rows, COLUMNS)
  if f.json:
    common.write_json(f.json, rows, data=f.data, chains=chains)


if __name__ == "__main__":
  define_flags()
  app.run(main)
