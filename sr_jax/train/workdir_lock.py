"""One live run per workdir: `WorkdirLock` makes a second `launch/train.py` into a workdir a live run holds stop
with one error line naming the holder, instead of both runs writing the same checkpoints.

On one host the lock is an OS advisory lock (fcntl.flock) on WORKDIR/.lock, held while the run lives. The kernel
drops it when the process ends in any way (kill -9 and crashes included), so a dead run never leaves its workdir
locked: rerunning the same command takes the lock and resumes.

Hosts that share the folder (a multi-host run's other jobs, NFS) may not see each other's flock, so the lock file
also holds a record of the holder: its host, pid, start time and a heartbeat time that a daemon thread refreshes
every `HEARTBEAT_S` seconds. A run on another host is refused while that heartbeat is fresh (younger than
`STALE_S`), and takes the workdir over, with a warning, once it is stale (its holder died without releasing it).
The comparison uses both hosts' clocks, which must agree to well within `STALE_S`.

A run that ends releases the lock and removes the file.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import threading
import time

from absl import logging

from sr_jax.errors import UserError

LOCK_NAME = ".lock"
HEARTBEAT_S = 30.0  # how often the holder refreshes its heartbeat
STALE_S = 150.0  # a heartbeat from another host older than this is a dead run's: its workdir is taken over


class WorkdirBusy(UserError):
  """Another live run holds the workdir."""


def lock_path(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), LOCK_NAME)


def read_holder(path: str) -> dict | None:
  """The holder record in the lock file at `path` ({"host", "pid", "heartbeat", "started"}), or None when there is
  no file or it is empty. Text that is no record even when read again (a foreign writer caught mid-write, or
  garbage) reads as an unknown holder whose heartbeat is the file's modification time."""
  for attempt in range(3):
    try:
      with open(path, encoding="utf-8") as f:
        text = f.read()
      mtime = os.path.getmtime(path)
    except FileNotFoundError:
      return None
    if not text.strip():
      return None
    try:
      record = json.loads(text)
      if isinstance(record, dict) and {"host", "pid", "heartbeat"} <= record.keys():
        return record
    except ValueError:
      pass
    if attempt < 2:
      time.sleep(0.05)
  return {"host": "unknown", "pid": "unknown", "heartbeat": mtime}


class WorkdirLock:
  """The lock of one workdir: `acquire()` takes it or raises `WorkdirBusy`; `release()` (or leaving a `with`
  block) gives it back. While held, a daemon thread refreshes the heartbeat every `heartbeat_s` seconds."""

  def __init__(self, workdir: str, heartbeat_s: float = HEARTBEAT_S, stale_s: float = STALE_S):
    self.workdir = os.path.abspath(workdir)
    self.path = lock_path(self.workdir)
    self.heartbeat_s, self.stale_s = heartbeat_s, stale_s
    self.host, self.pid = socket.gethostname(), os.getpid()
    self.started = time.time()
    self._fd: int | None = None
    self._flocked = False
    self._stop = threading.Event()
    self._thread: threading.Thread | None = None

  @property
  def held(self) -> bool:
    return self._fd is not None

  def __enter__(self):
    return self.acquire()

  def __exit__(self, *exc):
    self.release()

  def acquire(self) -> WorkdirLock:
    """Takes the lock (creating the workdir if needed), or raises `WorkdirBusy` naming the live holder."""
    if self._fd is not None:
      return self
    fd = self._flock()
    try:
      holder = read_holder(self.path)
      if holder is not None and self._foreign(holder):
        age = time.time() - float(holder["heartbeat"])
        if age < self.stale_s:
          raise WorkdirBusy(self._busy(holder, age))
        logging.warning("taking over workdir %s from the run on host %s (pid %s): its last heartbeat was %.0f s ago, "
                        "so it is taken for dead", self.workdir, holder["host"], holder["pid"], age)
      self._fd = fd
      self._write()
    except BaseException:
      self._fd = None
      os.close(fd)  # (releases the flock)
      raise
    self._stop.clear()
    self._thread = threading.Thread(target=self._beat, name="sr_jax-workdir-heartbeat", daemon=True)
    self._thread.start()
    return self

  def release(self) -> None:
    """Stops the heartbeat, removes the lock file (if it is still this run's) and releases the flock."""
    if self._fd is None:
      return
    self._stop.set()
    if self._thread is not None:
      self._thread.join()
      self._thread = None
    try:
      if self._same_file(self._fd) and self._is_mine(read_holder(self.path)):
        os.unlink(self.path)  # while the flock is held: a run that opened it meanwhile sees it gone, and retries
    except OSError:
      pass
    os.close(self._fd)
    self._fd = None

  def _flock(self) -> int:
    """Opens the lock file and takes its flock: the fd, or `WorkdirBusy` when a process holds it."""
    for _ in range(20):
      os.makedirs(self.workdir, exist_ok=True)
      try:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
      except FileNotFoundError:  # the workdir was removed between the two calls (a failed start cleaning up)
        continue
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._flocked = True
      except OSError as e:
        if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):  # e.g. ENOLCK: no locks on this mount
          logging.warning("cannot flock %s (%s): relying on its heartbeat alone", self.path, e)
          self._flocked = False
          return fd
        os.close(fd)
        raise WorkdirBusy(self._busy(self._holder_soon(), None)) from None
      if self._same_file(fd):
        return fd
      os.close(fd)  # the holder removed the file between our open and flock: lock the one now at the path
    raise WorkdirBusy(f"workdir {self.workdir}: could not lock {self.path} (other runs keep replacing it)")

  def _holder_soon(self) -> dict | None:
    """The record of a holder whose flock was just seen: it may not have written it yet."""
    deadline = time.time() + 1.0
    while True:
      holder = read_holder(self.path)
      if holder is not None or time.time() > deadline:
        return holder
      time.sleep(0.05)

  def _same_file(self, fd: int) -> bool:
    try:
      a, b = os.fstat(fd), os.stat(self.path)
    except OSError:
      return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)

  def _is_mine(self, holder: dict | None) -> bool:
    return holder is not None and holder.get("host") == self.host and holder.get("pid") == self.pid

  def _foreign(self, holder: dict) -> bool:
    """Whether `holder` may be a live run other than this one. With the flock taken, a holder on this host is
    dead (a live one would hold the flock), and without flock (a mount without locks) one whose pid is gone; one on
    another host is judged by its heartbeat."""
    if self._is_mine(holder):
      return False
    if holder.get("host") != self.host:
      return True
    return not self._flocked and _alive(holder.get("pid"))

  def _busy(self, holder: dict | None, age: float | None) -> str:
    if holder is None:
      return (f"workdir {self.workdir} is in use by another run on this host (its lock {self.path} is held): "
              "wait for it to finish or stop it, or use another --workdir")
    host, pid = holder.get("host"), holder.get("pid")
    if host == self.host:
      return (f"workdir {self.workdir} is in use by another run on this host (pid {pid}): wait for it to finish, "
              f"or stop it (kill {pid}) and rerun this command to resume its run, or use another --workdir")
    beat = f"; its last heartbeat was {age:.0f} s ago" if age is not None else ""
    return (f"workdir {self.workdir} is in use by a run on host {host} (pid {pid}{beat}): wait for it to finish or "
            f"stop it, or use another --workdir (a run that died is taken over once its heartbeat is "
            f"{self.stale_s:.0f} s old, or delete {self.path} if you are sure it is gone)")

  def _write(self) -> None:
    record = {"host": self.host, "pid": self.pid, "heartbeat": time.time(), "started": self.started,
              "workdir": self.workdir}
    data = json.dumps(record).encode()
    os.pwrite(self._fd, data, 0)  # one write: a reader on another host sees the old record or the new one
    os.ftruncate(self._fd, len(data))
    os.fsync(self._fd)  # other hosts (NFS) see it

  def _beat(self) -> None:
    while not self._stop.wait(self.heartbeat_s):
      try:
        holder = read_holder(self.path)
        if holder is not None and not self._is_mine(holder):
          logging.error("workdir %s was taken over by the run on host %s (pid %s) (this run's heartbeat looked "
                        "stale to it): two runs now write its checkpoints; stop one of them",
                        self.workdir, holder.get("host"), holder.get("pid"))
          return
        self._write()
      except OSError as e:
        logging.warning("could not refresh the heartbeat in %s: %s", self.path, e)


def _alive(pid) -> bool:
  """Whether a process `pid` runs on this host (True when unsure)."""
  try:
    os.kill(int(pid), 0)
  except (TypeError, ValueError):
    return True
  except ProcessLookupError:
    return False
  except PermissionError:  # another user's process
    return True
  return True
