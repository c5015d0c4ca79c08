r"""Does the input pipeline keep up with training? Samples/s delivered vs samples/s a CPU train step consumes.

  python bench/pipeline.py [--window=2048 --batch=16 --depth=4 --width=0.125 --json=FILE]   # the shipped recipe's size

Builds the built-in corpus if missing, degrades it into a cache (timed), then times grain batches (no model) and a
jitted train step of the given model on random batches; prints one table. Target: ratio >= 20.
"""

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from bench import common  # noqa: E402
from configs import default  # noqa: E402
from sr_jax.data import pipeline  # noqa: E402
from sr_jax.train import loop, sharding  # noqa: E402


def define_flags() -> None:
  """The flags, defined only when run as a script (the tests import several bench scripts at once)."""
  flags.DEFINE_integer("window", 2048, "Window (samples).")
  flags.DEFINE_integer("batch", 16, "Global batch.")
  flags.DEFINE_integer("depth", 4, "Model depth for the train step.")
  flags.DEFINE_float("width", 0.125, "Model width for the train step.")
  flags.DEFINE_integer("workers", 0, "grain worker processes.")
  flags.DEFINE_string("json", None, "Also write the table as JSON here.")


FLAGS = flags.FLAGS


def step_samples_per_s(config, repeats=3) -> float:
  t = loop.build_training(config)
  train, state, mesh = t.train_step, t.init(), t.mesh
  shape = (config.train.batch_size, config.data.window, 1)
  batch = sharding.global_batch({"input": np.random.randn(*shape).astype(np.float32),
                                 "target": np.random.randn(*shape).astype(np.float32)}, mesh)
  state, m = train(state, batch)
  jax.block_until_ready(m)
  start = time.perf_counter()
  for _ in range(repeats):
    state, m = train(state, batch)
  jax.block_until_ready(m)
  return repeats * shape[0] * shape[1] / (time.perf_counter() - start)


def main(argv):
  del argv
  c = default.get_config(f"depth={FLAGS.depth},width={FLAGS.width},window={FLAGS.window},batch={FLAGS.batch}")
  c.data.stride, c.data.workers = FLAGS.window // 2, FLAGS.workers
  with tempfile.TemporaryDirectory() as workdir:
    t = time.perf_counter()
    pipeline.train_iterator(c, workdir)  # builds the corpus if missing and degrades it into the cache
    prepare_s = time.perf_counter() - t
    feed = pipeline.pipeline_throughput(c, workdir, num_batches=200)["samples_per_s"]
  need = step_samples_per_s(c)
  rows = [{"name": "pipeline (degrade cached)", "samples_per_s": feed, "prepare_s": prepare_s},
          {"name": f"train_step depth {FLAGS.depth} width {FLAGS.width:g} batch {FLAGS.batch}", "samples_per_s": need},
          {"name": "pipeline / train step", "ratio": feed / need}]
  common.print_table(rows, ["samples_per_s", "prepare_s", "ratio"])
  print(f"target: ratio >= 20 (measured {feed / need:.1f}x); degrading the corpus into the cache took {prepare_s:.1f} s")
  if FLAGS.json:
    common.write_json(FLAGS.json, rows)


if __name__ == "__main__":
  define_flags()
  app.run(main)
