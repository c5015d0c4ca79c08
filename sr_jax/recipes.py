"""Recipes: one config file per shipped model, its training stages as variants of that file, and the runner behind
`sr-jax recipe`, which trains every stage in order and resumes where it stopped.

A recipe file (configs/piano_r4_16k.py) declares, beside `get_config(arg)`:
  STAGES    the stages in the order they run; `get_config("stage=NAME,key=value,...")` is stage NAME's config
            (default: the last stage), see `split_stage`
  VARIANTS  (optional) STAGES and the variants run only when named, e.g. a critic trained after the last stage
  WORKDIR   the default workdir: stage NAME trains in WORKDIR/NAME; a stage's train.init_from is the folder of the
            stage it starts from, and data.cache_dir a cache of degraded pairs shared by the stages, both under it
  FINISH    (optional) what follows the last stage, in order: ("shape", {"steps": N}) shapes the last stage's
            discriminator (launch/shape.py), ("export", {"parts": (...), "dtype": ...}) exports its networks to
            WORKDIR/export (launch/export.py)
Recipe files import only from sr_jax, ml_collections and the standard library (never another recipe), so each is
read alone; what several recipes share (the training corpus) is here.

The runner trains stage NAME in --workdir/NAME with `sr_jax.train.train_and_evaluate`, each config's paths under
WORKDIR moved under --workdir. A stage whose latest checkpoint is at its last step is skipped, one that stopped
part-way resumes from its checkpoint, and a stage is only started once the stage it starts from is finished.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any, NamedTuple

from sr_jax import config as config_lib, layout, resources
from sr_jax.errors import UserError

# ----- what the recipes share -----------------------------------------------------------------------------------

# The training corpus of the piano recipes: the built-in corpus (sr_jax/data/corpus.py) rendered with Debian's
# fluidsynth, each piece by one of three sampled pianos of different timbre in turn (FluidR3 bright, MuseScore General
# and csound's sf_GMbank darker). The model cards evaluate on a fourth, TIMGM6MB, which training never uses.
FLUIDR3 = "/usr/share/sounds/sf2/FluidR3_GM.sf2"  # apt: fluid-soundfont-gm
MUSESCORE = "/usr/share/sounds/sf3/MuseScore_General.sf3"  # apt: musescore-general-soundfont
CSOUND = "/usr/share/sounds/sf2/sf_GMbank.sf2"  # apt: csound-soundfont
TIMGM6MB = "/usr/share/sounds/sf2/TimGM6mb.sf2"  # apt: timgm6mb-soundfont (evaluation only)
PIANO_SOUNDFONTS = ",".join((FLUIDR3, MUSESCORE, CSOUND))
PIANO_CORPUS_MINUTES = 240.0  # 80/10/10 by work (config.data.split)


def piano_corpus(data) -> None:
  """Sets a config's `data` to the piano recipes' corpus (the same corpus folder, and the same cached pairs for the
  same chain, for every recipe)."""
  data.source = "corpus"
  data.corpus_renderer = "fluidsynth"
  data.soundfont = PIANO_SOUNDFONTS
  data.corpus_minutes = PIANO_CORPUS_MINUTES


# The restoration recipes (music_16k, speech_16k): one generator restores band limits, noise and rooms together.
# "base" on a milder chain, optionally "hard" from it on the full-strength chain (a curriculum), optionally "mask": the
# spectral mask front-end (sr_jax/models/mask.py) added to that U-Net and both trained on the full-strength chain;
# then a non-adversarial finish and two adversarial ones from the stage before, trained on the same data for the same
# steps (the model card compares them); "fill" from the last one, plain, adds the spectral fill
# (sr_jax/models/fill.py) after the U-Net: a stage where a recipe asks for it (exported), else a variant run only when
# named. The last stage is exported. The recipes differ in their data, chains and the few settings
# restoration_config takes.
RESTORATION_FINISHES = ("gan", "mrsd", "plain")  # from the stage before the finishes
FILL_STAGE = "fill"  # from plain: a stage (restoration_config's fill=True) or a variant


def restoration_stages(hard: bool, mask: bool, fill: bool = False) -> tuple[str, ...]:
  """A restoration recipe's stages in order: base, hard (with a hard chain), mask (with the mask stage), finishes,
  fill (with the fill stage)."""
  return (("base",) + (("hard",) if hard else ()) + (("mask",) if mask else ()) + RESTORATION_FINISHES
          + ((FILL_STAGE,) if fill else ()))


RESTORATION_STAGES = restoration_stages(hard=True, mask=True, fill=True)  # music_16k
RESTORATION_STAGES_NO_HARD = restoration_stages(hard=False, mask=True)  # speech_16k (fill: a variant)
RESTORATION_FINISH = (("export", {"parts": ("gen",), "dtype": "float32"}),)
# What every restoration stage's validation also scores (train.eval_chains), each degradation alone as the model
# cards' targets name them: the training chain mixes them, and its one number can rise while one of them gets worse.
RESTORATION_EVAL_CHAINS = ("bw2k=lowpass random 2000;bw4k=lowpass random 4000;noise10=noise random 10;"
                           "reverb05=room random 0.5")


def restoration_config(arg: str | None, workdir: str, kind: str, minutes: float, chain: str,
                       hard_chain: str | None = None, base_steps: int = 6000, hard_steps: int = 3000,
                       mask_steps: int | None = None, finish_steps: int = 1000, fill_steps: int = 1500,
                       up_activation: str = "relu",
                       snr_max_db: float = 30.0, target_phase: bool = False,
                       eval_chains: str = RESTORATION_EVAL_CHAINS, fill_stft: float = 0.3, fill: bool = False,
                       fill_gain_db: float = 0.0, seed: int = 0):
  """A restoration recipe's `get_config(arg)`: stage "base", "hard" (only with a `hard_chain`), "mask" (only with
  `mask_steps`), one of RESTORATION_FINISHES or "fill" (a stage with `fill`, else a variant) on the packaged corpus of
  `kind` (`minutes` of it); the default is the last stage. Degraded by `chain` in base and by `hard_chain` (if any)
  after; `up_activation` and `snr_max_db` are model.up_activation and loss.snr_max_db; `target_phase` is
  data.target_phase wherever the mask front-end is; `eval_chains` is train.eval_chains in every stage; `fill_stft`
  and `fill_gain_db` are the fill stage's loss.lambda_stft and model.fill_gain_db; `seed` is seed and
  data.shuffle_seed."""
  stages = restoration_stages(hard=bool(hard_chain), mask=bool(mask_steps), fill=fill)
  variants = stages if fill else stages + (FILL_STAGE,)
  stage, rest = split_stage(arg, variants, default=stages[-1])
  c = config_lib.get_config()
  c.seed = c.data.shuffle_seed = seed
  c.data.source = "packaged"
  c.data.packaged_kind = kind
  c.data.packaged_minutes = minutes
  c.data.chain = chain if stage == "base" or not hard_chain else hard_chain
  c.model.up_activation = up_activation
  c.loss.snr_max_db = snr_max_db
  c.train.eval_chains = eval_chains
  _restoration(c, stage, workdir, base_steps, hard_steps, mask_steps, finish_steps, fill_steps, fill_stft,
               fill_gain_db, variants, target_phase)
  return config_lib.apply_overrides(c, rest)


def _restoration(c, stage: str, workdir: str, base_steps: int, hard_steps: int, mask_steps: int | None,
                 finish_steps: int, fill_steps: int, fill_stft: float, fill_gain_db: float,
                 stages: tuple[str, ...], target_phase: bool) -> None:
  """The generator, schedule and stage settings the restoration recipes share; `stage` is one of `stages` (base,
  hard, mask, a finish, fill); each starts from the stage before it, a finish from the last one before the
  finishes."""
  c.model.depth = 8  # every output sample sees the whole window: reverberation tails, the notes around a gap
  c.model.width = 0.125  # channels 16, 32, 64, ... (1.6M generator weights)
  c.model.dropout = 0.0
  c.model.zero_init_final = True  # starts as the input itself: doing nothing is where training begins
  c.model.conv_impl = "fft"
  c.data.rate = 16000
  c.data.window = 8192  # 0.5 s: room tails up to RT60 1 s are mostly inside one window
  c.data.stride = 4096
  c.data.eval_stride = 6144  # enhancement keeps each window's centre (a quarter of overlap)
  c.data.workers = 0
  c.data.copies = 4  # four random degradations of every training file
  c.data.gain_db = (-18.0, 0.0)  # levels a recording may have; target and input alike
  c.data.cache_dir = f"{workdir}/data_cache"
  # Each window's negative SNR in dB, whatever its level (data.gain_db spans 18 dB; L2 would let the loud windows'
  # shrinkage decide), soft-capped at loss.snr_max_db (restoration_config): uncapped, a window the chain left
  # (almost) intact pulls hardest of all and, under the gradient clipping, silences the windows with noise or a room
  # to remove. The base has no STFT term: at weight 1 its log magnitudes (every bin alike, the room's tails and the
  # empty top band most) outpulled the SNR and the output's SNR fell below the input's.
  c.loss.reconstruction = "snr"
  c.optim.lr_g = 3e-4
  c.optim.lr_d = 1e-4
  c.optim.schedule = "warmup_cosine"
  c.optim.warmup_steps = 200
  c.optim.grad_clip = 1.0
  c.train.batch_size = 8
  c.train.num_steps = base_steps
  c.train.eval_every = 1000
  c.train.eval_batches = 16
  c.checkpoint.every = 500
  c.checkpoint.keep = 2
  if stage == "base":
    return
  last = stages.index(RESTORATION_FINISHES[0] if stage in RESTORATION_FINISHES else stage)
  c.train.init_from = f"{workdir}/{stages[last - 1]}"  # the stage before (for a finish: before the finishes)
  if stage == "hard":  # the same losses; the chain's rooms and noise are stronger and more frequent
    c.train.num_steps = hard_steps
    c.optim.lr_g = 2e-4
    c.optim.warmup_steps = 100
    return
  if "mask" in stages:
    # From "mask" on: a gain per STFT bin before the U-Net (0.98 at first: the U-Net starts where it was), 1.3M
    # weights. The U-Net is trained, the mask new: it learns at 5x the U-Net's rate (1e-3 in the mask stage).
    c.model.mask_channels = 256
    c.optim.mask_lr_scale = 5.0
    c.data.target_phase = target_phase  # (sr_jax/models/mask.py) a real mask cuts passbands an IIR filter turned
  if stage == "mask":  # the same losses on the full-strength chain
    c.train.num_steps = mask_steps
    c.optim.lr_g = 2e-4
    c.optim.warmup_steps = 100
    return
  c.train.num_steps = finish_steps
  c.train.eval_every = 500
  c.optim.lr_g = 1e-4
  c.optim.warmup_steps = 50
  c.loss.lambda_stft = 0.3  # every finish fills the band the input lacks (the SNR hardly sees it)
  # The adversarial weights are about HiFi-GAN's proportions (adversarial 1/20 of the reconstruction terms, feature
  # matching twice the adversarial term) against the SNR (dB) and STFT terms here.
  if stage == "gan":  # the original's discriminator: one logit per window
    c.disc.kind = "global"
    c.loss.lambda_adv = 0.05
    c.loss.adv_start_step = 0
  elif stage == "mrsd":  # a multi-resolution spectrogram discriminator and feature matching (HiFi-GAN, AERO, AP-BWE)
    c.disc.kind = "mrsd"
    c.disc.stft_fft_sizes = (512, 1024, 2048)
    c.disc.channels = 8  # at the default 32 a step took 3.8 s on 2 CPU cores (the generator's alone: 0.3 s)
    c.loss.lambda_adv = 0.05
    c.loss.lambda_fm = 0.1
    c.loss.adv_start_step = 0
  elif stage == FILL_STAGE:  # plain's losses; the fill learns the level at which they balance, 40 dB under at first
    c.model.fill_channels = 128
    c.train.num_steps = fill_steps
    c.loss.lambda_stft = fill_stft
    c.model.fill_gain_db = fill_gain_db  # enhancement's fill level re the trained one


# ----- a recipe file's variants ----------------------------------------------------------------------------------

STAGE_KEY = "stage"


def split_stage(arg: str | None, variants: Sequence[str], default: str) -> tuple[str, str]:
  """(stage, the other overrides) of a recipe's `get_config` argument 'stage=NAME,key=value,...'; the stage may
  stand anywhere in it, and defaults to `default`. An unknown stage is a UserError naming the recipe's."""
  stage, rest = None, []
  for item in config_lib.split_items(arg or ""):  # the overrides' own splitting: quotes, brackets
    name, sep, value = item.partition("=")
    if sep and name.strip() == STAGE_KEY:
      if stage is not None:
        raise UserError(f"config argument {arg!r} names the stage twice")
      stage = value.strip().strip("'\"")
    else:
      rest.append(item)
  stage = default if stage is None else stage
  if stage not in variants:
    raise UserError(f"unknown stage {stage!r}: this recipe's are {', '.join(variants)}")
  return stage, ",".join(rest)


# ----- the runner -----------------------------------------------------------------------------------------------

EXPORT_DIR = "export"  # the exported model: WORKDIR/export
CACHE_DIR = "data_cache"  # the recipes' shared cache of degraded pairs: WORKDIR/data_cache
FINISH_STEPS = ("shape", "export")
PATH_KEYS = ("train.init_from", "train.ae_checkpoint", "data.cache_dir")  # moved from WORKDIR to --workdir


def load(path: str) -> ModuleType:
  """The recipe file at `path` as a module; a config file that is no recipe (no STAGES) is a UserError."""
  if not os.path.isfile(path):
    raise UserError(f"--config {path}: no such file")
  module = resources.load_config_file(path)
  stages = getattr(module, "STAGES", None)
  if not stages or not all(isinstance(s, str) for s in stages):
    raise UserError(f"--config {path} is not a recipe (it declares no STAGES): train it with `sr-jax train`")
  for name in variants(module):
    if not name or os.sep in name or name in (".", "..", EXPORT_DIR, CACHE_DIR):
      raise UserError(f"recipe {path}: stage name {name!r} cannot name a folder of its workdir")
  for step, _ in getattr(module, "FINISH", ()):
    if step not in FINISH_STEPS:
      raise UserError(f"recipe {path}: unknown FINISH step {step!r} (known: {', '.join(FINISH_STEPS)})")
  return module


def variants(module: ModuleType) -> tuple[str, ...]:
  return tuple(getattr(module, "VARIANTS", module.STAGES))


def latest_step(workdir: str) -> int | None:
  """The step of a run's latest complete checkpoint (orbax writes a step folder under another name and renames it
  once complete), or None when it has none."""
  folder = os.path.join(workdir, layout.CHECKPOINTS_DIR)
  if not os.path.isdir(folder):
    return None
  steps = [int(d) for d in os.listdir(folder) if d.isdigit() and os.path.isdir(os.path.join(folder, d))]
  return max(steps, default=None)


class Stage(NamedTuple):
  name: str
  workdir: str  # where it trains: --workdir/NAME
  config: Any  # its ml_collections.ConfigDict, paths moved under --workdir
  total: int  # its last step (the autoencoder's steps included)
  step: int | None  # its latest checkpoint's step, None before it starts

  @property
  def done(self) -> bool:
    return self.step is not None and self.step >= self.total

  @property
  def status(self) -> str:
    if self.done:
      return "done"
    return "todo" if self.step is None else f"partial (step {self.step} of {self.total})"


def _get(config, path: str):
  node = config
  for part in path.split("."):
    node = node[part]
  return node


def _set(config, path: str, value) -> None:
  *parents, leaf = path.split(".")
  node = config
  for part in parents:
    node = node[part]
  node[leaf] = value


def _move(path: str, old_root: str, new_root: str) -> str:
  """`path` with its leading `old_root` replaced by `new_root` (other paths unchanged)."""
  if not path:
    return path
  norm, old = os.path.normpath(path), os.path.normpath(old_root)
  if norm != old and not norm.startswith(old + os.sep):
    return path
  return os.path.normpath(os.path.join(new_root, os.path.relpath(norm, old)))


def stage_config(module: ModuleType, name: str, workdir: str, arg: str = "",
                 overrides: Mapping[str, Any] | None = None):
  """Stage `name`'s config for a recipe run in `workdir`: get_config('stage=NAME,ARG'), then `overrides` (dotted path
  -> value, e.g. from --config.train.num_steps=20), with its paths under the recipe's WORKDIR moved under `workdir`."""
  config = module.get_config(f"{STAGE_KEY}={name},{arg}" if arg else f"{STAGE_KEY}={name}")
  for path, value in (overrides or {}).items():
    _set(config, path, value)
  for path in PATH_KEYS:
    _set(config, path, _move(_get(config, path), module.WORKDIR, workdir))
  return config


def plan(module: ModuleType, workdir: str, arg: str = "", overrides: Mapping[str, Any] | None = None
         ) -> dict[str, Stage]:
  """Every variant of the recipe as it would run in `workdir` now: {name: Stage}, in the recipe's order."""
  from sr_jax.train.loop import total_steps  # noqa: PLC0415  (jax: only once the arguments are fine)

  if any(item.partition("=")[0].strip() == STAGE_KEY for item in config_lib.split_items(arg or "")):
    raise UserError(f"--config's argument names a stage ({arg!r}): the recipe runs all of them in order; pick some "
                    "with --stages")
  out = {}
  for name in variants(module):
    folder = os.path.join(workdir, name)
    config = stage_config(module, name, workdir, arg, overrides)
    out[name] = Stage(name, folder, config, total_steps(config), latest_step(folder))
  return out


def select(module: ModuleType, stages: Sequence[str] | None) -> list[str]:
  """The stages to run, in the recipe's order: all of STAGES by default, else those named (any variant)."""
  if not stages:
    return list(module.STAGES)
  known = variants(module)
  unknown = [s for s in stages if s not in known]
  if unknown:
    raise UserError(f"--stages: unknown stage {unknown[0]!r} (this recipe's: {', '.join(known)})")
  return [s for s in known if s in stages]


def _source(stage: Stage, stages: Mapping[str, Stage]) -> Stage | None:
  """The stage whose folder `stage` starts from (its train.init_from), if it is one of this recipe's."""
  init = stage.config.train.init_from
  if not init:
    return None
  return next((s for s in stages.values() if os.path.normpath(s.workdir) == os.path.normpath(init)), None)


def _print(line: str) -> None:
  print(line, flush=True)


def _finish_lines(finish, last: Stage, workdir: str) -> list[str]:
  lines = []
  for step, options in finish:
    if step == "shape":
      lines.append(f"shape: the discriminator of {last.workdir}, {options['steps']} steps")
    else:
      lines.append(f"export: {last.workdir} -> {os.path.join(workdir, EXPORT_DIR)} "
                   f"({', '.join(options['parts'])}; {options.get('dtype', 'float32')})")
  return lines


def run(module: ModuleType, workdir: str, arg: str = "", stages: Sequence[str] | None = None,
        overrides: Mapping[str, Any] | None = None, dry_run: bool = False,
        log: Callable[[str], None] | None = None) -> bool:
  """Runs the recipe `module` in `workdir`: the stages in `stages` (default: all of STAGES) in the recipe's order,
  skipping finished ones and resuming a partial one, then FINISH when the last of STAGES is among them. `arg` and
  `overrides` apply to every stage. dry_run: only prints the plan. Returns False when a stage stopped before its
  last step (SIGTERM: rerun to resume)."""
  log = log or _print
  all_stages = plan(module, workdir, arg, overrides)
  order = select(module, stages)
  finish = getattr(module, "FINISH", ()) if module.STAGES[-1] in order else ()
  then = f", then {', '.join(step for step, _ in finish)}" if finish else ""
  log(f"recipe {module.__file__} in {workdir}: stages {', '.join(order)}{then}")
  if dry_run:
    rows = [(f"stage {s.name}", s.status, f"{s.total} steps", s.workdir, f"init_from {s.config.train.init_from or '-'}")
            for s in (all_stages[name] for name in order)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
      log("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    for line in _finish_lines(finish, all_stages[module.STAGES[-1]], workdir):
      log(f"then {line}")
    return True
  from sr_jax.train import train_and_evaluate  # noqa: PLC0415

  for name in order:
    stage = all_stages[name]._replace(step=latest_step(all_stages[name].workdir))
    if stage.done:
      log(f"stage {name}: done ({stage.step} of {stage.total} steps in {stage.workdir}), skipped")
      continue
    if stage.step is None:
      source = _source(stage, all_stages)
      if source is not None:
        source = source._replace(step=latest_step(source.workdir))
        if not source.done:
          raise UserError(f"stage {name} starts from stage {source.name} ({source.workdir}), which is not finished "
                          f"({source.status}): run it first (--stages={source.name},{name}, or no --stages)")
      log(f"stage {name}: training {stage.total} steps in {stage.workdir}"
          + (f" from {stage.config.train.init_from}" if stage.config.train.init_from else ""))
    else:
      log(f"stage {name}: resuming at step {stage.step} of {stage.total} in {stage.workdir}")
    start = time.time()
    train_and_evaluate(stage.config, stage.workdir)
    step = latest_step(stage.workdir)
    if step is None or step < stage.total:
      log(f"stage {name}: stopped at step {step} of {stage.total}; rerun the same command to resume")
      return False
    log(f"stage {name}: finished ({stage.total} steps) in {(time.time() - start) / 60:.1f} min")
  _finish(finish, all_stages[module.STAGES[-1]], workdir, log)
  return True


def _finish(finish, last: Stage, workdir: str, log: Callable[[str], None]) -> None:
  """FINISH's steps on the last stage's run: each one completed or redone on a rerun (both are cheap)."""
  for step, options in finish:
    if step == "shape":
      _shape(last.workdir, int(options["steps"]), log)
    else:
      from sr_jax.train.checkpoint import export_for_inference  # noqa: PLC0415

      out, parts, dtype = os.path.join(workdir, EXPORT_DIR), tuple(options["parts"]), options.get("dtype", "float32")
      info = export_for_inference(last.workdir, out, parts=parts, dtype=dtype, overwrite=True)
      log(f"export: {info['source']} ({', '.join(parts)}; {info['params']:,} weights in {dtype}) -> {out}: "
          f"{info['bytes'] / 1e6:.1f} MB")


def _shape(workdir: str, steps: int, log: Callable[[str], None]) -> None:
  """Shapes the run's discriminator to `steps` shaping steps in all against its latest generator (launch/shape.py)."""
  from absl import logging  # noqa: PLC0415

  from sr_jax.sampling import shaping  # noqa: PLC0415

  saved = shaping.load_shaped_disc(workdir, with_info=True)
  done = saved[1]["steps"] if saved is not None and saved[1].get("gen_step") == latest_step(workdir) else 0
  if done >= steps:
    log(f"shape: done ({done} steps in {os.path.join(workdir, layout.SHAPED_DIR)}), skipped")
    return
  result = shaping.shape_discriminator(workdir, steps - done, log=logging.info)
  log(f"shape: {result.steps} steps in {result.folder}, D loss {result.before['d_loss']:.4f} -> "
      f"{result.after['d_loss']:.4f}")
