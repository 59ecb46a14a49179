"""What the supply, stock and report commands share: the one place their errors become an
OperationOutcome on stderr (exit 1), and JSON/CSV output."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import orjson
import typer

from gateway.errors import FhirError, operation_outcome

T = TypeVar("T")
DATABASE_HELP = "Database URL [env YAOLIAN_DATABASE]"


@contextmanager
def outcome_on_error() -> Iterator[None]:
    """A refused command prints the OperationOutcome (Chinese and English, with where) and exits 1."""
    try:
        yield
    except FhirError as exc:
        sys.stderr.write(orjson.dumps(operation_outcome(exc.issues), option=orjson.OPT_INDENT_2).decode() + "\n")
        raise typer.Exit(1) from None


def print_json(value: Any) -> None:
    typer.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())


def run(action: Callable[[], T]) -> T:
    with outcome_on_error():
        return action()
