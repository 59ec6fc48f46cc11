"""Stopping a run on SIGTERM (preemption) or SIGINT (Ctrl-C), even when it is stuck.

The training loops read `StopSignal.requested` between tf.function calls, save
a checkpoint and exit with status `StopSignal.status` (128 + the signal
number: 143 for SIGTERM, 130 for Ctrl-C), never a KeyboardInterrupt traceback.

Python runs signal handlers in the main thread only, between bytecodes: a
tf.function call blocked in the input pipeline (a source that never yields)
never gets back there, so a flag alone would leave such a run deaf to both
signals. The C-level handler also writes the signal number to the wakeup fd
at once, so a watchdog thread reading that fd learns of the signal while the
main thread is blocked. If the main thread has not reached the handler within
`grace` seconds, or a second signal arrives, the watchdog prints one `Error:`
line and ends the process with the same status, without saving: the last
checkpoint stays as it was (the checkpoint state file is replaced atomically).
"""

from __future__ import annotations

import os
import select
import signal
import threading
import time

SIGNALS = (signal.SIGINT, signal.SIGTERM)  # SIGTERM last: a test seeing it caught sees both
# Longer than any single tf.function call of the loops on their own data
# (steps_per_loop steps), shorter than a patient user.
GRACE_SECONDS = 60.0


class StopSignal:
  """Context manager: SIGTERM / SIGINT set `requested`; a watchdog ends a stuck run.

  `note` is appended to the watchdog's message (e.g. where the last checkpoint
  is). Outside the main thread no handler can be installed: `requested` stays
  False and signals keep their usual effect.
  """

  def __init__(self, grace: float = GRACE_SECONDS, note: str = ""):
    self.grace = grace
    self.note = note
    self.signum: int | None = None
    self._installed = False

  @property
  def requested(self) -> bool:
    return self.signum is not None

  @property
  def status(self) -> int:
    """The exit status a run stopped by this signal reports (128 + signal number)."""
    return 128 + (self.signum or signal.SIGTERM)

  @property
  def name(self) -> str:
    return signal.Signals(self.signum or signal.SIGTERM).name

  def __enter__(self):
    if threading.current_thread() is not threading.main_thread():
      return self
    # The watchdog first, the handlers last: once a handler is visible (e.g. in
    # /proc/<pid>/status SigCgt) a signal reaches both.
    self._read_fd, self._write_fd = os.pipe()
    os.set_blocking(self._write_fd, False)
    self._previous_fd = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
    self._handled = threading.Event()
    self._closing = False
    self._installed = True
    self._watchdog = threading.Thread(target=self._watch, name="stop-watchdog",
                                      daemon=True)
    self._watchdog.start()
    self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
    return self

  def _handle(self, signum, frame):
    del frame
    if self.signum is None:
      self.signum = signum
    self._handled.set()

  def _watch(self):
    first, count, deadline = None, 0, None
    while True:
      timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
      ready, _, _ = select.select([self._read_fd], [], [], timeout)
      if self._closing:
        return
      if ready:
        for number in os.read(self._read_fd, 64):
          if number in SIGNALS:
            count += 1
            first = first or number
        if first is None:
          continue
        if count >= 2:
          self._exit(first, f"a second {signal.Signals(first).name} arrived: exiting "
                            "at once, without saving")
        if deadline is None and not self._handled.is_set():
          deadline = time.monotonic() + self.grace
      elif deadline is not None:
        deadline = None
        if not self._handled.is_set():
          self._exit(first, f"the running step did not return within {self.grace:g} s "
                            "(is the input pipeline stuck? check the data source); "
                            "exiting without saving")

  def _exit(self, signum: int, why: str):
    message = f"Error: {signal.Signals(signum).name} received, but {why}. {self.note}"
    os.write(2, (message.rstrip() + "\n").encode())
    os._exit(128 + signum)

  def __exit__(self, *exc):
    if not self._installed:
      return False
    self._closing = True
    signal.set_wakeup_fd(self._previous_fd)
    for s, handler in self._previous.items():
      signal.signal(s, handler)
    os.write(self._write_fd, b"\0")  # wakes the watchdog, which sees _closing
    self._watchdog.join(5)
    os.close(self._read_fd)
    os.close(self._write_fd)
    self._installed = False
    return False


class Interrupted(Exception):
  """A run's step budget for this invocation (--stop_after_steps) ran out after saving."""


class Stopped(Exception):
  """SIGTERM / SIGINT stopped a run after saving; `status` = 128 + the signal. Rerun to resume."""

  def __init__(self, message: str, status: int = 143):
    super().__init__(message)
    self.status = status


class NonFiniteLossError(FloatingPointError):
  """The loss became NaN or infinite; the run stopped without saving that step."""
