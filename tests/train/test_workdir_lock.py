"""One live run per workdir (sr_jax.train.workdir_lock): a second run is refused in one line while the first lives,
a holder killed with -9 leaves nothing stuck (the next run resumes), and a run on another host sharing the folder
is judged by its heartbeat (fresh: refused; stale: taken over with a warning)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import pytest

from configs import tiny
from sr_jax.train import loop
from sr_jax.train.workdir_lock import LOCK_NAME, WorkdirBusy, WorkdirLock, read_holder

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOST = socket.gethostname()

# A process that takes the lock, says so, and holds it until it is killed.
HOLDER = f"""
import sys, time
sys.path.insert(0, {ROOT!r})
from sr_jax.train.workdir_lock import WorkdirLock
WorkdirLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(600)
"""


@pytest.fixture
def holder(tmp_path):
  """(workdir, the process holding its lock)."""
  workdir = str(tmp_path / "run")
  proc = subprocess.Popen([sys.executable, "-c", HOLDER, workdir], stdout=subprocess.PIPE, text=True)
  assert proc.stdout.readline().strip() == "locked"
  yield workdir, proc
  if proc.poll() is None:
    proc.kill()
  proc.wait()


def write_foreign(workdir, age_s):
  os.makedirs(workdir, exist_ok=True)
  record = {"host": "other-host", "pid": 4242, "heartbeat": time.time() - age_s, "started": time.time() - 999}
  with open(os.path.join(workdir, LOCK_NAME), "w", encoding="utf-8") as f:
    json.dump(record, f)
  return record


def test_a_second_run_is_refused_in_one_line_naming_the_holder(holder):
  workdir, proc = holder
  with pytest.raises(WorkdirBusy, match=rf"in use by another run on this host \(pid {proc.pid}\)"):
    WorkdirLock(workdir).acquire()
  cmd = [sys.executable, os.path.join(ROOT, "launch", "train.py"), "--config=configs/tiny.py", f"--workdir={workdir}"]
  result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
  assert result.returncode == 2, result.stderr[-3000:]
  assert "Traceback" not in result.stderr
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert errors == [result.stderr.strip().splitlines()[-1]]
  assert f"workdir {workdir} is in use by another run on this host (pid {proc.pid})" in errors[0]
  assert "use another --workdir" in errors[0]
  assert os.listdir(workdir) == [LOCK_NAME]  # the refused run wrote nothing
  assert read_holder(os.path.join(workdir, LOCK_NAME))["pid"] == proc.pid  # and left the holder's record alone


def test_a_holder_killed_with_9_leaves_the_workdir_free_and_the_run_resumes(tmp_path, capsys):
  config = tiny.get_config()
  config.train.num_steps = config.checkpoint.every = config.train.eval_every = config.log.audio_every = 2
  config.log.tensorboard = config.log.progress = False
  workdir = str(tmp_path / "run")
  loop.train_and_evaluate(config, workdir)
  assert not os.path.exists(os.path.join(workdir, LOCK_NAME))  # a run that ends removes its lock
  proc = subprocess.Popen([sys.executable, "-c", HOLDER, workdir], stdout=subprocess.PIPE, text=True)
  assert proc.stdout.readline().strip() == "locked"
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert read_holder(os.path.join(workdir, LOCK_NAME))["pid"] == proc.pid  # its record stays, its flock is gone
  config.train.num_steps = 4
  state = loop.train_and_evaluate(config, workdir)
  assert f"resumed from step 2 in {workdir}" in capsys.readouterr().out
  assert int(state.step) == 4
  assert not os.path.exists(os.path.join(workdir, LOCK_NAME))


def test_a_fresh_heartbeat_from_another_host_is_refused(tmp_path):
  workdir = str(tmp_path / "shared")
  record = write_foreign(workdir, age_s=5)
  with pytest.raises(WorkdirBusy, match=r"in use by a run on host other-host \(pid 4242; its last heartbeat was "
                     r"[56] s ago\): wait for it to finish or stop it, or use another --workdir"):
    WorkdirLock(workdir, stale_s=150).acquire()
  assert read_holder(os.path.join(workdir, LOCK_NAME)) == record  # untouched


def test_a_stale_heartbeat_from_another_host_is_taken_over_with_a_warning(tmp_path, caplog):
  workdir = str(tmp_path / "shared")
  write_foreign(workdir, age_s=1000)
  lock = WorkdirLock(workdir, stale_s=150).acquire()
  try:
    assert "taking over workdir" in caplog.text and "host other-host (pid 4242)" in caplog.text
    mine = read_holder(os.path.join(workdir, LOCK_NAME))
    assert (mine["host"], mine["pid"]) == (HOST, os.getpid())
  finally:
    lock.release()
  assert not os.path.exists(os.path.join(workdir, LOCK_NAME))


def test_the_holder_refreshes_its_heartbeat_and_gives_the_lock_back(tmp_path):
  workdir = str(tmp_path / "run")
  with WorkdirLock(workdir, heartbeat_s=0.05) as lock:
    first = read_holder(lock.path)["heartbeat"]
    deadline = time.time() + 10
    while read_holder(lock.path)["heartbeat"] == first and time.time() < deadline:
      time.sleep(0.05)
    assert read_holder(lock.path)["heartbeat"] > first
    with pytest.raises(WorkdirBusy):  # held: even this process's second lock is refused
      WorkdirLock(workdir).acquire()
  assert os.listdir(workdir) == []
  WorkdirLock(workdir).acquire().release()


def test_only_process_0_of_a_multi_process_run_takes_the_lock(holder, monkeypatch):
  workdir, _ = holder
  monkeypatch.setattr(jax, "process_index", lambda: 1)  # the others share process 0's run
  assert loop._lock_workdir(workdir) is None
