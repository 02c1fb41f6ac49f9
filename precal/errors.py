"""The errors a user can cause, and how they are shown: one readable line, never a traceback.

A wrong path, a malformed file, an unknown modality or a full disk raises one of
:data:`USER_ERRORS` (``CheckpointError``, ``SchemaError`` and ``DataFormatError`` are
``ValueError``\\ s); the command line prints :func:`error_line` and exits with status 2, the dashboard
shows it as one error box. Tracebacks are for bugs.
"""

from __future__ import annotations

USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, KeyError, OSError)
"""What a bad path, file, argument or a full/read-only disk raises."""


def error_line(exc: BaseException) -> str:
    """One readable line for a user error (KeyError's quotes dropped, an OSError's file named)."""
    if isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
    elif isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(line.strip() for line in text.splitlines() if line.strip()) or type(exc).__name__
