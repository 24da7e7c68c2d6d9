"""``trainapi``: the service from the terminal (``datasets``, ``jobs``, ``sweeps``), and the commands of
whatever else is installed.

The client distribution owns the ``trainapi`` console script, so ``pip install
trainapi-client`` alone gives the resource commands. Other distributions add
commands through the ``trainapi.commands`` entry point group: each entry point is
a function ``add_parsers(sub)`` that adds its subcommands to the ``trainapi``
parser's subparsers, every one with a default ``main``, the function that runs it:
``main(args: argparse.Namespace) -> int`` (the exit status). The server
distribution registers ``serve``, ``api``, ``worker``, ``webhooks`` and ``keys``
that way (``trainapi/cli.py``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import entry_points
from typing import Any

from trainapi_client import commands
from trainapi_client.arguments import CommandParser

#: The entry point group other distributions add ``trainapi`` commands through.
GROUP = "trainapi.commands"

DESCRIPTION = "Train regularized models on a trainapi service: datasets, jobs and sweeps, and the installed commands."
#: What an entry point of the group is: it adds its commands to the ``trainapi`` parser's subparsers.
AddParsers = Callable[["argparse._SubParsersAction[Any]"], None]


def installed_commands() -> dict[str, AddParsers]:
    """The ``add_parsers`` of each ``trainapi.commands`` entry point, by entry point name.

    One that cannot be loaded (a broken or half-removed install) is reported on stderr
    and left out: the other commands still work.
    """
    found: dict[str, AddParsers] = {}
    for entry in entry_points(group=GROUP):
        try:
            found[entry.name] = entry.load()
        except (ImportError, AttributeError) as exc:
            print(f"trainapi: the {entry.name!r} commands ({entry.value}) cannot be loaded: {exc}", file=sys.stderr)
    return found


def parser(extra: Mapping[str, AddParsers] | None = None) -> CommandParser:
    """The ``trainapi`` parser: the resource commands, ``extra``, and the installed entry points not in ``extra``."""
    top = CommandParser(prog="trainapi", description=DESCRIPTION)
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parsers(sub)
    plugins = dict(extra or {})
    plugins.update({name: add for name, add in installed_commands().items() if name not in plugins})
    for add in plugins.values():
        add(sub)
    return top


def main(argv: Sequence[str] | None = None, extra: Mapping[str, AddParsers] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``) and run the command it names; its exit status."""
    args = parser(extra).parse_args(list(sys.argv[1:] if argv is None else argv))
    return int(args.main(args))


if __name__ == "__main__":
    sys.exit(main())
