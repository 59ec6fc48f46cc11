"""The `main` of every binary: build the config, run, and turn errors into exit codes.

Every binary of launch/ ends the same way for the same cause, because one table
(EXITS) maps each exception to its exit status and its one printed line:

  cause                                            status   line (stream)
  SIGTERM / Ctrl-C stopped a run after saving      128+sig  the message as-is (stdout)
  --stop_after_steps ran out, after saving         75       Interrupted: ... (stdout)
  Ctrl-C outside a training loop (nothing to save) 130      Error: interrupted ... (stderr)
  a non-finite loss, bad input, a failed write     1        Error: ... (stderr)

Resumable stops always end with how to continue; a line never is a traceback.
"""

from __future__ import annotations

import dataclasses
import signal
import sys
from typing import Any, Callable

from absl import app

from cpc_tf import records, stop

EXIT_INTERRUPTED = 75  # --stop_after_steps reached: rerun the same command to continue
RESUME = "Rerun the same command to continue."
INTERRUPTED_OUTSIDE = ("Error: interrupted (SIGINT) outside a training loop; the "
                       f"checkpoints saved so far are kept. {RESUME}")


def resumable(text: str) -> str:
  """`text`, ending with how to resume unless it already says so."""
  text = text.strip()
  if "Rerun the same command" in text:
    return text
  return f"{text.rstrip('.')}. {RESUME}"


@dataclasses.dataclass(frozen=True)
class Exit:
  """How one kind of exception ends a binary."""
  kinds: tuple[type[BaseException], ...]
  status: Callable[[BaseException], int]
  message: Callable[[BaseException], str]
  stream: str  # "stdout": an expected stop, "stderr": an error


def _error(e: BaseException) -> str:
  return f"Error: {e}"


# First match wins; every loop raises Stopped / Interrupted with its full line.
EXITS = (
    Exit((stop.Stopped,), lambda e: e.status, lambda e: resumable(str(e)), "stdout"),
    Exit((stop.Interrupted,), lambda e: EXIT_INTERRUPTED,
         lambda e: resumable(str(e)), "stdout"),
    Exit((KeyboardInterrupt,), lambda e: 128 + signal.SIGINT,
         lambda e: INTERRUPTED_OUTSIDE, "stderr"),
    Exit((stop.NonFiniteLossError,), lambda e: 1, _error, "stderr"),
    # DataError, ReportError, MapError, CacheError, EmbedError are ValueErrors.
    Exit((ValueError, FileNotFoundError, records.WriteError), lambda e: 1, _error,
         "stderr"),
)


def exit_for(e: BaseException) -> tuple[int, str, str] | None:
  """(status, line, stream) of the first EXITS row matching `e`; None: not ours."""
  for row in EXITS:
    if isinstance(e, row.kinds):
      return row.status(e), row.message(e), row.stream
  return None


def main(build_config: Callable[[], Any], run: Callable[[Any], None],
         usage_hint: str = "") -> Callable[[list[str]], None]:
  """The absl `main` of a binary: `run(build_config())`, errors mapped by EXITS.

  `build_config()` reads the flags and returns the run's config (or raises
  ValueError for a bad one); `run(config)` does the work and prints the result.
  `usage_hint` follows the message for unexpected positional arguments.
  """

  def absl_main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"Unexpected arguments: {argv[1:]}{usage_hint}")
    try:
      run(build_config())
    except (Exception, KeyboardInterrupt) as e:  # pylint: disable=broad-except
      found = exit_for(e)
      if found is None:
        raise
      status, line, stream = found
      print(line, file=sys.stdout if stream == "stdout" else sys.stderr, flush=True)
      sys.exit(status)

  return absl_main
