"""Device mesh and sharding rules, all driven by config.mesh.

Mesh axes: `data` (pure data parallelism) and `fsdp` (data parallelism with parameters, gradients and optimizer
states sharded). Batches are sharded over both axes (every device sees its own slice of the global batch). Arrays of
the train state are replicated when fsdp == 1; with fsdp > 1 each array of at least `min_shard_size` elements is
sharded over `fsdp` along its largest axis that the fsdp size divides (XLA then all-gathers params for the forward
pass and reduce-scatters gradients). BatchNorm statistics under jit are means over the global batch, so N devices
compute the same step as one.
"""

from __future__ import annotations

import math

import jax
import numpy as np
from absl import logging
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from sr_jax.errors import UserError

AXES = ("data", "fsdp")
BATCH_SPEC = P(AXES)


def mesh_shape(mesh_config, num_devices: int) -> tuple[int, int]:
  """Resolves the -1 entries of (data, fsdp) against `num_devices`; a mesh that does not fit is a UserError."""
  sizes = [int(mesh_config.data), int(mesh_config.fsdp)]
  if sizes.count(-1) > 1:
    raise UserError(f"mesh: at most one of data/fsdp may be -1, got data={sizes[0]}, fsdp={sizes[1]}")
  if any(s == 0 or s < -1 for s in sizes):
    raise UserError(f"mesh sizes must be positive or -1, got data={sizes[0]}, fsdp={sizes[1]}")
  known = math.prod(s for s in sizes if s != -1)
  if -1 in sizes:
    if num_devices % known:
      raise UserError(f"mesh: {known} does not divide the {num_devices} devices (data={sizes[0]}, fsdp={sizes[1]})")
    sizes[sizes.index(-1)] = num_devices // known
  total = math.prod(sizes)
  if total > num_devices or num_devices % total:
    raise UserError(f"mesh data={sizes[0]} x fsdp={sizes[1]} = {total} devices does not divide the "
                    f"{num_devices} available devices")
  return sizes[0], sizes[1]


def make_mesh(mesh_config, devices=None) -> Mesh:
  devices = list(jax.devices() if devices is None else devices)
  data, fsdp = mesh_shape(mesh_config, len(devices))
  if data * fsdp < len(devices):
    logging.info("mesh uses %d of the %d devices", data * fsdp, len(devices))
  return jax.make_mesh((data, fsdp), AXES, axis_types=(AxisType.Auto,) * 2, devices=devices[:data * fsdp])


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, BATCH_SPEC)


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def check_batch(global_batch: int, mesh: Mesh, process_count: int = 1) -> int:
  """The global batch must split evenly over the batch-sharding devices and the processes; returns the per-process batch."""
  shards = mesh.shape["data"] * mesh.shape["fsdp"]
  if global_batch % shards:
    raise UserError(f"train.batch_size={global_batch} is not divisible by the {shards} devices of the mesh "
                    f"(data={mesh.shape['data']} x fsdp={mesh.shape['fsdp']})")
  if global_batch % process_count:
    raise UserError(f"train.batch_size={global_batch} is not divisible by the {process_count} processes")
  return global_batch // process_count


def spec_for(shape: tuple[int, ...], fsdp: int, min_shard_size: int = 2 ** 14) -> P:
  """Replicated, or sharded over `fsdp` along the largest axis divisible by the fsdp size."""
  if fsdp == 1 or math.prod(shape) < min_shard_size:
    return P()
  axes = sorted(range(len(shape)), key=lambda a: -shape[a])
  for a in axes:
    if shape[a] % fsdp == 0:
      spec = [None] * len(shape)
      spec[a] = "fsdp"
      return P(*spec)
  return P()


def state_shardings(mesh: Mesh, abstract_tree):
  """NamedShardings for every array of a pytree of ShapeDtypeStructs (the train state)."""
  fsdp = mesh.shape["fsdp"]
  return jax.tree.map(lambda x: NamedSharding(mesh, spec_for(tuple(x.shape), fsdp)), abstract_tree)


def global_batch(local_batch: dict, mesh: Mesh) -> dict:
  """Per-process numpy batch -> global jax arrays sharded over the mesh's batch axes."""
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in local_batch.items()}
