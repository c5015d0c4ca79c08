r"""Degrades one audio file with a degradation chain and writes the degraded input at the target rate.

  python launch/degrade.py --input=clean.wav --output=degraded.wav \
      --chain="sample 4000 16000,whitenoise 0 0.002,reverb 0 50 50 100 0 0" --seed=0

The file is mixed to mono; its noise and reverb are seeded by --seed and the file's basename (so a file
degrades the same way wherever it lives). See sr_jax/data/degrade.py for the chain grammar.
"""

from __future__ import annotations

import os
import sys

try:
  import sr_jax  # noqa: F401  (installed with `pip install -e .`)
except ImportError:  # run from a checkout: python launch/degrade.py
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app
from absl import flags

from sr_jax.data import audio as audio_lib
from sr_jax.data import degrade as degrade_lib
from sr_jax.errors import UserError, exit_on_user_error

FLAGS = flags.FLAGS
flags.DEFINE_string("input", None, "Clean audio file to degrade (mixed to mono).")
flags.DEFINE_string("output", None, "Where to write the degraded input (.wav, .flac or .ogg), at the target rate.")
flags.DEFINE_string("chain", "", f"Degradation chain: {degrade_lib.GRAMMAR}. Empty: a mono copy.")
flags.DEFINE_integer("seed", 0, "Run seed; each file's seed is derived from it and the file's basename.")
flags.DEFINE_enum("upsample", "soxr", list(degrade_lib.UPSAMPLE_METHODS),
                  "How a sample step brings the band-limited input back up to the target rate.")
flags.DEFINE_bool("overwrite", False, "Replace --output if it exists.")
flags.mark_flags_as_required(["input", "output"])


@exit_on_user_error
def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise UserError(f"unexpected arguments: {' '.join(argv[1:])} (use --input, --output, --chain)")
  chain = degrade_lib.parse_chain(FLAGS.chain)  # a bad chain fails before any file is read
  if os.path.exists(FLAGS.output) and not FLAGS.overwrite:
    raise UserError(f"output {FLAGS.output} already exists; pass --overwrite to replace it")
  audio, rate = audio_lib.read(FLAGS.input, mono=True)
  seed = degrade_lib.file_seed(FLAGS.seed, os.path.basename(FLAGS.input))
  inp, _, target_rate = degrade_lib.degrade(audio, rate, chain, seed, upsample=FLAGS.upsample)
  audio_lib.write(FLAGS.output, inp, target_rate)
  print(f"wrote {FLAGS.output}: {len(inp)} frames at {target_rate} Hz")

