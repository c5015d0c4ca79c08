"""music_16k: music restoration at 16 kHz from real recordings of any instrument: band limits from 2 to 7 kHz by many
filters, noise from 0 to 30 dB SNR, rooms with RT60 0.2-1 s, alone and combined; one 1-D U-Net (depth 8, 1/8 width).

Data: the packaged music corpus (sr_jax/data/packaged.py: game soundtracks, band recordings, Sonic Pi and Hydrogen
samples that Debian packages ship, and music21 scores rendered through General MIDI soundfonts with a program per
piece), split by work, with whole families held out for testing (packaged.py's registry says which); every training
file degraded four ways by the random chain below.

Stages, `get_config("stage=NAME[,key=value,...]")` (default: the last):
  base   per-window SNR loss + multi-resolution STFT loss from the input (the generator starts as the identity).
  gan    from base: the same losses + the original's global discriminator.
  mrsd   from base: the same with a multi-resolution spectrogram discriminator and feature matching.
  plain  from base: the same losses only (the non-adversarial finish), the same steps; exported.

  sr-jax recipe --config=music_16k --workdir=runs/music_16k      (or python3 launch/recipe.py ...)
needs the Debian packages that packaged.py names (`python3 -m sr_jax.data.packaged survey` lists them).
"""

from sr_jax import recipes

STAGES = recipes.RESTORATION_STAGES
WORKDIR = "runs/music_16k"
FINISH = recipes.RESTORATION_FINISH
# The training degradations, each step drawn per example: a room (the synthetic reverb or image sources, RT60
# 0.2-0.8 s), a low-pass of any common kind at a log-uniform cut-off, noise of any colour (steady or modulated) at
# 5-40 dB SNR, a lossy codec. Milder and rarer rooms and noise than the targets' worst: with rooms in half the
# examples down to 0 dB SNR noise, the base's output fell below its input's SNR on band-limited music.
CHAIN = ("maybe 0.3 room random 0.2 0.8,maybe 0.85 lowpass random 2000 7000,maybe 0.4 noise random 5 40 random,"
         "maybe 0.1 codec random 0.3 1.0")


def get_config(arg: str | None = None):
  return recipes.restoration_config(arg, WORKDIR, kind="music", minutes=240.0, chain=CHAIN)
