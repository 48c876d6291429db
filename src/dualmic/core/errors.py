"""One error type for everything a user can get wrong, and one way to report it.

Every stage and CLI command runs inside :func:`user_errors`, so bad params, bad inputs or an
unwritable output end the process with a single line on stderr and a non-zero exit code,
never a traceback.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

EXIT_USER_ERROR = 2


class DualmicError(Exception):
    """A problem the user can fix: the message names the bad value and what is allowed."""


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn :class:`DualmicError` (and unwritable paths) into one stderr line and exit 2."""
    try:
        yield
    except DualmicError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR) from None
    except PermissionError as err:
        print(f"error: cannot write {err.filename!s}: permission denied", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR) from None
    except KeyboardInterrupt:
        print("error: interrupted; no partial output was kept", file=sys.stderr)
        raise SystemExit(130) from None


def one_line(text: object, limit: int = 160) -> str:
    """``text`` (an exception's message, say) squeezed onto one line of at most ``limit`` chars."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
