import pytest

from configs import default, quickstart, tiny
from sr_jax.errors import UserError


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


def test_piano_recipes():
  from configs import piano_r2_16k, piano_r4_16k  # noqa: PLC0415
  from sr_jax.data import corpus  # noqa: PLC0415
  from sr_jax.data.degrade import chain_rates  # noqa: PLC0415
  from sr_jax.train import state as state_lib  # noqa: PLC0415

  r4, r2 = piano_r4_16k.get_config(), piano_r2_16k.get_config("steps=10")
  assert set(r4.keys()) == set(r2.keys()) == set(default.get_config().keys())
  assert chain_rates(r4.data.chain) == (4000, 16000) and chain_rates(r2.data.chain) == (8000, 16000)
  fonts = corpus.soundfont_list(r4.data.soundfont)
  assert len(fonts) == 3 and not any("TimGM6mb" in f for f in fonts)  # the evaluation's unseen soundfont
  assert r2.data.soundfont == r4.data.soundfont and r2.train.num_steps == 10
  # the discriminator is trained (a critic for collaborative sampling) but never steers the generator
  assert r4.loss.lambda_adv > 0 and r4.loss.adv_start_step > r4.train.num_steps and r4.loss.lambda_stft == 0
  for c in (r4, r2):
    state_lib.check_config(c)
    assert c.data.window % 2 ** (c.model.depth + 1) == 0
  assert r2.loss.adv_start_step > r2.train.num_steps and r2.loss.lambda_stft > 0
