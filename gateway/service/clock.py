"""Kept for the modules that still import the clock from here: it lives in :mod:`gateway.clock`,
below the store, which stamps bulk loads with it and must not import the service layer."""

from __future__ import annotations

from gateway.clock import now_instant

__all__ = ["now_instant"]
