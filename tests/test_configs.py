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
  from configs import (piano_r2_16k, piano_r2_16k_stft, piano_r4_16k, piano_r4_16k_critic,  # noqa: PLC0415
                       piano_r4_16k_l2, piano_r4_16k_l2b, piano_r4_16k_l2c, piano_r4_16k_l2d, piano_r4_16k_l2e)
  from sr_jax.data import corpus  # noqa: PLC0415
  from sr_jax.data.degrade import chain_rates  # noqa: PLC0415
  from sr_jax.train import state as state_lib  # noqa: PLC0415

  r4, l2, r2 = piano_r4_16k.get_config(), piano_r4_16k_l2.get_config(), piano_r2_16k.get_config("steps=10")
  stft, l2b = piano_r2_16k_stft.get_config(), piano_r4_16k_l2b.get_config()
  l2c, l2d, l2e = piano_r4_16k_l2c.get_config(), piano_r4_16k_l2d.get_config(), piano_r4_16k_l2e.get_config()
  stage1 = (l2, l2b, l2c, l2d, l2e)
  assert all(set(c.keys()) == set(default.get_config().keys()) for c in (r4, r2, stft, *stage1))
  assert chain_rates(r4.data.chain) == (4000, 16000) and chain_rates(r2.data.chain) == (8000, 16000)
  fonts = corpus.soundfont_list(r4.data.soundfont)
  assert len(fonts) == 3 and not any("TimGM6mb" in f for f in fonts)  # the evaluation's unseen soundfont
  assert r2.data.soundfont == l2.data.soundfont == r4.data.soundfont and r2.train.num_steps == 10
  # stages 1 to 1e are plain L2 without a discriminator (1b continues 1 at a lower lr, with another shuffle; 1c,
  # 1d and 1e each repeat 1b from the previous stage's model with a shuffle of their own); stage 2 fine-tunes
  # stage 1e's model (same shapes) with L2 + the spectral corridor
  for c in stage1:
    assert c.loss.lambda_stft == 0 and c.loss.lambda_corridor == 0 and c.loss.lambda_adv == 0
    state_lib.check_config(c)
  assert not l2.train.init_from and l2b.train.init_from == "runs/piano_r4_16k_l2"
  assert l2b.optim.lr_g < l2.optim.lr_g
  for c, name in ((l2c, "l2b"), (l2d, "l2c"), (l2e, "l2d")):
    assert c.train.init_from == f"runs/piano_r4_16k_{name}" and c.optim.to_dict() == l2b.optim.to_dict()
    assert c.train.num_steps == l2b.train.num_steps
  assert len({c.data.shuffle_seed for c in stage1}) == len(stage1)  # each stage its own order of the windows
  assert {c.data.cache_dir for c in (*stage1, r4)} == {"runs/piano_r4_16k_data_cache"}  # one cache of pairs
  assert r4.train.init_from == "runs/piano_r4_16k_l2e" and r4.loss.lambda_corridor > 0 and r4.loss.lambda_stft == 0
  assert r4.loss.corridor_floor_db < 0.0 < r4.loss.corridor_ceiling_db == 6.0 and r2.loss.corridor_ceiling_db == 0.0  # r2: as it was trained
  assert all(c.model.to_dict() == r4.model.to_dict() for c in stage1)
  # the shipped model enhances with overlapped windows, four times the training window long (its saved config is
  # stage 2's); the training data the same
  assert r4.data.eval_stride == 3 * r4.data.window // 4 and l2.data.eval_stride == l2.data.window
  assert r4.data.enhance_window == 4 * r4.data.window and l2.data.enhance_window == 0
  enhance_keys = ("eval_stride", "enhance_window")
  assert {k: v for k, v in r4.data.items() if k not in enhance_keys} == {k: v for k, v in l2.data.items()
                                                                         if k not in enhance_keys}
  for c in stage1[1:]:
    assert {k: v for k, v in c.data.items() if k != "shuffle_seed"} == {k: v for k, v in l2.data.items()
                                                                        if k != "shuffle_seed"}
  # r = 4: no stage trains a discriminator; the optional critic run trains one against stage 2's generator, which
  # stays as it is (lr 0), and its term never steers it; r = 2's stages trained one alongside, the same way
  critic = piano_r4_16k_critic.get_config()
  assert r4.loss.lambda_adv == 0 and critic.train.init_from == "runs/piano_r4_16k" and critic.optim.lr_g == 0.0
  assert critic.model.to_dict() == r4.model.to_dict() and critic.data.to_dict() == r4.data.to_dict()
  assert state_lib.config_warnings(critic) == []
  for c in (critic, stft, r2):
    assert c.loss.lambda_adv > 0 and c.loss.adv_start_step > c.train.num_steps
    state_lib.check_config(c)
    assert c.data.window % 2 ** (c.model.depth + 1) == 0
  # r = 2: stage 1 has the STFT term; stage 2 swaps it for the corridor and starts from stage 1's model
  assert stft.loss.lambda_stft > 0 and stft.loss.lambda_corridor == 0 and not stft.train.init_from
  assert r2.loss.lambda_stft == 0 and r2.loss.lambda_corridor > 0 and r2.train.init_from == "runs/piano_r2_16k_stft"
  assert r2.model.to_dict() == stft.model.to_dict() and r2.data.to_dict() == stft.data.to_dict()
