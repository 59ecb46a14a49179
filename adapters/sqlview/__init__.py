"""Database-view adapter: a member HIS's read-only view of its prescriptions, asked live."""

from adapters.sqlview.adapter import VOLATILE_PATHS, SqlViewAdapter, row_record
from adapters.sqlview.view import KeyColumn, ViewSpec, load_view

__all__ = ["VOLATILE_PATHS", "KeyColumn", "SqlViewAdapter", "ViewSpec", "load_view", "row_record"]
