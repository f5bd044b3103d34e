"""User mistakes as one line and exit code 2; bugs keep their traceback.

A command wraps the calls that can fail because of what the user gave (a path, a URL, a flag) in `user_errors()`.
The exception types listed there are the ones the library raises with a message written for a person; anything
else is a bug and propagates with its traceback. Messages are capped: some errors quote the input they choke on,
and a binary file must not flood the terminal.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import click

MAX_MESSAGE = 400


class UserError(click.ClickException):
    """What went wrong, where, and what to do: printed as `Error: ...`, exit code 2."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(cap(message))


def cap(message: str, limit: int = MAX_MESSAGE) -> str:
    """At most `limit` characters per line and 12 lines (the start says what and where; the end what to do)."""
    lines = str(message).splitlines() or [""]
    shortened = [line if len(line) <= limit else line[: limit - 30] + " … " + line[-27:] for line in lines[:12]]
    if len(lines) > 12:
        shortened.append(f"… ({len(lines) - 12} more lines)")
    return "\n".join(shortened)


@contextlib.contextmanager
def user_errors(*extra: type[BaseException]) -> Iterator[None]:
    """Turn missing or unreadable paths, and the library's user-facing exceptions passed as `extra` (ArchiveError,
    CheckpointError...), into `UserError`."""
    try:
        yield
    except UserError:
        raise
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError, *extra) as error:
        raise UserError(_describe(error)) from None


def _describe(error: BaseException) -> str:
    if isinstance(error, OSError) and error.filename and error.strerror:
        return f"{error.filename}: {error.strerror.lower()}"
    return str(error)


# Exceptions whose messages the library writes for a person (module, class). Looked up among the modules already
# imported: an error of a class whose module was never loaded cannot have been raised, and `--help` stays light.
USER_FACING: tuple[tuple[str, str], ...] = (
    ("indexer.store.db.catalog", "CatalogError"),
    ("indexer.store.archive", "ArchiveError"),
    ("indexer.store.db.retry", "DatabaseUnavailable"),
    ("mplug2.checkpoint", "CheckpointError"),
    ("mplug2.download", "DownloadError"),
    ("mplug2.download", "ChecksumError"),
)


def as_user_error(error: BaseException) -> UserError | None:
    """`error` as a UserError when it is one of USER_FACING (else None: a bug, whose traceback must show)."""
    for module_name, class_name in USER_FACING:
        module = sys.modules.get(module_name)
        if module is not None and isinstance(error, getattr(module, class_name)):
            return UserError(_describe(error))
    return None


class Group(click.Group):
    """The command group: a user-facing exception that a command did not handle ends as one line, exit code 2."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except Exception as error:
            converted = as_user_error(error)
            if converted is None:
                raise
            raise converted from None
