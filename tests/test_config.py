"""The one source of defaults (sr_jax/config.py): declared keys, saved configs completed, clear override errors."""

import ast
import json
import os
import pathlib
import subprocess
import sys

import pytest

from sr_jax import config as config_lib
from sr_jax import resources
from sr_jax.errors import UserError

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _flat(tree, prefix=""):
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(_flat(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def test_no_config_read_has_a_fallback():
  """No `config....get(key, fallback)` in the product: every key is declared, so reads are plain attributes."""
  offenders = []
  for folder in ("sr_jax", "launch", "bench", "configs"):
    for path in sorted((ROOT / folder).rglob("*.py")):
      source = path.read_text(encoding="utf-8")
      for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
          receiver = ast.get_source_segment(source, node.func.value) or ""
          if "config" in receiver.lower():
            offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {receiver}.get(...)")
  assert not offenders, "\n".join(offenders)


def test_every_default_has_a_comment():
  """Each key assignment in get_config() carries a one-line comment (on its line or the line above)."""
  lines = (ROOT / "sr_jax" / "config.py").read_text(encoding="utf-8").splitlines()
  tree = ast.parse("\n".join(lines))
  fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "get_config")
  bare = []
  for node in ast.walk(fn):
    if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Attribute):
      line = lines[node.lineno - 1]
      above = lines[node.lineno - 2].strip()
      if "ConfigDict()" not in line and "#" not in line and not above.startswith("#"):
        bare.append(line.strip())
  assert not bare, bare


def test_bundled_configs_declare_no_new_keys():
  """A recipe only changes declared keys (a new key would be read nowhere, or read only by code that no default
  covers)."""
  declared = set(_flat(config_lib.get_config().to_dict()))
  for name in resources.config_names():
    path = resources.config_path(name)
    keys = set(_flat(resources.load_config_file(path).get_config().to_dict()))
    assert keys == declared, (name, sorted(keys ^ declared))


def test_complete_merges_over_defaults_and_renames_old_keys():
  saved = {"model": {"depth": 5}, "loss": {"lambda_floor": 0.5, "floor_db": -20, "ceiling_db": 200.0},
           "data": {"window": 1024}}
  c = config_lib.complete(saved)
  assert c.model.depth == 5 and c.data.window == 1024
  assert c.loss.lambda_corridor == 0.5 and c.loss.corridor_floor_db == -20.0
  assert isinstance(c.loss.corridor_floor_db, float)
  assert c.loss.corridor_ceiling_db is None  # 200 dB was the old spelling of "no ceiling"
  assert c.data.eval_seed == 0 and c.data.cache_dtype == "float32"  # missing keys: their defaults
  assert config_lib.complete({"loss": {"ceiling_db": 6}}).loss.corridor_ceiling_db == 6.0
  # a run on the SNR loss saved before its cap existed trained uncapped (200: none), whatever today's default
  assert config_lib.get_config().loss.snr_max_db == 30.0 and c.loss.snr_max_db == 30.0  # an L2 run: the default
  assert config_lib.complete({"loss": {"reconstruction": "snr"}}).loss.snr_max_db == 200.0
  assert config_lib.complete({"loss": {"reconstruction": "snr", "snr_max_db": 30.0}}).loss.snr_max_db == 30.0
  with pytest.raises(UserError, match="does not know: data.nosuch"):
    config_lib.complete({"data": {"nosuch": 1}})


def test_shipped_configs_use_current_names():
  """The shipped models' saved configs hold declared keys only, under their current names (keys declared after
  they were saved read as their defaults through `complete`)."""
  declared = set(_flat(config_lib.get_config().to_dict()))
  for name in resources.model_names():
    with open(os.path.join(resources.model_path(name), "config", "metadata"), encoding="utf-8") as f:
      saved = set(_flat(json.load(f)))
    assert saved <= declared, (name, sorted(saved - declared))
    assert not saved & set(config_lib.RENAMED), name


def test_overrides_parse_types_and_none():
  c = config_lib.get_config("depth=4,loss.corridor_ceiling_db=6,loss.stft_fft_sizes=(64, 128)")
  assert c.model.depth == 4 and c.loss.corridor_ceiling_db == 6.0 and c.loss.stft_fft_sizes == (64, 128)
  assert config_lib.get_config("loss.corridor_ceiling_db=None").loss.corridor_ceiling_db is None
  with pytest.raises(UserError, match="expects int"):
    config_lib.get_config("depth=None")
  with pytest.raises(UserError, match="unknown config field 'data.nosuch'"):
    config_lib.get_config("data.nosuch=1")


@pytest.mark.parametrize("args, message", [
    (["--config=tiny", "--config.data.nosuch=1"], "error: unknown config key 'data.nosuch'"),
    (["--config=tiny:depth=x"], "error: --config: config field 'model.depth' expects int, got 'x'"),
    (["--config=tiny", "--config.model.depth=x"], "error: flag --config.model.depth=x"),
    (["--config=nosuch"], "error: --config nosuch: no such file and no bundled config of that name"),
])
def test_cli_config_mistakes_are_one_error_line(args, message, tmp_path):
  """From another folder, by bundled name: a bad override ends in one `error:` line and exit status 2."""
  r = subprocess.run([sys.executable, str(ROOT / "launch" / "describe.py"), *args], cwd=tmp_path,
                     capture_output=True, text=True, timeout=120)
  assert r.returncode == 2, r.stderr
  lines = [line for line in r.stderr.splitlines() if line.strip()]
  assert len(lines) == 1 and lines[0].startswith(message), r.stderr


def test_tilde_in_flag_values_is_expanded():
  home = os.path.expanduser("~")
  assert resources.resolve_argv(["--data=~/x", "--report", "~/y"]) == [f"--data={home}/x", "--report", "~/y"]
