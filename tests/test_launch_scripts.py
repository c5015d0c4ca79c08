"""Tests for launch/tpu_vm.sh and launch/slurm.sbatch: syntax, and the commands they run (gcloud/srun/python faked)."""

import os
import shlex
import stat
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TPU_SCRIPT = os.path.join(ROOT, "launch", "tpu_vm.sh")
SLURM_SCRIPT = os.path.join(ROOT, "launch", "slurm.sbatch")


def _fake_bin(tmp_path, programs):
  """A folder of fake executables {name: bash body}; returns an environment with it first on PATH."""
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  for name, body in programs.items():
    path = bin_dir / name
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
  env = {k: v for k, v in os.environ.items() if not k.startswith(("TPU_", "SLURM_", "JAX_"))}
  env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
  return env


# The fake gcloud appends its arguments to $LOG, one NUL-terminated argument each, one line per call.
_GCLOUD = 'for a in "$@"; do printf "%s\\0" "$a" >> "$LOG"; done; echo >> "$LOG"\n'


def _gcloud_calls(log):
  return [line.rstrip("\0").split("\0") for line in log.read_text().splitlines() if line]


@pytest.mark.parametrize("script", [TPU_SCRIPT, SLURM_SCRIPT])
def test_scripts_parse(script):
  result = subprocess.run(["bash", "-n", script], capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr


def test_tpu_train_runs_train_py_on_all_workers(tmp_path):
  env = _fake_bin(tmp_path, {"gcloud": _GCLOUD})
  log = tmp_path / "gcloud.log"
  env.update(LOG=str(log), TPU_NAME="my-tpu", ZONE="us-central2-b", PROJECT="proj", WORKDIR="gs://bucket/run 1",
             CONFIG="configs/default.py:depth=4,window=2048", SR_JAX_DATA="/data/sr")
  subprocess.run(["bash", TPU_SCRIPT, "train", "--config.train.num_steps=5", "--note=a b"], env=env, check=True,
                 capture_output=True)
  (call,) = _gcloud_calls(log)
  assert call[:5] == ["compute", "tpus", "tpu-vm", "ssh", "my-tpu"]
  assert {"--zone=us-central2-b", "--project=proj", "--worker=all"} <= set(call)
  (command,) = [a[len("--command="):] for a in call if a.startswith("--command=")]
  words = shlex.split(command)
  run = words[words.index("launch/train.py") - 1:]
  assert run == ["python3", "launch/train.py", "--distributed=on", "--config=configs/default.py:depth=4,window=2048",
                 "--workdir=gs://bucket/run 1", "--config.train.num_steps=5", "--note=a b"]
  assert "SR_JAX_DATA=/data/sr" in words


def test_tpu_setup_installs_gcs_clients_for_gs_workdirs(tmp_path):
  env = _fake_bin(tmp_path, {"gcloud": _GCLOUD})
  log = tmp_path / "gcloud.log"
  env.update(LOG=str(log), TPU_NAME="t", ZONE="z")
  for workdir in ("gs://b/r", "/local/run"):
    subprocess.run(["bash", TPU_SCRIPT, "setup"], env={**env, "WORKDIR": workdir}, check=True, capture_output=True)
  gs_call, local_call = _gcloud_calls(log)
  assert "--project" not in " ".join(gs_call)
  assert "pip install -q -e . google-cloud-storage gcsfs" in gs_call[-1]
  assert "'jax[tpu]'" in local_call[-1] and "gcsfs" not in local_call[-1]


def test_tpu_script_user_errors(tmp_path):
  env = _fake_bin(tmp_path, {"gcloud": "exit 99\n"})
  result = subprocess.run(["bash", TPU_SCRIPT, "train"], env={**env, "ZONE": "z"}, capture_output=True, text=True,
                          check=False)
  assert result.returncode != 0 and "set TPU_NAME" in result.stderr
  result = subprocess.run(["bash", TPU_SCRIPT, "fly"], env={**env, "ZONE": "z", "TPU_NAME": "t"},
                          capture_output=True, text=True, check=False)
  assert result.returncode == 2 and "usage:" in result.stderr


def test_slurm_runs_one_process_per_node_with_all_its_gpus(tmp_path):
  out = tmp_path / "python.out"
  env = _fake_bin(tmp_path, {
      # srun: drop its own options and run the task command once, as on a one-node allocation.
      "srun": 'while [[ "$1" == --* ]]; do shift; done; exec "$@"\n',
      "python": 'echo "JAX_LOCAL_DEVICE_IDS=$JAX_LOCAL_DEVICE_IDS" > "$OUT"; printf "%s\\n" "$@" >> "$OUT"\n',
  })
  env.update(OUT=str(out), SLURM_GPUS_ON_NODE="4", WORKDIR="/shared/run", CONFIG="configs/tiny.py")
  subprocess.run(["bash", SLURM_SCRIPT, "--config.train.num_steps=7"], env=env, check=True, capture_output=True,
                 cwd=tmp_path)
  lines = out.read_text().splitlines()
  assert lines == ["JAX_LOCAL_DEVICE_IDS=0,1,2,3", "launch/train.py", "--config=configs/tiny.py",
                   "--workdir=/shared/run", "--config.train.num_steps=7"]

  env.pop("WORKDIR")
  result = subprocess.run(["bash", SLURM_SCRIPT], env=env, capture_output=True, text=True, check=False,
                          cwd=tmp_path)
  assert result.returncode != 0 and "set WORKDIR" in result.stderr
