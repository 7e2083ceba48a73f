"""Tcl written from data: a script is a list of commands, each a list of words; a word is quoted
for Tcl unless it is a `Raw` piece of Tcl (a command substitution `[...]`, a variable `$name`, or
the body of an `if`). Nothing is substituted into a text template.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_BARE = re.compile(r"^[A-Za-z0-9_./:=+-]+$")


@dataclass(frozen=True)
class Raw:
    """Tcl text used as it is (made by this module's helpers)."""

    text: str


Word = str | int | float | Raw


def quote(word: Word) -> str:
    """One Tcl word: bare where it holds only safe characters, else in braces (which Tcl takes
    literally); a word with unbalanced braces or a backslash is refused."""
    if isinstance(word, Raw):
        return word.text
    text = str(word) if not isinstance(word, float) else repr(word)
    if _BARE.match(text):
        return text
    depth = 0
    for ch in text:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            break
    if depth != 0 or "\\" in text:
        raise ValueError(f"cannot quote {text!r} for Tcl")
    return "{" + text + "}"


def command(*words: Word) -> str:
    return " ".join(quote(w) for w in words)


def sub(*words: Word) -> Raw:
    """A command substitution: `[words]`."""
    return Raw("[" + command(*words) + "]")


def var(name: str) -> Raw:
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
        raise ValueError(f"not a Tcl variable name: {name!r}")
    return Raw("$" + name)


def config(**properties: Word) -> Raw:
    """A `-dict` list for `set_property`: {CONFIG.KEY value ...}, keys as given."""
    return Raw("[list " + " ".join(f"{quote(k)} {quote(v)}" for k, v in properties.items()) + "]")


@dataclass
class Script:
    lines: list[str] = field(default_factory=list)

    def comment(self, text: str) -> None:
        self.lines += [f"# {line}" for line in text.splitlines()]

    def add(self, *words: Word) -> None:
        self.lines.append(command(*words))

    def when(self, condition: Raw, body: "Script") -> None:
        """`if {condition} { body }`."""
        inner = "\n".join("  " + line for line in body.lines)
        self.lines.append(f"if {{{condition.text}}} {{\n{inner}\n}}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"
