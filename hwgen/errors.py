"""The one exception type for mistakes in what the user gave us.

Anything raised as `HwgenError` is the user's to fix (a model, a file, a parameter); the CLI prints
it as one line and exits with status 2. Any other exception is a bug in hwgen and may trace.
"""

from __future__ import annotations


class HwgenError(Exception):
    """A user-facing error that names the node, tensor or parameter at fault."""

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)
