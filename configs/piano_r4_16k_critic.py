"""Optional, after the r = 4 recipe: a critic for collaborative sampling, trained against the shipped generator.

The recipe (configs/piano_r4_16k.py) ships the generator alone: collaborative sampling changed nothing measurable
with the critics tried (the model card). To measure it again, or to use `--collab`, train a discriminator against the
finished stage 2 and shape it:
  python launch/train.py --config=configs/piano_r4_16k_critic.py --workdir=runs/piano_r4_16k_critic
  python launch/shape.py --workdir=runs/piano_r4_16k_critic --steps=100
  python launch/evaluate.py --checkpoint=runs/piano_r4_16k_critic --collab --data=... --max_seconds=30
The generator is stage 2's, unchanged (optim.lr_g = 0: Adam's update is exactly 0), so the plain rows of that
evaluation are the shipped model's; the critic's adversarial term never reaches it.
"""

from configs import default, piano_r4_16k


def get_config(arg: str | None = None):
  c = piano_r4_16k.get_config()
  c.train.init_from = "runs/piano_r4_16k"  # the finished stage 2 (or an exported model, e.g. pretrained/piano_r4_16k)
  c.loss.lambda_adv = 1e-4  # > 0: a discriminator (the global one) is trained ...
  c.loss.adv_start_step = 10**9  # ... whose term never reaches the generator
  c.optim.lr_g = 0.0  # the generator stays stage 2's, bit for bit
  c.train.num_steps = 500
  c.train.eval_every = 500
  c.checkpoint.every = 500
  default.apply_overrides(c, arg)
  return c
