"""The config files: overrides, the defaults they start from, and the recipes (configs/piano_*.py, music_16k.py,
speech_16k.py): each stage's values that matter, the chain of stages, and the last stage equal to the shipped model's
saved config."""

import ast
import json
import os
import sys

import pytest

from configs import default, music_16k, piano_r2_16k, piano_r4_16k, quickstart, speech_16k, tiny
from sr_jax import recipes
from sr_jax.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPES = {"piano_r4_16k": piano_r4_16k, "piano_r2_16k": piano_r2_16k, "music_16k": music_16k, "speech_16k": speech_16k}


def test_short_names_and_dotted_paths():
  c = default.get_config("depth=4,window=1024,model.width=0.5,chain='sample 8000 16000,whitenoise 0 0.001'")
  assert (c.model.depth, c.data.window, c.model.width) == (4, 1024, 0.5)
  assert c.data.chain == "sample 8000 16000,whitenoise 0 0.001"
  assert default.get_config("loss.stft_fft_sizes=(256, 512)").loss.stft_fft_sizes == (256, 512)
  assert default.get_config("width=1").model.width == 1.0  # an int where a float is expected is fine


@pytest.mark.parametrize("arg,match", [
    ("depth", "must look like name=value"),
    ("nope=3", "unknown config field 'nope'"),
    ("model.nope=3", "unknown config field 'model.nope'"),
    ("depth=four", "config field 'model.depth' expects int, got 'four'"),
])
def test_bad_overrides_are_one_clear_error(arg, match):
  with pytest.raises(UserError, match=match):
    default.get_config(arg)


def test_recipes_start_from_the_defaults_and_take_overrides():
  d, t, q = default.get_config(), tiny.get_config("depth=2"), quickstart.get_config()
  assert set(d.keys()) == set(t.keys()) == set(q.keys())
  assert t.model.depth == 2 and t.data.source == "tiny"
  assert (d.model.depth, d.data.window, d.train.batch_size) == (8, 8192, 16)  # the original's size


def _flat(tree, prefix=""):
  for k, v in tree.items():
    if isinstance(v, dict):
      yield from _flat(v, f"{prefix}{k}.")
    else:
      yield f"{prefix}{k}", list(v) if isinstance(v, tuple) else v


def flat(config) -> dict:
  return dict(_flat(json.loads(config.to_json())))


def test_config_files_import_only_sr_jax_ml_collections_and_the_standard_library():
  """Each config file reads alone: no recipe imports another (shared values live in sr_jax.recipes)."""
  allowed = {"sr_jax", "ml_collections", "__future__"} | set(sys.stdlib_module_names)
  folder = os.path.join(ROOT, "configs")
  for name in sorted(n for n in os.listdir(folder) if n.endswith(".py")):
    tree = ast.parse(open(os.path.join(folder, name), encoding="utf-8").read())
    for node in ast.walk(tree):
      if isinstance(node, ast.Import):
        modules = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom):
        assert node.level == 0, (name, "a relative import")
        modules = [node.module]
      else:
        continue
      assert all(m.split(".")[0] in allowed for m in modules), (name, modules)


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_declarations(name):
  module = recipes.load(os.path.join(ROOT, "configs", f"{name}.py"))
  assert module.WORKDIR == f"runs/{name}" and module.FINISH[-1][0] == "export"
  assert set(module.STAGES) <= set(recipes.variants(module))
  from sr_jax.train import state as state_lib  # noqa: PLC0415

  default_stage = flat(RECIPES[name].get_config())
  assert default_stage == flat(RECIPES[name].get_config(f"stage={module.STAGES[-1]}"))  # the default: the last
  for stage in recipes.variants(module):
    c = RECIPES[name].get_config(f"steps=10,stage={stage}")  # the stage may stand anywhere among the overrides
    assert set(c.keys()) == set(default.get_config().keys()) and c.train.num_steps == 10
    state_lib.check_config(c)
    assert state_lib.config_warnings(RECIPES[name].get_config(f"stage={stage}")) == []
    assert c.data.window % 2 ** (c.model.depth + 1) == 0
    assert c.data.cache_dir == f"runs/{name}/data_cache"  # one cache of degraded pairs for all stages
  # each stage starts from the previous stage's folder under the recipe's workdir
  # the piano recipes' stages each start from the one before; the restoration recipes' three finishes all from the
  # mask stage, which starts from the stage before it (hard, or base where there is no hard stage)
  if module.STAGES == recipes.RESTORATION_STAGES:
    before = ["base", "hard"] + ["mask"] * 3 + ["plain"]
  elif module.STAGES == recipes.RESTORATION_STAGES_NO_HARD:
    before = ["base"] + ["mask"] * 3
  else:
    before = module.STAGES[:-1]
  assert [RECIPES[name].get_config(f"stage={s}").train.init_from for s in module.STAGES] == [
      ""] + [f"runs/{name}/{s}" for s in before]


def test_piano_r4_16k_stages():
  from sr_jax.data import corpus  # noqa: PLC0415
  from sr_jax.data.degrade import chain_rates  # noqa: PLC0415

  m = piano_r4_16k
  assert m.STAGES == ("1", "1b", "1c", "1d", "1e", "2") and m.VARIANTS == m.STAGES + ("critic",)
  assert m.FINISH == (("export", {"parts": ("gen",), "dtype": "float32"}),)  # the generator alone, as shipped
  c = {s: m.get_config(f"stage={s}") for s in m.VARIANTS}
  s1, restarts, s2, critic = c["1"], [c[s] for s in ("1b", "1c", "1d", "1e")], c["2"], c["critic"]
  assert chain_rates(s2.data.chain) == (4000, 16000)
  fonts = corpus.soundfont_list(s2.data.soundfont)
  assert len(fonts) == 3 and not any("TimGM6mb" in f for f in fonts)  # the evaluation's unseen soundfont
  # one model throughout (init_from needs the same shapes)
  assert all(x.model.to_dict() == s1.model.to_dict() for x in c.values())
  assert (s1.model.depth, s1.model.width, s1.data.window) == (8, 0.125, 2048)
  # stages 1 to 1e: plain L2, no discriminator; 1b-1e are the same warm restart at a third of stage 1's rate, each
  # with its own order of the windows
  for x in (s1, *restarts):
    assert x.loss.lambda_stft == x.loss.lambda_corridor == x.loss.lambda_adv == 0
  assert (s1.train.num_steps, s1.optim.lr_g, s1.optim.warmup_steps) == (15000, 3e-4, 200)
  for x in restarts:
    assert (x.train.num_steps, x.optim.lr_g, x.optim.warmup_steps) == (8000, 1e-4, 100)
    assert x.optim.to_dict() == restarts[0].optim.to_dict()
  assert [x.data.shuffle_seed for x in (s1, *restarts)] == [0, 1, 2, 3, 4]
  for x in restarts:
    assert {k: v for k, v in x.data.items() if k != "shuffle_seed"} == {k: v for k, v in s1.data.items()
                                                                        if k != "shuffle_seed"}
  # stage 2: L2 + the spectral corridor from stage 1e, enhancing on 8192-sample windows overlapped by a quarter
  assert s2.train.init_from == "runs/piano_r4_16k/1e" and s2.train.num_steps == 2000
  assert (s2.loss.lambda_corridor, s2.loss.corridor_floor_db, s2.loss.corridor_pool, s2.loss.corridor_ceiling_db) == (
      3e-4, -24.0, 16, 6.0)
  assert s2.loss.lambda_stft == s2.loss.lambda_adv == 0
  assert s2.data.eval_stride == 3 * s2.data.window // 4 and s2.data.enhance_window == 4 * s2.data.window
  assert s1.data.eval_stride == s1.data.window and s1.data.enhance_window == 0
  enhance_keys = ("eval_stride", "enhance_window")
  assert {k: v for k, v in s2.data.items() if k not in enhance_keys} == {k: v for k, v in s1.data.items()
                                                                         if k not in enhance_keys}
  # the critic: a discriminator trained against stage 2's generator, frozen, not a stage of the recipe
  assert critic.train.init_from == "runs/piano_r4_16k/2" and critic.optim.freeze == "gen"
  assert critic.loss.lambda_adv > 0 and s2.optim.freeze == ""
  assert critic.data.to_dict() == s2.data.to_dict()
  assert {k: v for k, v in critic.loss.items() if k != "lambda_adv"} == {k: v for k, v in s2.loss.items()
                                                                         if k != "lambda_adv"}


def test_piano_r2_16k_stages():
  from sr_jax.data.degrade import chain_rates  # noqa: PLC0415

  m = piano_r2_16k
  assert m.STAGES == ("stft", "2") and not hasattr(m, "VARIANTS")
  assert m.FINISH == (("shape", {"steps": 100}), ("export", {"parts": ("gen", "disc"), "dtype": "float32"}))
  stft, s2 = m.get_config("stage=stft"), m.get_config("stage=2")
  assert chain_rates(s2.data.chain) == (8000, 16000) and s2.data.soundfont == piano_r4_16k.get_config().data.soundfont
  assert (s2.model.depth, s2.model.width) == (4, 0.125) and s2.model.to_dict() == stft.model.to_dict()
  assert s2.data.to_dict() == stft.data.to_dict() and s2.data.enhance_window == 0
  # stage stft: L2 + the STFT term; stage 2 swaps it for the corridor, from stage stft's networks
  assert stft.loss.lambda_stft > 0 and stft.loss.lambda_corridor == 0 and not stft.train.init_from
  assert s2.loss.lambda_stft == 0 and s2.loss.lambda_corridor > 0 and s2.train.init_from == "runs/piano_r2_16k/stft"
  assert s2.loss.corridor_ceiling_db == 0.0 and s2.train.num_steps == 1000 and stft.train.num_steps == 1200
  # both train the critic alongside, whose term never reaches the generator
  for x in (stft, s2):
    assert x.loss.lambda_adv > 0 and x.loss.adv_start_step > x.train.num_steps and x.optim.freeze == ""


# Keys of a saved config that cannot change the network or its outputs: the shipped model's saved config may differ
# from its recipe's last stage on these alone.
NOT_THE_MODEL = {
    "train.init_from": "a path: where the run found the stage before it (the weights are the stage's, not the path)",
    "train.ae_checkpoint": "a path",
    "data.cache_dir": "a path: where the degraded pairs are cached (keyed by what makes them)",
    "data.dir": "a path: where the corpus is (the corpus is fixed by source, renderer, soundfonts, minutes, seed)",
    "data.tfds_data_dir": "a path",
    "data.workers": "reader processes: the same windows in the same order",
    "train.log_every": "how often metrics are logged",
    "train.eval_every": "how often validation runs (validation does not change the weights)",
    "train.eval_chains": "what validation also scores (validation does not change the weights)",
    "log.": "TensorBoard, audio examples, progress bar",
    "checkpoint.": "how often and how many checkpoints are kept (the export is the last step's)",
}


def _is_excluded(key: str) -> bool:
  return any(key == k or (k.endswith(".") and key.startswith(k)) for k in NOT_THE_MODEL)


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_last_stage_is_the_shipped_models_saved_config(name):
  """Every value that affects the shipped network or its outputs (the model, data, losses, optimiser, schedule,
  seeds, enhancement windows) is its recipe's last stage's, exactly."""
  from sr_jax.train.checkpoint import restore_config  # noqa: PLC0415

  saved = flat(restore_config(os.path.join(ROOT, "pretrained", name)))
  recipe = flat(RECIPES[name].get_config())
  assert set(saved) == set(recipe)
  compared = [k for k in saved if not _is_excluded(k)]
  assert all(any(_is_excluded(k) and (k == x or k.startswith(x)) for k in saved) for x in NOT_THE_MODEL)
  assert {k: recipe[k] for k in compared} == {k: saved[k] for k in compared}


@pytest.mark.parametrize("name, kind, hard", [("music_16k", "music", True), ("speech_16k", "speech", False)])
def test_restoration_recipes_compare_their_finishes_on_the_same_data_and_steps(name, kind, hard):
  """music_16k, speech_16k: a base stage on a milder chain, (music) a hard stage from it on the full-strength chain,
  a mask stage from the last of these adding the spectral mask front-end, then three finishes from it (the
  original's discriminator, a spectrogram discriminator with feature matching, none) on the same data, chain and
  steps; a fill stage from the non-adversarial one (music: a stage, exported; speech: a variant, plain exported).
  From the mask stage on the targets carry the IIR filters' phase."""
  from sr_jax.data import degrade  # noqa: PLC0415
  from sr_jax.train import state as state_lib  # noqa: PLC0415

  module = recipes.load(os.path.join(ROOT, "configs", f"{name}.py"))
  shipped_fill = name == "music_16k"
  stages = ("base", "hard", "mask", "gan", "mrsd", "plain") if hard else ("base", "mask", "gan", "mrsd", "plain")
  stages += ("fill",) if shipped_fill else ()
  assert module.STAGES == stages and module.FINISH[-1][0] == "export"
  # the spectral fill: music's last stage (exported); speech's a variant, run when named
  assert recipes.variants(module) == (stages if shipped_fill else stages + ("fill",))
  configs = {s: module.get_config(f"stage={s}") for s in recipes.variants(module)}
  for stage, c in configs.items():
    state_lib.check_config(c)
    assert state_lib.config_warnings(c) == [], stage
    assert c.data.source == "packaged" and c.data.packaged_kind == kind and c.data.copies > 1
    assert c.data.window % 2 ** (c.model.depth + 1) == 0 and c.data.cache_dir == f"runs/{name}/data_cache"
    assert c.data.chain == (module.HARD_CHAIN if hard and stage != "base" else module.CHAIN)
    masked = stage not in ("base", "hard")  # the mask from the mask stage on
    assert c.data.target_phase == masked, stage  # the targets carry the IIR phase from the mask stage on
    with_mask = dict(configs["base"].model.to_dict(), mask_channels=256)
    with_mask["fill_channels"] = 128 if stage == "fill" else 0  # the fill in its stage only
    with_mask["fill_gain_db"] = getattr(module, "FILL_GAIN_DB", 0.0) if stage == "fill" else 0.0
    assert c.model.to_dict() == (with_mask if masked else configs["base"].model.to_dict()), stage
    assert c.optim.mask_lr_scale == (5.0 if masked else 1.0)
    names = {step.name for step in degrade.parse_chain(c.data.chain)}
    assert {"room", "lowpass", "noise"} <= names and "sample" not in names  # the input stays at 16 kHz
    # validation also scores each degradation alone, as the model card's targets name them
    named = state_lib.eval_chains(c)
    assert {"bw2k", "bw4k", "noise10", "reverb05"} <= set(named) and ("telephone" in named) == (kind == "speech")
    assert named["noise10"] == "noise random 10" and named["reverb05"] == "room random 0.5"
  assert configs["base"].train.init_from == "" and configs["base"].loss.lambda_adv == 0
  if hard:
    assert configs["hard"].train.init_from == f"runs/{name}/base" and configs["hard"].loss.lambda_adv == 0
    # the hard chain: rooms and noise more often than in base, and stronger (a longer RT60, a lower SNR)
    base_steps, hard_steps = (degrade.parse_chain(module.CHAIN), degrade.parse_chain(module.HARD_CHAIN))
    for step in ("room", "noise"):
      (b,), (h,) = ([s for s in steps if s.name == step] for steps in (base_steps, hard_steps))
      assert h.probability > b.probability, (step, b, h)
      stronger = h.args[2] > b.args[2] if step == "room" else h.args[1] < b.args[1]  # RT60 max; SNR min
      assert stronger, (step, b, h)
  assert configs["mask"].train.init_from == f"runs/{name}/{'hard' if hard else 'base'}"
  assert configs["mask"].loss.lambda_adv == 0 and configs["mask"].loss.lambda_stft == 0
  finishes = [configs[s] for s in ("gan", "mrsd", "plain")]
  assert {c.train.init_from for c in finishes} == {f"runs/{name}/mask"}
  assert len({c.train.num_steps for c in finishes}) == 1 and len({c.loss.lambda_corridor for c in finishes}) == 1
  assert configs["gan"].disc.kind == "global" and configs["gan"].loss.lambda_adv > 0
  assert configs["gan"].loss.lambda_fm == 0
  assert configs["mrsd"].disc.kind == "mrsd" and configs["mrsd"].loss.lambda_adv > 0
  assert configs["mrsd"].loss.lambda_fm > 0
  assert configs["plain"].loss.lambda_adv == 0 and configs["plain"].loss.lambda_fm == 0
  # fill: plain's losses and schedule from plain, the fill added (its own steps)
  fill, plain = configs["fill"], configs["plain"]
  assert fill.train.init_from == f"runs/{name}/plain" and fill.model.fill_channels == 128
  assert module.get_config().model.fill_channels == (128 if shipped_fill else 0)  # the default: the last stage
  assert (fill.model.fill_gain_db < 0) == shipped_fill  # music plays it under its trained level
  assert fill.optim.to_dict() == plain.optim.to_dict() and fill.seed == plain.seed
  assert dict(fill.loss.to_dict(), lambda_stft=0) == dict(plain.loss.to_dict(), lambda_stft=0)  # its own STFT weight
