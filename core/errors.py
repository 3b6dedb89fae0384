"""The error hierarchy: bad input, could-not-look and did-not-show are different things."""

from __future__ import annotations

import os

EXIT_BAD_INPUT = 3
"""The exit code for bad input (a config, a flag, an unusable option) everywhere."""


class ReadygateError(Exception):
    """Root of every error readygate raises on purpose."""


def shown_path(path: str) -> str:
    """``path`` as a user reads it: relative to the working directory when it is inside it."""
    if not os.path.isabs(path):
        return path
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


class ConfigError(ReadygateError):
    """Bad input: a config file, a flag or an argument is wrong (exit code 3).

    ``str()`` is a single line naming the file, line and key where known.
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 key: str | None = None) -> None:
        self.path = path
        self.line = line
        self.key = key
        self.detail = message
        super().__init__(self._format())

    def _format(self) -> str:
        where = ""
        if self.path:
            where = shown_path(self.path) + (f":{self.line}" if self.line else "")
        if self.key:
            where = f"{where} {self.key}" if where else self.key
        text = f"{where}: {self.detail}" if where else self.detail
        # Keys and values come from the user's file and may hold newlines: keep the promise.
        return " ".join(part.strip() for part in text.splitlines() if part.strip())


class BackendError(ReadygateError):
    """readygate could not look: a backend was unreachable, refused us or answered garbage."""


class EnvironmentProblem(ReadygateError):
    """Something this machine lacks (a binary, a package): exit code 3 with what to install."""


class StackError(ReadygateError):
    """A process readygate started did not come up, or died."""
