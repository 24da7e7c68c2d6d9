"""The parser of every ``trainapi`` command: argparse, with options whose value is free text.

argparse reads any word that starts with ``-`` as an option, so ``--na-values -,n/a``
fails with "expected one argument". An option added with ``free_text=True`` takes the
next word as its value whatever it starts with, unless that word is one of the
command's own options (``--name --json`` still reports the missing name):
``--na-values -,n/a`` is read as ``--na-values=-,n/a``, which argparse accepts.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

#: Exit statuses: done, failed (a waited job did not succeed, the service refused), usage error.
OK, FAILED, USAGE = 0, 1, 2


class UsageError(Exception):
    """A command line that cannot run: exit status 2."""


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose subcommands are ``CommandParser`` too (argparse's default parser class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.long_options: set[str] = set()
        self.free_text: set[str] = set()
        super().__init__(*args, **kwargs)  # adds --help through add_argument

    def add_argument(self, *args: Any, free_text: bool = False, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        long = [name for name in action.option_strings if name.startswith("--")]
        self.long_options.update(long)
        if free_text:
            self.free_text.update(long)
        return action

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        # argparse hands a subcommand the words after its name through this method.
        if args is not None and self.free_text:
            args = self.join_free_text(list(args))
        return super().parse_known_args(args, namespace)

    def join_free_text(self, words: list[str]) -> list[str]:
        """``[--opt, value]`` as ``[--opt=value]`` for each free-text option (or unique abbreviation of one)."""
        joined: list[str] = []
        i = 0
        while i < len(words):
            word = words[i]
            if word == "--":  # the rest are positionals
                return joined + words[i:]
            option = self._long_option(word)
            if option in self.free_text and i + 1 < len(words) and self._long_option(words[i + 1]) is None:
                joined.append(f"{word}={words[i + 1]}")
                i += 2
            else:
                joined.append(word)
                i += 1
        return joined

    def _long_option(self, word: str) -> str | None:
        """The long option ``word`` names, exactly or as argparse's unique abbreviation; None for a value."""
        if not word.startswith("--") or "=" in word:
            return None
        if word in self.long_options:
            return word
        matches = [name for name in self.long_options if name.startswith(word)] if self.allow_abbrev else []
        return matches[0] if len(matches) == 1 else None
