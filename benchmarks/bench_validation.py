"""Validations per second of a typical alliance prescription with its Medication, one core.

    python benchmarks/bench_validation.py [--seconds 3]

Prints three figures: the fhir.resources model alone (the cost floor of the structural step),
``validate()`` as the REST layer calls it on writes (structure + alliance profile), and
``validate(..., structure=False)`` (profile rules only).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from importlib import resources

from gateway.validation import default_profiles, validate
from gateway.validation._structure import model_class


def _example(name: str) -> dict:
    return json.loads(resources.files("profiles").joinpath("examples", name).read_text("utf-8"))


def _rate(label: str, fn: Callable[[], object], seconds: float) -> float:
    fn()  # warm caches (compiled profiles, fhirpath expressions)
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(50):
            fn()
        n += 50
    rate = n / elapsed
    print(f"{label:<58} {rate:8.0f} prescription+drug pairs/s ({1e6 / rate:6.0f} us/pair)")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    rx = _example("yl-prescription.valid.long-term-extended.json")
    med = _example("yl-drug.valid.metformin.json")
    rx_profiles = default_profiles("MedicationRequest")
    med_profiles = default_profiles("Medication")
    assert not validate(rx, rx_profiles) and not validate(med, med_profiles)
    rx_model, med_model = model_class("MedicationRequest"), model_class("Medication")

    def models_only() -> None:
        rx_model.model_validate(rx)
        med_model.model_validate(med)

    def full() -> None:
        validate(rx, rx_profiles)
        validate(med, med_profiles)

    def profiles_only() -> None:
        validate(rx, rx_profiles, structure=False)
        validate(med, med_profiles, structure=False)

    _rate("fhir.resources model_validate only", models_only, args.seconds)
    _rate("validate(): structure + profile (write path)", full, args.seconds)
    _rate("validate(structure=False): profile rules only", profiles_only, args.seconds)


if __name__ == "__main__":
    main()
