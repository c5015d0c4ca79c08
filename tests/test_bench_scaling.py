"""bench/scaling.py: replica-group parsing, and the collectives of a small compiled train step (data vs fsdp)."""

import math
import os
import sys

import jax
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import scaling  # noqa: E402  (bench/ is a namespace package: no __init__.py)
from configs import tiny  # noqa: E402
from sr_jax.errors import UserError  # noqa: E402
from sr_jax.models import build_generator  # noqa: E402


def _groups(text, n=8):
  return {frozenset(g) for g in scaling.parse_groups(text, n)}


def test_parse_groups_all_spellings():
  # mesh form: devices [0..7] laid out as [4,2] transposed -> order 0,2,4,6,1,3,5,7 on axes (1,2,1,4).
  mesh_form = "x), replica_groups=mesh['a0'=1,'a1'=2,'a2'=1,'a3'=4], device_ids=([4,2]T(1,0)) {'a1'}, use"
  assert _groups(mesh_form) == {frozenset({0, 1}), frozenset({2, 3}), frozenset({4, 5}), frozenset({6, 7})}
  assert _groups(mesh_form.replace("{'a1'}", "{'a3'}")) == {frozenset({0, 2, 4, 6}), frozenset({1, 3, 5, 7})}
  assert _groups("replica_groups=mesh['a0'=8,'a1'=1] {'a0'}, to_apply") == {frozenset(range(8))}
  assert _groups("replica_groups=[2,4]<=[8], to_apply") == {frozenset({0, 1, 2, 3}), frozenset({4, 5, 6, 7})}
  assert _groups("replica_groups=[4,2]<=[2,4]T(1,0), x") == {frozenset({0, 4}), frozenset({1, 5}),
                                                             frozenset({2, 6}), frozenset({3, 7})}
  assert _groups("replica_groups={{0,3},{1,2}}, x", 4) == {frozenset({0, 3}), frozenset({1, 2})}
  assert _groups("replica_groups={}, x", 4) == {frozenset(range(4))}
  assert scaling.parse_groups("channel_id=3, to_apply=%add", 8) is None


def test_parse_collectives_bytes_and_ring_traffic():
  hlo = "\n".join([
      ("  %all-reduce.1 = (f32[10,3]{1,0}, /*index=1*/bf16[4]{0}, f32[]) all-reduce(%a, %b, %c), "
       "replica_groups=[2,4]<=[8], to_apply=%add"),
      "  %all-gather.2 = f32[8,16]{1,0} all-gather(%d), replica_groups=[4,2]<=[8], dimensions={0}",
      "  %fusion.3 = f32[8,16]{1,0} fusion(%all-gather.2), kind=kLoop",
      "  ROOT %rs = s32[5]{0} reduce-scatter(%e), replica_groups={{0,1,2,3,4,5,6,7}}, dimensions={0}"])
  ops = scaling.parse_collectives(hlo, 8)
  assert [op.kind for op in ops] == ["all-reduce", "all-gather", "reduce-scatter"]
  assert [op.nbytes for op in ops] == [4 * 30 + 2 * 4 + 4, 4 * 128, 4 * 5]
  assert [op.group_size for op in ops] == [4, 2, 8]
  assert ops[0].ring_bytes == pytest.approx(2 * 3 / 4 * 132)
  assert ops[1].ring_bytes == pytest.approx(0.5 * 512)
  assert ops[2].ring_bytes == pytest.approx(7 * 20)
  t = scaling.totals(ops)
  assert t["bytes"] == 132 + 512 + 20 and t["all-reduce_count"] == 1 and t["all-to-all_count"] == 0


def test_repeated_params_names_gradients_reduced_twice():
  def ar(*shapes):
    return scaling.Collective("ar", "all-reduce", tuple(("f32", s) for s in shapes), ((0, 1),), 0)

  params = [(33, 32, 64), (64,), (9, 128, 128)]
  assert scaling.repeated_params([ar(*params)], params) == (0, 0)
  # the first kernel reduced a second time; the small bias twice too, but it is under min_size; (5,) is no param
  ops = [ar(*params), ar((33, 32, 64), (64,), (5,))]
  assert scaling.repeated_params(ops, params) == (1, 4 * 33 * 32 * 64)
  sized = [op._replace(nbytes=4 * sum(math.prod(s) for _, s in op.arrays)) for op in ops]
  param_bytes = 4 * sum(math.prod(s) for s in params)
  assert scaling.check(sized[:1], 2, 1, param_bytes, 0, params) == (True, "only all-reduce; 0 bytes beyond 4 x params")
  ok, why = scaling.check(sized, 2, 1, param_bytes, 0, params)
  assert not ok and "1 param-shaped arrays (270,336 bytes) all-reduced more than once" in why


def test_parse_meshes():
  assert scaling.parse_meshes("1x1, 4x2,1X8") == [(1, 1), (4, 2), (1, 8)]
  for bad in ("4", "0x2", "axb", "16x1"):
    with pytest.raises(UserError, match="--meshes"):
      scaling.parse_meshes(bad)


@pytest.fixture(scope="module")
def config():
  # Width 1/8: the (33, 16, 32) kernel is big enough to be sharded. Batch 64: with much smaller activations (e.g.
  # batch 8 at width 1/4) XLA's partitioner reshards activations (all-to-all, collective-permute) instead of
  # all-gathering every sharded kernel, and bench/scaling.py reports that as UNEXPECTED.
  c = tiny.get_config("depth=2,window=64,width=0.125,batch=64")
  c.data.stride = 64
  return c


@pytest.fixture(scope="module")
def gen_param_count(config):
  shapes = jax.eval_shape(build_generator(config).init, jax.random.PRNGKey(0), np.zeros((1, 64, 1), np.float32))
  return sum(math.prod(x.shape) for x in jax.tree.leaves(shapes["params"]))


def test_data_parallel_has_only_the_gradient_all_reduce(config, gen_param_count):
  r = scaling.analyse(config, 8, 1)
  kinds = {op.kind for op in r["ops"]}
  assert "all-reduce" in kinds and "all-gather" not in kinds and "reduce-scatter" not in kinds
  ar = r["totals"]["all-reduce_bytes"]
  assert 4 * gen_param_count <= ar <= 4 * gen_param_count + scaling.SMALL_BYTES
  assert r["param_bytes"] == 4 * gen_param_count and r["ok"], r["why"]
  assert {scaling.axis_of(op, 8, 1) for op in r["ops"]} == {"data"}
  median_s, min_s = scaling.time_step(config, r, warmup=0, repeats=1)
  assert median_s == min_s > 0


def test_fsdp_all_gathers_the_sharded_params(config, gen_param_count):
  r = scaling.analyse(config, 4, 2)
  assert 0 < r["sharded_bytes"] < 4 * gen_param_count
  gathers = [op for op in r["ops"] if op.kind == "all-gather"]
  assert gathers and {scaling.axis_of(op, 4, 2) for op in gathers} == {"fsdp"}
  assert all(op.group_size == 2 for op in gathers)
  assert r["totals"]["all-gather_bytes"] >= r["sharded_bytes"]
  assert r["ok"], r["why"]
  # A fake expectation fails the check: the same ops judged as pure data parallelism are UNEXPECTED.
  ok, why = scaling.check(r["ops"], 8, 1, r["param_bytes"], 0)
  assert not ok and "only all-reduces" in why
