"""The fast structural pre-check never passes what the fhir.resources model rejects."""

from __future__ import annotations

import copy
import json
import random
from importlib import resources

import pytest
from pydantic import ValidationError

from gateway.validation._fastpath import certainly_valid
from gateway.validation._structure import model_class

EXAMPLES = resources.files("profiles").joinpath("examples")
FILES = sorted(e.name for e in EXAMPLES.iterdir() if e.name.endswith(".json") and e.name != "index.json")
REPLACEMENTS = [None, "", "x", 1, -1, 1.5, True, [], {}, ["x"], [{}], {"x": 1}, "2025-13-01", "not a code"]


def _model_accepts(resource: dict) -> bool:
    try:
        model_class(resource["resourceType"]).model_validate(resource)
    except (ValidationError, ValueError):
        return False
    return True


def _paths(node: object, prefix: tuple = ()) -> list[tuple]:
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            out.append((*prefix, k))
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.append((*prefix, i))
            out += _paths(v, (*prefix, i))
    return out


def _mutations(resource: dict, rng: random.Random, n: int) -> list[dict]:
    out = []
    paths = [p for p in _paths(resource) if p != ("resourceType",)]
    for _ in range(n):
        path = rng.choice(paths)
        mutated = copy.deepcopy(resource)
        node = mutated
        for step in path[:-1]:
            node = node[step]
        if rng.random() < 0.3 and isinstance(node, dict):
            del node[path[-1]]
        else:
            node[path[-1]] = copy.deepcopy(rng.choice(REPLACEMENTS))
        out.append(mutated)
    return out


@pytest.mark.parametrize("name", FILES)
def test_fast_path_is_sound(name: str) -> None:
    resource = json.loads(EXAMPLES.joinpath(name).read_text("utf-8"))
    rng = random.Random(name)
    cls = model_class(resource["resourceType"])
    for candidate in [resource, *_mutations(resource, rng, 60)]:
        if certainly_valid(cls, candidate):
            assert _model_accepts(candidate), candidate


@pytest.mark.parametrize("name", [n for n in FILES if ".valid." in n])
def test_fast_path_recognises_valid_examples(name: str) -> None:
    resource = json.loads(EXAMPLES.joinpath(name).read_text("utf-8"))
    assert certainly_valid(model_class(resource["resourceType"]), resource)
