"""The `mplug2-search` command line: one click group; each command lives in a module of this package.

Commands stay thin: they parse options, call one library function, and print. Heavy imports (torch, faiss)
happen inside the commands so that `mplug2-search --help` answers at once.
"""

from __future__ import annotations

import importlib
import logging

import click

from indexer.cli.errors import Group

# Modules that add commands to `cli`; each registers its commands when imported.
COMMAND_MODULES: tuple[str, ...] = (
    "archive",
    "index",
    "media",
    "model",
    "synthetic",
    "train",
    "ui",
    "evaluate",
    "serve",
)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120})
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """Text-to-video and image search over your own media archive, built on mPLUG-2."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


for _module in COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_module}")


def main() -> None:
    cli(prog_name="mplug2-search")
