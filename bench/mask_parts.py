r"""Which part of a model with a spectral mask front-end (model.mask_channels > 0) removes what.

  python bench/mask_parts.py --checkpoint=pretrained/music_16k --data=FOLDER_OF_CLEAN_AUDIO \
                             --chains="noise10=noise random 10" [--max_files=-1 --max_seconds=6 --seed=0 --json=FILE]

Each clean file is read, cropped and degraded exactly as `sr-jax evaluate` does (same files, file seeds and chains),
then enhanced (the model's windows and stride) by
  model       the whole model: the mask front-end, then the U-Net on its output
  mask_alone  the mask front-end's output, no U-Net after it
  unet_alone  the U-Net on the degraded input itself, the mask taken out
beside the degraded input. Means over files of SI-SDR (dB) and LSD. If unet_alone is near model, the U-Net does the
work and the mask adds little (music_16k and speech_16k on noise: the model cards' "What was tried").
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from bench import common  # noqa: E402
from sr_jax.enhance import Enhancer, _gated  # noqa: E402
from sr_jax.errors import UserError, exit_on_user_error  # noqa: E402

PARTS = ("model", "mask_alone", "unet_alone")
COLUMNS = ("files", "si_sdr", "lsd")


class Part(Enhancer):
  """An Enhancer that runs one part (PARTS) of a checkpoint's generator with a mask front-end."""

  def __init__(self, path: str, part: str):
    super().__init__(path)
    if self.gen.mask_channels <= 0:
      raise UserError(f"{path}: its generator has no mask front-end (model.mask_channels 0): nothing to split")
    if part == "mask_alone":
      self._net = _gated(lambda p, x: self.gen.apply({"params": p}, x[..., 0],
                                                       method=lambda g, v: g.mask(v))[..., None])
    elif part == "unet_alone":
      unet = self.gen.clone(mask_channels=0)
      self._params = {k: v for k, v in self._params.items() if k != "mask"}
      self._net = _gated(lambda p, x: unet.apply({"params": p}, x))
    elif part != "model":
      raise ValueError(f"unknown part {part!r}: one of {', '.join(PARTS)}")


def part_rows(checkpoint: str, files: list[str], root: str, chains: dict[str, str], max_seconds: float | None = None,
              seed: int = 0) -> list[dict]:
  """One row per (chain, system): "input" and each of PARTS, with the mean SI-SDR and LSD over the usable files."""
  from sr_jax.report import evaluation  # noqa: PLC0415

  parts = {name: Part(checkpoint, name) for name in PARTS}
  rate = parts["model"].rate
  enhancers = {name: part.enhance_array for name, part in parts.items()}
  scores: dict[tuple[str, str], list] = {}
  upsample = parts["model"].config.data.upsample  # what the model was given in training, as sr-jax evaluate does
  for result in evaluation.evaluate_chains(files, root, enhancers, chains, rate, seed, model_upsample=upsample,
                                           max_seconds=max_seconds):
    for system in ("input",) + PARTS:
      m = result.metrics[system]
      scores.setdefault((result.chain, system), []).append((m["si_sdr"], m["lsd"]))
  return [{"chain": chain, "system": system, "files": len(v), "si_sdr": float(np.mean([a for a, _ in v])),
           "lsd": float(np.mean([b for _, b in v]))} for (chain, system), v in scores.items()]


def define_flags() -> None:
  flags.DEFINE_string("checkpoint", None, "A run's workdir or an exported model whose generator has a mask.")
  common.define_evaluation_flags("Folder of clean reference audio (e.g. a corpus's valid/ split).")


@exit_on_user_error
def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  f = flags.FLAGS
  if not f.checkpoint or not f.data or not f.chains:
    raise UserError("--checkpoint, --data and --chains are required")
  from sr_jax.report import evaluation  # noqa: PLC0415

  chains = evaluation.parse_chains(f.chains)
  files = evaluation.clean_files(f.data, f.max_files)
  rows = part_rows(f.checkpoint, files, os.path.abspath(f.data), chains, f.max_seconds or None, f.seed)
  print(f"the parts of {f.checkpoint} on {len(files)} files of {f.data} ({common.machine()})")
  for row in rows:
    row["name"] = f"{row.pop('chain')} {row.pop('system')}"
  common.print_table(rows, COLUMNS)
  if f.json:
    common.write_json(f.json, rows, checkpoint=f.checkpoint, data=f.data, chains=chains)


if __name__ == "__main__":
  define_flags()
  app.run(main)
