"""Training: state, jitted sharded steps, the loop, orbax checkpoints, metric writers."""


def train_and_evaluate(config, workdir: str):
  """Trains the config's model in `workdir`, resuming from its latest checkpoint; see sr_jax.train.loop."""
  from sr_jax.train.loop import train_and_evaluate as run  # noqa: PLC0415 (keeps `import sr_jax.train` light)

  return run(config, workdir)
