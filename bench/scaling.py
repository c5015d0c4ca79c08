r"""Data parallelism vs FSDP on fake CPU devices: step time and the collectives XLA puts in the compiled train step.

  python bench/scaling.py [--config=quickstart|default|tiny --window=2048 --batch=16 --depth=N --width=W
                           --lambda_adv=0.01 --meshes=1x1,2x1,4x1,8x1,1x2,2x2,4x2,1x4,1x8 --repeats=3 --json=FILE]

Each mesh DATAxFSDP builds the train step exactly as training does (loop.create_state / loop.compile_steps on
sharding.make_mesh(config.mesh)), compiles it, lists the collectives of `compiled.as_text()` and times the step on
random batches. Bytes are counted per device from the HLO after SPMD partitioning:
  bytes  = the result size of each collective (all arrays of a tuple-shaped op);
  ring   = what one device sends with ring algorithms over the op's group of N devices: all-reduce 2(N-1)/N x bytes,
           all-gather and all-to-all (N-1)/N x bytes, reduce-scatter (N-1) x bytes, collective-permute bytes.
Expectations checked (column `check`): one device has no collectives; pure data parallelism (fsdp=1) has only
all-reduces (gradients, BatchNorm statistics with a discriminator, loss/metric scalars) moving 4 bytes per
parameter plus a little; FSDP all-gathers every sharded parameter (its gradients come back by reduce-scatter, which
XLA's CPU backend writes as an all-reduce over the fsdp axis followed by a slice) and uses nothing else. (Only the
state is sharded, activations are left to XLA: when they are small next to the weights, e.g. width 1/4 with one
64-sample window per device, its partitioner reshards activations with all-to-all / collective-permute instead,
which the check reports as UNEXPECTED.)
The 8 fake devices share this machine's cores: step times show the compiled program's overhead, not a speed-up.
"""

from __future__ import annotations

import importlib
import math
import os
import re
import sys
from collections import Counter
from typing import NamedTuple

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):  # before jax is imported
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=8".strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from bench import common  # noqa: E402
from sr_jax.errors import UserError, exit_on_user_error  # noqa: E402
from sr_jax.train import loop, sharding, state as state_lib  # noqa: E402

KINDS = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")
SHORT = {"all-reduce": "AR", "all-gather": "AG", "reduce-scatter": "RS", "all-to-all": "A2A",
         "collective-permute": "CP"}
DTYPE_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2, "s32": 4, "u32": 4, "f32": 4,
               "s64": 8, "u64": 8, "f64": 8, "c64": 8, "c128": 16}
DEFAULT_MESHES = "1x1,2x1,4x1,8x1,1x2,2x2,4x2,1x4,1x8"
SMALL_BYTES = 64 * 1024  # allowance for the scalars and BatchNorm statistics beside the gradients

_OP = re.compile(r"^\s*(?:ROOT\s+)?%?(?P<name>[\w.\-]+)\s*=\s*(?P<type>.+?)\s+"
                 r"(?P<kind>" + "|".join(KINDS) + r")(?P<start>-start)?\((?P<rest>.*)$")
_ARRAY = re.compile(r"\b([a-z][a-z0-9]*)\[([\d,]*)\]")


class Collective(NamedTuple):
  """One collective of a compiled program; sizes are per device."""

  name: str
  kind: str
  arrays: tuple[tuple[str, tuple[int, ...]], ...]  # (dtype, shape) of each result array
  groups: tuple[tuple[int, ...], ...] | None  # device groups (logical ids = positions in the mesh), None: unknown
  nbytes: int  # result bytes

  @property
  def group_size(self) -> int | None:
    return len(self.groups[0]) if self.groups else None

  @property
  def ring_bytes(self) -> float | None:
    """Bytes one device sends with the ring algorithm over its group (None when the group is unknown)."""
    n = self.group_size
    if n is None:
      return None
    factor = {"all-reduce": 2 * (n - 1) / n, "all-gather": (n - 1) / n, "all-to-all": (n - 1) / n,
              "reduce-scatter": n - 1, "collective-permute": 1.0}[self.kind]
    return factor * self.nbytes


def _iota(dims: str, perm: str | None) -> np.ndarray:
  """XLA's iota tile assignment `[dims]T(perm)`: arange reshaped to dims, transposed by perm, flattened."""
  shape = [int(d) for d in dims.split(",")]
  ids = np.arange(math.prod(shape)).reshape(shape)
  if perm:
    ids = ids.transpose([int(p) for p in perm.split(",")])
  return ids.reshape(-1)


def parse_groups(rest: str, num_devices: int) -> tuple[tuple[int, ...], ...] | None:
  """The replica groups of an HLO collective in any of XLA's three spellings; None if there are none to read."""
  m = re.search(r"replica_groups=mesh\[([^\]]*)\](?:,\s*device_ids=\(\[([\d,]+)\](?:T\(([\d,]+)\))?\))?"
                r"\s*\{([^}]*)\}", rest)
  if m:  # mesh['axis_0'=2,'axis_1'=4], device_ids=([4,2]T(1,0)) {'axis_1'}
    axes = re.findall(r"'([^']+)'=(\d+)", m[1])
    names, sizes = [a for a, _ in axes], [int(s) for _, s in axes]
    order = _iota(m[2], m[3]) if m[2] else np.arange(math.prod(sizes))
    chosen = [names.index(a) for a in re.findall(r"'([^']+)'", m[4])]
    rest_axes = [i for i in range(len(names)) if i not in chosen]
    ids = order.reshape(sizes).transpose(rest_axes + chosen)
    return tuple(tuple(int(i) for i in g) for g in ids.reshape(-1, math.prod(sizes[i] for i in chosen)))
  m = re.search(r"replica_groups=\[(\d+),(\d+)\]<=\[([\d,]+)\](?:T\(([\d,]+)\))?", rest)
  if m:  # [num_groups,group_size]<=[dims]T(perm)
    ids = _iota(m[3], m[4]).reshape(int(m[1]), int(m[2]))
    return tuple(tuple(int(i) for i in g) for g in ids)
  m = re.search(r"replica_groups=\{((?:\{[\d,]*\},?)*)\}", rest)
  if m:  # {{0,1},{2,3}}; {} means all devices
    groups = tuple(tuple(int(i) for i in g.split(",") if i) for g in re.findall(r"\{([\d,]*)\}", m[1]))
    return groups or (tuple(range(num_devices)),)
  m = re.search(r"source_target_pairs=\{((?:\{\d+,\d+\},?)*)\}", rest)
  if m:  # collective-permute: report each pair as a group of 2
    return tuple(tuple(int(i) for i in p.split(",")) for p in re.findall(r"\{(\d+,\d+)\}", m[1]))
  return None


def parse_collectives(hlo_text: str, num_devices: int) -> list[Collective]:
  """Every collective instruction in the HLO text (sync ops and async `-start` ops; `-done` ops are skipped)."""
  ops = []
  for line in hlo_text.splitlines():
    m = _OP.match(line)
    if not m:
      continue
    arrays = [(dt, tuple(int(d) for d in dims.split(",") if d)) for dt, dims in _ARRAY.findall(m["type"])]
    if m["start"] and m["kind"] in ("all-gather", "collective-permute"):  # (operands..., results..., contexts)
      arrays = [a for a in arrays if not (a[0] == "u32" and a[1] == ())]
      arrays = arrays[len(arrays) // 2:]
    nbytes = sum(DTYPE_BYTES.get(dt, 4) * math.prod(shape) for dt, shape in arrays)
    ops.append(Collective(m["name"], m["kind"], tuple(arrays), parse_groups(m["rest"], num_devices), nbytes))
  return ops


def axis_of(op: Collective, data: int, fsdp: int) -> str:
  """Which mesh axes an op's groups span: 'data', 'fsdp', 'data+fsdp', or 'other'/'?'."""
  if op.groups is None:
    return "?"
  ids = np.arange(data * fsdp).reshape(data, fsdp)
  candidates = {"data": ids.T, "fsdp": ids, "data+fsdp": ids.reshape(1, -1)}
  got = {frozenset(g) for g in op.groups}
  for name, groups in candidates.items():
    if got == {frozenset(int(i) for i in g) for g in groups}:
      return name
  return "other"


def totals(ops: list[Collective]) -> dict:
  """Per kind: count, result bytes, ring bytes; plus the sums over all kinds."""
  out = {"bytes": 0, "ring_bytes": 0.0}
  for kind in KINDS:
    mine = [op for op in ops if op.kind == kind]
    out[f"{kind}_count"] = len(mine)
    out[f"{kind}_bytes"] = sum(op.nbytes for op in mine)
    out[f"{kind}_ring_bytes"] = sum(op.ring_bytes or 0.0 for op in mine)
    out["bytes"] += out[f"{kind}_bytes"]
    out["ring_bytes"] += out[f"{kind}_ring_bytes"]
  return out


def param_leaves(abstract_state) -> list:
  """The params of the nets in the state (generator, and discriminator/autoencoder when present)."""
  return [x for net in (abstract_state.gen, abstract_state.disc, abstract_state.ae) if net is not None
          for x in jax.tree.leaves(net.params)]


def param_bytes(abstract_state, fsdp: int) -> tuple[int, int]:
  """(bytes of all trainable params, bytes of those sharded over fsdp) of the nets in the state."""
  leaves = param_leaves(abstract_state)
  nbytes = [x.size * x.dtype.itemsize for x in leaves]
  sharded = [b for x, b in zip(leaves, nbytes) if sharding.spec_for(tuple(x.shape), fsdp) != sharding.P()]
  return sum(nbytes), sum(sharded)


def repeated_params(ops: list[Collective], shapes: list[tuple[int, ...]], min_size: int = 1024) -> tuple[int, int]:
  """(count, bytes) of all-reduced f32 arrays shaped like a param (>= min_size elements) beyond one per param.

  A gradient reduced in pieces (e.g. a discriminator's real and fake terms reduced apart) shows up here.
  """
  reduced = Counter(s for op in ops if op.kind == "all-reduce" for dt, s in op.arrays if dt == "f32")
  extra = reduced - Counter(shapes)
  big = {s: n for s, n in extra.items() if s in set(shapes) and math.prod(s) >= min_size}
  return sum(big.values()), sum(4 * n * math.prod(s) for s, n in big.items())


def check(ops: list[Collective], data: int, fsdp: int, params: int, sharded: int,
          shapes: list[tuple[int, ...]] = ()) -> tuple[bool, str]:
  """(as expected?, why) for the collectives of a DATAxFSDP step; `params`/`sharded` are bytes (param_bytes),
  `shapes` the params' shapes (to name gradients reduced more than once)."""
  kinds = {op.kind for op in ops}
  t = totals(ops)
  if data * fsdp == 1:
    return not ops, "one device: no collectives" if not ops else f"one device has collectives {sorted(kinds)}"
  if fsdp == 1:
    ar = t["all-reduce_bytes"]
    if kinds != {"all-reduce"}:
      return False, f"data parallelism should have only all-reduces, has {sorted(kinds)}"
    if not params <= ar <= 1.01 * params + SMALL_BYTES:
      count, extra = repeated_params(ops, list(shapes))
      again = f"; {count} param-shaped arrays ({extra:,} bytes) all-reduced more than once" if count else ""
      return False, f"all-reduce bytes {ar:,} vs 4 x params = {params:,} ({ar / params - 1:+.1%}){again}"
    return True, f"only all-reduce; {ar - params:,} bytes beyond 4 x params"
  if not kinds <= {"all-reduce", "all-gather", "reduce-scatter"}:
    return False, (f"unexpected kinds {sorted(kinds - {'all-reduce', 'all-gather', 'reduce-scatter'})}: XLA "
                   "resharded activations instead of gathering params (activations small next to the weights)")
  if sharded and t["all-gather_bytes"] < sharded:
    return False, f"all-gathers move {t['all-gather_bytes']:,} bytes < the {sharded:,} bytes of sharded params"
  if not sharded and "all-gather" in kinds:
    return False, "all-gathers although no parameter is big enough to be sharded"
  how = "reduce-scatter" if "reduce-scatter" in kinds else "all-reduce over fsdp + slice"
  return True, f"params all-gathered ({t['all-gather_bytes'] / max(sharded, 1):.1f}x sharded bytes), grads by {how}"


def build(config, data: int, fsdp: int):
  """(jitted train step, abstract state, state initialiser, mesh) for the config on a DATAxFSDP mesh."""
  config = config.copy_and_resolve_references()
  config.mesh.data, config.mesh.fsdp = data, fsdp
  models, opts = state_lib.build_models(config), state_lib.make_optimizers(config)
  mesh = sharding.make_mesh(config.mesh)
  sharding.check_batch(config.train.batch_size, mesh)
  abstract, _, init = loop.create_state(config, models, opts, mesh)
  train, _, _ = loop.compile_steps(config, models, opts, mesh, abstract)
  return train, abstract, init, mesh


def batch_shape(config) -> tuple[int, int, int]:
  return config.train.batch_size, config.data.window, 1


def compile_step(config, data: int, fsdp: int):
  """(compiled train step, abstract state, state initialiser, mesh); compiles without allocating the state."""
  train, abstract, init, mesh = build(config, data, fsdp)
  spec = jax.ShapeDtypeStruct(batch_shape(config), np.float32, sharding=sharding.batch_sharding(mesh))
  return train.lower(abstract, {"input": spec, "target": spec}).compile(), abstract, init, mesh


def analyse(config, data: int, fsdp: int) -> dict:
  """Compiles the step for DATAxFSDP; returns {ops, totals, params/sharded bytes, check, why, compiled...}."""
  compiled, abstract, init, mesh = compile_step(config, data, fsdp)
  ops = parse_collectives(compiled.as_text(), data * fsdp)
  params, sharded = param_bytes(abstract, fsdp)
  ok, why = check(ops, data, fsdp, params, sharded, [tuple(x.shape) for x in param_leaves(abstract)])
  return {"ops": ops, "totals": totals(ops), "param_bytes": params, "sharded_bytes": sharded, "ok": ok, "why": why,
          "compiled": compiled, "init": init, "mesh": mesh}


def time_step(config, result: dict, warmup: int = 1, repeats: int = 3) -> tuple[float, float]:
  """(median, min) seconds of the compiled step on a random batch, the state carried from step to step."""
  rng = np.random.default_rng(0)
  shape = batch_shape(config)
  batch = sharding.global_batch({k: rng.standard_normal(shape, np.float32) for k in ("input", "target")},
                                result["mesh"])
  carry = {"state": result["init"]()}

  def step():
    carry["state"], metrics = result["compiled"](carry["state"], batch)
    jax.block_until_ready(metrics)

  return common.time_fn(step, warmup=warmup, repeats=repeats)


def describe_ops(ops: list[Collective], data: int, fsdp: int, max_shapes: int = 6) -> list[str]:
  """One line per collective: kind, axis and group size, dtype/shapes of the results, bytes."""
  lines = []
  for op in ops:
    shapes = [f"{dt}[{','.join(map(str, s))}]" for dt, s in op.arrays]
    more = f" +{len(shapes) - max_shapes} more" if len(shapes) > max_shapes else ""
    lines.append(f"  {op.kind:<18} over {axis_of(op, data, fsdp):<9} (N={op.group_size}) {op.nbytes:>12,} B  "
                 f"{len(op.arrays):>3} arrays: {' '.join(shapes[:max_shapes])}{more}")
  return lines


def parse_meshes(text: str) -> list[tuple[int, int]]:
  try:
    meshes = [tuple(int(v) for v in item.lower().split("x")) for item in text.split(",") if item.strip()]
  except ValueError:
    meshes = []
  if not meshes or any(len(m) != 2 or min(m) < 1 for m in meshes):
    raise UserError(f"--meshes must look like 1x1,4x2 (DATAxFSDP, positive), got {text!r}")
  too_big = [m for m in meshes if m[0] * m[1] > jax.device_count()]
  if too_big:
    raise UserError(f"--meshes {too_big} need more than the {jax.device_count()} devices")
  return meshes  # type: ignore[return-value]


def define_flags() -> None:
  """The flags, defined only when run as a script (the tests import several bench scripts at once)."""
  flags.DEFINE_enum("config", "quickstart", ["quickstart", "default", "tiny"], "Base config (configs/<name>.py).")
  flags.DEFINE_integer("window", 2048, "Window (samples).")
  flags.DEFINE_integer("batch", 16, "Global batch.")
  flags.DEFINE_integer("depth", None, "Model depth (default: the config's).")
  flags.DEFINE_float("width", None, "Model width (default: the config's).")
  flags.DEFINE_float("lambda_adv", None, "> 0 adds the discriminator (default: the config's).")
  flags.DEFINE_string("meshes", DEFAULT_MESHES, "Comma-separated DATAxFSDP meshes.")
  flags.DEFINE_integer("repeats", 3, "Timed steps per mesh (0: compile and count only).")
  flags.DEFINE_bool("list", True, "List every collective of every mesh.")
  flags.DEFINE_string("json", None, "Also write the table as JSON here.")
FLAGS = flags.FLAGS


def make_config():
  overrides = {"window": FLAGS.window, "batch": FLAGS.batch, "depth": FLAGS.depth, "width": FLAGS.width,
               "loss.lambda_adv": FLAGS.lambda_adv}
  arg = ",".join(f"{k}={v}" for k, v in overrides.items() if v is not None)
  config = importlib.import_module(f"configs.{FLAGS.config}").get_config(arg)
  config.data.stride = min(config.data.stride, config.data.window)
  return config


def row_for(config, data: int, fsdp: int) -> tuple[dict, list[str]]:
  """Compiles, counts and times one mesh; returns (table row, listing lines)."""
  r = analyse(config, data, fsdp)
  t = r["totals"]
  median_s, min_s = time_step(config, r, repeats=FLAGS.repeats) if FLAGS.repeats > 0 else (None, None)
  ar = t["all-reduce_bytes"]
  row = {"name": f"data={data} fsdp={fsdp}", "data": data, "fsdp": fsdp,
         "step_ms": median_s and 1e3 * median_s, "min_ms": min_s and 1e3 * min_s,
         "ops": " ".join(f"{SHORT[k]}{t[f'{k}_count']}" for k in KINDS if t[f"{k}_count"]) or "-",
         "AR_MB": ar / 1e6, "AG_MB": t["all-gather_bytes"] / 1e6, "RS_MB": t["reduce-scatter_bytes"] / 1e6,
         "bytes_MB": t["bytes"] / 1e6, "ring_MB": t["ring_bytes"] / 1e6,
         "AR/4P": ar / r["param_bytes"], "check": "OK" if r["ok"] else "UNEXPECTED", "why": r["why"],
         "collectives": [{"kind": op.kind, "axis": axis_of(op, data, fsdp), "group_size": op.group_size,
                          "bytes": op.nbytes, "ring_bytes": op.ring_bytes,
                          "arrays": [f"{dt}{list(s)}" for dt, s in op.arrays]} for op in r["ops"]]}
  return row, [f"data={data} fsdp={fsdp}: {row['check']} ({r['why']})"] + describe_ops(r["ops"], data, fsdp)


COLUMNS = ["step_ms", "min_ms", "ops", "AR_MB", "AG_MB", "RS_MB", "bytes_MB", "ring_MB", "AR/4P", "check"]


@exit_on_user_error
def main(argv):
  del argv
  config = make_config()
  meshes = parse_meshes(FLAGS.meshes)
  _, abstract, _, _ = build(config, 1, 1)
  params, _ = param_bytes(abstract, 1)
  m = config.model
  print(f"train step of configs/{FLAGS.config}.py: depth {m.depth}, width {m.width}, window {config.data.window}, "
        f"global batch {config.train.batch_size}, lambda_adv {config.loss.lambda_adv}; "
        f"{params // 4:,} trainable params = {params / 1e6:.2f} MB (4P)")
  print(f"{jax.device_count()} fake CPU devices share {os.cpu_count()} cores: step times do not scale with devices "
        "(they show the cost of the partitioned program, not a speed-up).")
  print("bytes per device per step from the compiled HLO: *_MB = result sizes of the collectives; ring_MB = bytes "
        "one device sends with ring algorithms (all-reduce 2(N-1)/N, all-gather (N-1)/N, reduce-scatter (N-1) x "
        "result); AR/4P = all-reduce bytes / (4 bytes x params).", flush=True)
  rows, listing = [], []
  for data, fsdp in meshes:
    row, lines = row_for(config, data, fsdp)
    rows.append(row)
    listing += lines
    print(f"  {row['name']}: {row['ops']}, {row['check']}", flush=True)
  if FLAGS.list:
    print("\n".join(["", "collectives (per device, result bytes):"] + listing))
  print()
  common.print_table(rows, COLUMNS)
  bad = [r["name"] for r in rows if r["check"] != "OK"]
  print(f"check: {'all as expected' if not bad else 'UNEXPECTED for ' + ', '.join(bad)}")
  for r in rows:
    if r["check"] != "OK":
      print(f"  {r['name']}: {r['why']}")
  if FLAGS.json:
    common.write_json(FLAGS.json, rows, config=FLAGS.config, param_bytes=params)


if __name__ == "__main__":
  define_flags()
  app.run(main)
