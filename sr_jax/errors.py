"""The one exception type for user mistakes.

Everything a user can get wrong (a bad flag, a bad file, a bad config) raises `UserError` with a message that
says what is wrong and how to fix it. The absl entry points in `launch/` catch it and print that one line
(`error: ...`) with exit status 2, without a traceback. Programming errors keep their tracebacks.
"""

from __future__ import annotations

import functools
import sys


class UserError(ValueError):
  """A mistake in user input (flag, config, file), reported as one line without a traceback."""


def exit_on_user_error(main):
  """Decorates an absl `main(argv)`: a `UserError` becomes `error: <message>` on stderr and exit status 2.

  Also shows only warnings and errors of the libraries' INFO logging (jax, orbax, grain) unless the user asked for
  more with --verbosity / -v.
  """

  @functools.wraps(main)
  def wrapped(argv):
    from absl import flags, logging  # noqa: PLC0415

    if "verbosity" in flags.FLAGS and not flags.FLAGS["verbosity"].present:
      logging.set_verbosity(logging.WARNING)
    try:
      return main(argv)
    except UserError as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2)

  return wrapped
