"""The ``view:`` section of a database-view mapping file: where a member's prescriptions are.

A township HIS that can only expose a read-only database view is described by one YAML file
``mappings/sqlview/<dialect>.yaml``: the ``view:`` section says which view holds the records
and what its key columns mean; the rest of the file is an ordinary record mapping (the rule
engine over :class:`adapters.mapping.record.RecordTree`, column names as source paths) that
makes a MedicationRequest (and its Medication) from one row::

    view:
      name: v_yl_prescription           # or schema.view
      records: MedicationRequest
      patient: {column: SFZH, system: "urn:oid:2.16.156.10011.1.3"}
      prescription: {column: CFH, system: "urn:oid:2.16.156.10011.1.20"}
      newest_first: KFRQ                # optional: the column the rows are ordered by
      dispenses: generic-his-dispense   # optional: the mapping of the member's dispense view
      columns: [CFH, CFMXH, SFZH, ...]  # what is read (nothing else is selected)

Every name here ends up in SQL, so each is checked to be a plain identifier when the file
loads (a name with a quote, a space or a semicolon stops the load, naming the file) and is
quoted exactly as written when the statement is built: write names as the database stores
them (Oracle and SQL Server HIS views usually in upper case; PostgreSQL folds unquoted names
to lower case). Values (the patient's number) only ever travel as bound parameters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.errors import MappingSyntaxError
from adapters.mapping.yamlsrc import LINE, load_yaml, strip_lines

__all__ = ["KeyColumn", "ViewSpec", "load_view"]

#: A SQL identifier we are willing to quote: letters (any script), digits, underscore; not
#: starting with a digit. Deliberately narrower than what databases accept.
_IDENTIFIER = re.compile(r"^[^\W\d]\w{0,62}$")
RECORD_TYPES = ("MedicationRequest", "MedicationDispense")
#: A mapping's name: a file of the mappings folder, never a path.
MAPPING_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


@dataclass(frozen=True, slots=True)
class KeyColumn:
    """A column holding an identifier, and the identifier system its values belong to."""

    column: str
    system: str


@dataclass(frozen=True, slots=True)
class ViewSpec:
    """Where the records of one dialect are and which columns say what."""

    file: str
    schema: str | None
    name: str
    records: str
    patient: KeyColumn
    prescription: KeyColumn
    columns: tuple[str, ...]
    newest_first: str | None = None
    dispenses: str | None = None
    """The mapping (file name) of the same HIS's dispense view, asked together with this one."""

    @property
    def qualified_name(self) -> str:
        """``schema.view`` or ``view``, for messages (never for SQL: that is built quoted)."""
        return f"{self.schema}.{self.name}" if self.schema else self.name


def _fail(file: Path, message: str, node: Any = None) -> MappingSyntaxError:
    line = node.get(LINE) if isinstance(node, dict) else None
    return MappingSyntaxError(message, file=str(file), line=line)


def _identifier(file: Path, text: Any, what: str, node: Any) -> str:
    if not isinstance(text, str) or not _IDENTIFIER.match(text):
        raise _fail(file, f"{what} {text!r} is not a plain SQL identifier (letters, digits, _)", node)
    return text


def _key(file: Path, node: Any, what: str, columns: tuple[str, ...]) -> KeyColumn:
    if not isinstance(node, dict) or "column" not in node or "system" not in node:
        raise _fail(file, f"view.{what} needs 'column' and 'system'", node)
    column = _identifier(file, node["column"], f"view.{what}.column", node)
    if column not in columns:
        raise _fail(file, f"view.{what}.column {column!r} is not among view.columns", node)
    return KeyColumn(column, str(node["system"]))


def _section(file: Path) -> dict[str, Any]:
    """The ``view:`` section, a dialect's (``extends:``) merged over its base's."""
    data = load_yaml(file)
    if not isinstance(data, dict):
        raise _fail(file, "a mapping file is a YAML mapping")
    section: dict[str, Any] = {}
    if "extends" in data:
        section.update(_section((file.parent / str(data["extends"])).resolve()))
    own = data.get("view") or {}
    if not isinstance(own, dict):
        raise _fail(file, "'view' is a mapping", data)
    section.update(own)
    return section


def load_view(file: Path) -> ViewSpec:
    """The checked ``view:`` section of ``file``."""
    raw = _section(file)
    if not raw:
        raise _fail(file, "a database-view mapping needs a 'view:' section")
    plain = strip_lines(raw)
    name = plain.get("name")
    if not isinstance(name, str):
        raise _fail(file, "view.name is missing", raw)
    schema, _, view = name.rpartition(".")
    columns_raw = plain.get("columns")
    if not isinstance(columns_raw, list) or not columns_raw:
        raise _fail(file, "view.columns lists the columns read", raw)
    columns = tuple(_identifier(file, c, "view.columns entry", raw) for c in columns_raw)
    if len(set(columns)) != len(columns):
        raise _fail(file, "view.columns names a column twice", raw)
    records = str(plain.get("records", "MedicationRequest"))
    if records not in RECORD_TYPES:
        raise _fail(file, f"view.records is one of {', '.join(RECORD_TYPES)}, not {records!r}", raw)
    newest = plain.get("newest_first")
    if newest is not None:
        newest = _identifier(file, newest, "view.newest_first", raw)
        if newest not in columns:
            raise _fail(file, f"view.newest_first {newest!r} is not among view.columns", raw)
    dispenses = plain.get("dispenses")
    if dispenses is not None and (not isinstance(dispenses, str) or not MAPPING_NAME.match(dispenses)):
        raise _fail(file, f"view.dispenses {dispenses!r} is not a mapping name (a file of this folder)", raw)
    return ViewSpec(
        file=str(file),
        schema=_identifier(file, schema, "view schema", raw) if schema else None,
        name=_identifier(file, view, "view name", raw),
        records=records,
        patient=_key(file, raw.get("patient"), "patient", columns),
        prescription=_key(file, raw.get("prescription"), "prescription", columns),
        columns=columns,
        newest_first=newest,
        dispenses=dispenses,
    )
