"""The two exception types the command line turns into one line.

Anything raised as `HwgenError` is the user's to fix (a model, a file, a parameter); the CLI prints
it as one line and exits with status 2. A `ToolError` is a tool that hwgen runs failing (Verilator,
the C++ compiler, Yosys): not the user's fault; one line naming the tool, what it worked on and
where its log is kept, exit status 1. Any other exception is a bug in hwgen and may trace.
"""

from __future__ import annotations


class HwgenError(Exception):
    """A user-facing error that names the node, tensor or parameter at fault."""

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class ToolError(Exception):
    """A tool failed: `tool` (e.g. "verilator"), on `subject` (a unit, a module, a design), with
    its whole output kept at `log` (None when it could not start)."""

    def __init__(self, tool: str, subject: str, detail: str, log: str | None = None) -> None:
        self.tool, self.subject, self.detail, self.log = tool, subject, detail, log
        where = f"; log: {log}" if log else ""
        super().__init__(f"{tool} failed on {subject}: {detail}{where}")
