r"""Builds the built-in piano corpus (music21 scores rendered offline) used by the quickstart.

  python launch/make_corpus.py                      # 30 min at 16 kHz into the default folder
  python launch/make_corpus.py --out=/data/piano --minutes=120 --workers=8
  python launch/make_corpus.py --renderer=fluidsynth --soundfont=/usr/share/sounds/sf2/FluidR3_GM.sf2
  python launch/make_corpus.py --renderer=fluidsynth --soundfont=/usr/share/sounds/sf2/FluidR3_GM.sf2,/usr/share/sounds/sf3/MuseScore_General.sf3

A rerun with the same flags does no work; a larger --minutes adds pieces to the same folder. --splits=test builds
only the test split (an evaluation set: the same pieces as the test split of a full build with the same --minutes,
in a tenth of the time); a later build of all splits into that folder renders only the others.
"""

from __future__ import annotations

import os
import sys

if __package__ in (None, ""):  # `python launch/make_corpus.py` from a checkout: make `sr_jax` importable
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # pylint: disable=wrong-import-position

from sr_jax.data import corpus  # pylint: disable=wrong-import-position
from sr_jax.errors import exit_on_user_error  # pylint: disable=wrong-import-position

_OUT = flags.DEFINE_string("out", None, "Output folder (default: corpus.default_corpus_dir(renderer, rate), "
                           "under $SR_JAX_DATA or ~/.cache/sr_jax/corpora).")
_MINUTES = flags.DEFINE_float("minutes", 30.0, "Minutes of audio in all (split 80/10/10 by work).")
_RATE = flags.DEFINE_integer("rate", 16000, "Sample rate of the corpus in Hz.")
_RENDERER = flags.DEFINE_enum("renderer", "synth", list(corpus.RENDERERS),
                              "synth: the numpy piano synthesiser (no extra install); fluidsynth: Debian's "
                              "fluidsynth with a General MIDI soundfont.")
_SOUNDFONT = flags.DEFINE_string("soundfont", None, "Soundfont for --renderer=fluidsynth (default "
                                 "/usr/share/sounds/sf2/FluidR3_GM.sf2 from fluid-soundfont-gm), or several, "
                                 "comma-separated: each piece is rendered by one of them, in turn.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the order in which pieces are picked and of the humanisation.")
_WORKERS = flags.DEFINE_integer("workers", None, "Parallel worker processes (default: all CPU cores).")
_SPLITS = flags.DEFINE_string("splits", ",".join(corpus.SPLITS), "Build only these splits (comma-separated), e.g. "
                              "test for an evaluation set: the same pieces as in a full build with these --minutes.")


@exit_on_user_error
def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  out = _OUT.value or corpus.default_corpus_dir(_RENDERER.value, _RATE.value, _SOUNDFONT.value)
  splits = corpus.check_splits(_SPLITS.value)
  only = "" if splits == corpus.SPLITS else f"; only the {' and '.join(splits)} split{'s' * (len(splits) > 1)}"
  print(f"building the piano corpus in {out} ({_MINUTES.value:g} min, {_RATE.value} Hz, {_RENDERER.value}{only})",
        flush=True)
  s = corpus.build_corpus(out, minutes=_MINUTES.value, rate=_RATE.value, renderer=_RENDERER.value,
                          soundfont=_SOUNDFONT.value, seed=_SEED.value, workers=_WORKERS.value,
                          splits=splits)
  per_split = ", ".join(f"{k} {s['minutes'][k]:.1f} min ({s['pieces'][k]} pieces)" for k in corpus.SPLITS)
  print(f"minutes per split: {per_split}; total {sum(s['minutes'].values()):.1f} min")
  print(f"done in {s['seconds_taken']:.1f} s: {s['rendered']} pieces rendered, {s['skipped']} already built, "
        f"{s['failed']} unreadable scores skipped")

