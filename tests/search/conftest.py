"""The search dataset (search_dataset.py), written once per test module and store backend."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parent))
from search_dataset import Dataset, load


@pytest.fixture(scope="module")
def dataset(module_client: TestClient) -> Dataset:
    return load(module_client)
