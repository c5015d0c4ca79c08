"""music_16k: music restoration at 16 kHz from real recordings of any instrument: band limits from 2 to 7 kHz by many
filters, noise from 0 to 30 dB SNR, rooms with RT60 0.2-1 s, alone and combined; a spectral mask front-end before a
1-D U-Net (depth 8, 1/8 width).

Data: the packaged music corpus (sr_jax/data/packaged.py: game soundtracks, band recordings, Sonic Pi and Hydrogen
samples that Debian packages ship, and music21 scores rendered through General MIDI soundfonts with a program per
piece), split by work, with whole families held out for testing (packaged.py's registry says which); every training
file degraded four ways by the random chains below.

Stages, `get_config("stage=NAME[,key=value,...]")` (default: the last):
  base   each window's negative SNR in dB, soft-capped at 30 dB, from the input (the generator starts as the
         identity).
  hard   from base: the same loss on the full-strength chain (HARD_CHAIN: more and stronger rooms and noise).
  mask   from hard: the spectral mask front-end (a gain per STFT bin, sr_jax/models/mask.py) added before the U-Net,
         both trained on the same loss and chain; from here on the targets take the phase the chain's IIR filters
         gave the input (data.target_phase).
  gan    from mask: the same loss + a multi-resolution STFT loss + the original's global discriminator.
  mrsd   from mask: the same with a multi-resolution spectrogram discriminator and feature matching.
  plain  from mask: the SNR and STFT losses only (the non-adversarial finish), the same steps.
  fill   from plain: the spectral fill (sr_jax/models/fill.py) added after the U-Net, noise at a learned level per
         STFT bin where the output lacks a band, played FILL_GAIN_DB under the level training gives it; exported.

  sr-jax recipe --config=music_16k --workdir=runs/music_16k      (or python3 launch/recipe.py ...)
needs the Debian packages that packaged.py names (`python3 -m sr_jax.data.packaged survey` lists them).
"""

from sr_jax import recipes

STAGES = recipes.RESTORATION_STAGES
WORKDIR = "runs/music_16k"
FINISH = recipes.RESTORATION_FINISH
# The training degradations, each step drawn per example. Base: a room (the synthetic reverb or image sources, RT60
# 0.2-0.8 s), a low-pass of any common kind at a log-uniform cut-off, noise of any colour (steady or modulated) at
# 5-40 dB SNR, a lossy codec. Hard: rooms to RT60 1 s and noise at 0-30 dB SNR, both more often.
CHAIN = ("maybe 0.3 room random 0.2 0.8,maybe 0.85 lowpass random 2000 7000,maybe 0.4 noise random 5 40 random,"
         "maybe 0.1 codec random 0.3 1.0")
# The fill's level in enhancement re its trained level (model.fill_gain_db), chosen on the validation split: the
# highest whose PESQ-wb on voices (narrowband, telephone) is not under plain's; at its trained level the fill costs
# 0.25-0.35 PESQ-wb there.
FILL_GAIN_DB = -9.0
HARD_CHAIN = ("maybe 0.4 room random 0.2 1.0,maybe 0.7 lowpass random 2000 7000,maybe 0.6 noise random 0 30 random,"
              "maybe 0.1 codec random 0.3 1.0")


def get_config(arg: str | None = None):
  # leaky up blocks: with ReLU, every unit of this recipe's last up block ends negative on every input, so nothing
  # below it reaches the output (the model card's "What was tried"). Targets with the IIR filters' phase: against
  # clean ones a real mask learns to cut passbands those filters turned by more than 90 degrees.
  # 9,000 mask steps: at 6,000 its noise removal was still rising (mains hum most), 15,000 add 0.2 dB for 30 more
  # minutes. The mask keeps STFT 512/128 and 256 channels: at 1024/256 it removed 1 dB less noise, with 512 channels
  # no more (the card's "What was tried"). It learns only through the model's output: a loss on its own output as well
  # made it a better denoiser alone and the model 1 dB worse on noise (the U-Net does most of the denoising).
  # The fill stage's STFT term at 1: at 0.3 its LSD was 0.03-0.1 higher on every band limit but soxr 2 kHz (0.06
  # lower), SNR alike (validation). Seed 1: the shipped model's run (seed 0's plain is the card's run-to-run spread).
  return recipes.restoration_config(arg, WORKDIR, kind="music", minutes=240.0, chain=CHAIN, hard_chain=HARD_CHAIN,
                                    mask_steps=9000, up_activation="leaky_relu", target_phase=True, fill_stft=1.0,
                                    fill=True, fill_gain_db=FILL_GAIN_DB, seed=1)
