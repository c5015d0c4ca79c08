"""What a training run shows: a progress bar (steps/s, losses), TensorBoard scalars/audio/spectrograms, and PNG loss
curves in the workdir at the end. Only process 0 writes."""

from __future__ import annotations

import os
import time

import jax
import numpy as np
from absl import logging
from tqdm import tqdm

from sr_jax import metrics
from sr_jax.report import plots
from sr_jax.train import state as state_lib
from sr_jax.train.writer import create_writer, read_history

BAR_KEYS = ("g_loss", "rec_loss", "d_loss", "ae_loss")


class RunLog:

  def __init__(self, config, workdir: str, total: int, start: int):
    self.config, self.workdir = config, workdir
    self.main = jax.process_index() == 0
    self.writer = create_writer(workdir, enabled=config.log.tensorboard, process_index=jax.process_index())
    self.bar = tqdm(total=total, initial=start, disable=not (config.log.progress and self.main), unit="step",
                    dynamic_ncols=True, mininterval=1.0)
    self.lr_g = state_lib.learning_rate(config, config.optim.lr_g)
    self.lr_d = state_lib.learning_rate(config, config.optim.lr_d)
    self.ae_steps = total - config.train.num_steps
    self._clock = (time.perf_counter(), start)
    self._example = None
    self.last: tuple[int, dict] | None = None  # (step, metrics) of the latest logged step
    if start == 0:
      self.writer.write_hparams(_flat(config.to_dict()))

  def scalars(self, pending: list[tuple[int, dict]], state) -> None:
    """Writes the metrics of the steps since the last call and moves the progress bar."""
    del state
    if not pending:
      return
    for step, m in pending:
      g_step = max(step - self.ae_steps, 0)
      self.writer.write_scalars(step, {**m, "lr_g": float(self.lr_g(g_step)), "lr_d": float(self.lr_d(g_step))})
    step, m = self.last = pending[-1]
    now, (then, then_step) = time.perf_counter(), self._clock
    rate = (step - then_step) / max(now - then, 1e-9)
    self._clock = (now, step)
    self.bar.update(step - self.bar.n)
    self.bar.set_postfix({"steps/s": f"{rate:.2f}", **{k: f"{m[k]:.4g}" for k in BAR_KEYS if m.get(k)}},
                         refresh=False)
    if not self.bar.disable:
      return
    logging.info("step %d: %.2f steps/s %s", step, rate, " ".join(f"{k}={m[k]:.4g}" for k in BAR_KEYS if k in m))

  def validation(self, step: int, val: dict[str, float], chain: str | None = None) -> None:
    """Writes validation metrics as valid/KEY (data.chain) or valid/CHAIN/KEY (a train.eval_chains name) and prints
    them in one line."""
    prefix = "valid/" if chain is None else f"valid/{chain}/"
    self.writer.write_scalars(step, {prefix + k: v for k, v in val.items()})
    names = [n for n in ("model", "spline", "input") if f"{n}_lsd" in val]
    where = "" if chain is None else f" ({chain})"
    text = (f"step {step} validation{where}: LSD " + " / ".join(f"{n} {val[n + '_lsd']:.3f}" for n in names)
            + "; SNR " + " / ".join(f"{n} {val[n + '_snr']:.2f}" for n in names) + " dB"
            + f"; capped at {metrics.VALID_SNR_CAP_DB:g} dB "
            + " / ".join(f"{n} {val[n + '_snr_capped']:.2f}" for n in names))
    if self.bar.disable:
      logging.info(text)
    else:
      self.bar.write(text)

  def example(self, step: int, gen, state, batch: dict) -> None:
    """Audio clips and spectrograms of one fixed validation window: input, model output, target."""
    if not self.main or not self.config.log.tensorboard:
      return
    if self._example is None:
      self._example = jax.jit(lambda p, x: gen.apply({"params": p}, x))
    x = np.asarray(batch["input"][:1])
    y = np.asarray(jax.device_get(self._example(state.gen.params, x)))
    clips = {"input": x[0, :, 0], "model": y[0, :, 0], "target": np.asarray(batch["target"][0, :, 0])}
    rate = self.config.data.rate
    self.writer.write_audios(step, {f"example/{k}": np.clip(v, -1, 1)[None, :, None] for k, v in clips.items()},
                             sample_rate=rate)
    self.writer.write_images(step, {f"example/{k}_spectrogram": plots.spectrogram_image(v, rate)
                                    for k, v in clips.items()})

  def close(self) -> None:
    self.bar.close()
    self.writer.flush()
    self.writer.close()
    if self.main:
      history = read_history(self.workdir)
      if history:
        plots.loss_curves_png(history, os.path.join(self.workdir, "loss_curves.png"))


def _flat(tree: dict, prefix: str = "") -> dict:
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(_flat(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v if isinstance(v, (bool, int, float, str)) else str(v)
  return out
