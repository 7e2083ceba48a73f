"""Progress of long steps, for people watching a terminal.

The library reports what it is doing through a `Progress` it is given (or none: `NO_PROGRESS`);
only the command line draws it, with `rich`, on stderr, so that stdout keeps the results (`--json`
prints one JSON object there and nothing else). A step is `begin(name, total)`, `advance(name)` as
parts of it finish (units synthesized, say), `end(name)`.
"""

from __future__ import annotations

import time
from typing import Protocol


class Progress(Protocol):
    def begin(self, step: str, total: int | None = None) -> None: ...
    def advance(self, step: str, amount: int = 1) -> None: ...
    def end(self, step: str) -> None: ...


class _Silent:
    """Reports nothing (the library's default, and `--quiet`)."""

    def begin(self, step: str, total: int | None = None) -> None:
        pass

    def advance(self, step: str, amount: int = 1) -> None:
        pass

    def end(self, step: str) -> None:
        pass


NO_PROGRESS: Progress = _Silent()


class ConsoleProgress:
    """A spinner (or a bar, where the step has a total) per running step, and one line per finished
    step with its time, on stderr. Use as a context manager around the command."""

    def __init__(self, title: str) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        self.console = Console(stderr=True)
        self._bars = RichProgress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                  MofNCompleteColumn(), TimeElapsedColumn(), console=self.console, transient=True)
        self._title = title
        self._tasks: dict[str, tuple[int, float]] = {}

    def __enter__(self) -> ConsoleProgress:
        self._bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bars.stop()

    def begin(self, step: str, total: int | None = None) -> None:
        self._tasks[step] = (self._bars.add_task(f"{self._title}: {step}", total=total), time.perf_counter())

    def advance(self, step: str, amount: int = 1) -> None:
        if step in self._tasks:
            self._bars.advance(self._tasks[step][0], amount)

    def end(self, step: str) -> None:
        if step not in self._tasks:
            return
        task, started = self._tasks.pop(step)
        self._bars.remove_task(task)
        self.console.print(f"  {self._title}: {step} [dim]{time.perf_counter() - started:.1f} s[/dim]", highlight=False)
