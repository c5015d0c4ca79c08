r"""Exports a trained model for inference: the networks' weights (no optimizer states) and the config, one folder.

  python launch/export.py --workdir=runs/piano_r4_16k --out=pretrained/piano_r4_16k
  python launch/export.py --workdir=runs/gan --best --parts=gen,disc --dtype=bfloat16 --out=models/gan --overwrite

The folder holds state/ (orbax) and config/ (the run's config, so no model flags are needed) and, with disc in
--parts and a shaped discriminator beside the run (launch/shape.py), shaped_disc/. Load it with
`launch/enhance.py --checkpoint=OUT` or `launch/evaluate.py --checkpoint=OUT`. --dtype=bfloat16 halves the size;
the weights are computed in float32 again when loaded (measure what it costs with launch/evaluate.py).
"""

from absl import app, flags

from sr_jax.errors import UserError, exit_on_user_error

_WORKDIR = flags.DEFINE_string("workdir", None, "Training run (its latest checkpoint, or --step, or --best).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step to export (default: the latest).")
_BEST = flags.DEFINE_bool("best", False, "Export the best checkpoint by validation LSD instead of the latest.")
_OUT = flags.DEFINE_string("out", None, "Folder to write (state/, config/[, shaped_disc/]).")
_PARTS = flags.DEFINE_list("parts", ["gen"], "Networks to export: gen, and disc for collaborative sampling.")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Storage dtype of the weights.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing --out folder.")


@exit_on_user_error
def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not _WORKDIR.value or not _OUT.value:
    raise UserError("--workdir (a training run) and --out (the folder to write) are required")
  bad = [p for p in _PARTS.value if p not in ("gen", "disc")]
  if bad or "gen" not in _PARTS.value:
    raise UserError(f"--parts takes gen and optionally disc, got {','.join(_PARTS.value)}")
  from sr_jax.train import checkpoint  # noqa: PLC0415  (jax and orbax: only once the flags are fine)

  info = checkpoint.export_for_inference(_WORKDIR.value, _OUT.value, step=_STEP.value, best=_BEST.value,
                                         parts=tuple(_PARTS.value), dtype=_DTYPE.value, overwrite=_OVERWRITE.value)
  print(f"exported {info['source']} ({', '.join(_PARTS.value)}; {info['params']:,} weights in {_DTYPE.value}) to "
        f"{_OUT.value}: {info['bytes'] / 1e6:.1f} MB")

