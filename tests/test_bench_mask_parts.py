"""bench/mask_parts.py on an untrained model whose U-Net is the identity (zero-initialised last conv): the U-Net alone
gives back the degraded input and the whole model the mask's output, while the mask's fresh gains (about 0.98) change
the input; a model without a mask is one error."""

import os
import sys

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import enhance, mask_parts  # noqa: E402
from sr_jax.errors import UserError  # noqa: E402

TINY = "depth=1,width=0.0625,window=256,data.stride=128,data.eval_stride=256"
MASK = ",model.mask_channels=8,model.mask_fft=64,model.mask_hop=16,model.zero_init_final=True"


@pytest.fixture(scope="module")
def clean_folder(tmp_path_factory):
  folder = tmp_path_factory.mktemp("clean")
  rng = np.random.default_rng(0)
  t = np.arange(16000) / 16000
  for i, f0 in enumerate((220.0, 330.0)):
    x = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.1 * np.sin(2 * np.pi * 3.1 * f0 * t) + 0.01 * rng.standard_normal(16000)
    sf.write(str(folder / f"tone{i}.wav"), x.astype(np.float32), 16000)
  return str(folder)


def test_the_identity_unet_splits_the_model_into_its_mask(tmp_path, clean_folder):
  checkpoint = enhance.make_checkpoint(str(tmp_path / "run"), TINY + MASK)
  files = sorted(os.path.join(clean_folder, f) for f in os.listdir(clean_folder))
  rows = mask_parts.part_rows(checkpoint, files, clean_folder, {"noise": "noise white 10"})
  table = {r["system"]: r for r in rows}
  assert set(table) == {"input", "model", "mask_alone", "unet_alone"} and all(r["files"] == 2 for r in rows)
  for metric in ("si_sdr", "lsd"):
    assert table["unet_alone"][metric] == pytest.approx(table["input"][metric], abs=1e-3)
    assert table["model"][metric] == pytest.approx(table["mask_alone"][metric], abs=1e-3)
  assert abs(table["mask_alone"]["lsd"] - table["input"]["lsd"]) > 0.01  # the gains are not 1: the mask is applied


def test_a_random_unet_makes_the_model_differ_from_its_mask(tmp_path, clean_folder):
  checkpoint = enhance.make_checkpoint(str(tmp_path / "run"), TINY + MASK.replace("True", "False"))
  files = sorted(os.path.join(clean_folder, f) for f in os.listdir(clean_folder))
  table = {r["system"]: r for r in mask_parts.part_rows(checkpoint, files, clean_folder, {"noise": "noise white 10"})}
  assert abs(table["model"]["si_sdr"] - table["mask_alone"]["si_sdr"]) > 0.1
  assert abs(table["unet_alone"]["si_sdr"] - table["input"]["si_sdr"]) > 0.1


def test_a_model_without_a_mask_is_refused(tmp_path):
  checkpoint = enhance.make_checkpoint(str(tmp_path / "run"), TINY)
  with pytest.raises(UserError, match="has no mask front-end"):
    mask_parts.Part(checkpoint, "mask_alone")
