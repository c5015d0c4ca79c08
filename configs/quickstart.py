"""The quickstart: a small model (1.6M params) trained on the built-in piano corpus in about 5 minutes on 2 CPU cores.

Super-resolution 4 kHz -> 16 kHz (`sample 4000 16000`): the shipped piano models' network (depth 8 at 1/8 width,
2048-sample windows), trained from the input (zero-initialised final conv) with plain L1 for 2,000 steps: it ends
below the band-limited input and cubic spline in LSD on the validation split and above the input in SNR. The corpus
(30 minutes of synthesised piano) is built on first use (about a minute).
  python launch/train.py --config=configs/quickstart.py --workdir=runs/quickstart
"""

from sr_jax import config as defaults


def get_config(arg: str | None = None):
  c = defaults.get_config()
  c.model.depth = 8  # the shipped piano models' depth: the receptive field spans the whole window
  c.model.width = 0.125  # channels 16, 32, 64, 64, ...: a step costs a fraction of depth 4 at 1/4 width
  c.model.dropout = 0.0
  c.model.zero_init_final = True  # start from the input (as good as the soxr interpolation), learn the residual
  c.model.conv_impl = "fft"  # the up blocks' long-kernel convs by FFT: ~2x faster on CPU at batch 16
  c.data.source = "corpus"
  c.data.window = 2048
  c.data.stride = 1024
  c.data.eval_stride = 2048
  c.data.workers = 0  # on 2 cores, worker processes cost more than reading cached windows
  # L1, not L2: in a run this short, L2 keeps the output close to the input (little SNR gained) and lets a -80 to -50 dB
  # output through on silent windows, which the validation SNR punishes (-10 to -65 dB per window, the input's is 0);
  # L1's gradient does not fade with the error, so silence stays silent, and it gains more SNR and LSD in as many steps
  c.loss.reconstruction = "l1"
  c.loss.lambda_stft = 0.0  # no STFT term: it fills the missing band with incoherent energy, which costs SNR
  c.loss.lambda_corridor = 0.0  # no spectral corridor: next to L1 it lowers SNR and does not lower LSD
  c.optim.lr_g = 3e-4  # 1e-3 ends lower in both metrics
  c.optim.schedule = "warmup_cosine"  # decays to 0: the last steps settle
  c.optim.warmup_steps = 50  # Adam's first, noisiest steps at a lower rate
  c.optim.grad_clip = 1.0  # caps the odd large-gradient batch
  c.train.batch_size = 16
  c.train.num_steps = 2000  # ~7 steps/s on 2 cores: about 4-5 minutes with start-up and validation
  c.train.eval_every = 100
  c.train.eval_batches = 8
  c.train.log_every = 10
  c.log.audio_every = 500  # audio examples in TensorBoard 4 times a run
  c.checkpoint.every = 500  # a resumable save every quarter of the run
  defaults.apply_overrides(c, arg)
  return c
