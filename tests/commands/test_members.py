"""``yaolian members add | list | check`` through the service (issue 13)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from gateway.cli import app
from gateway.commands import operator_service
from gateway.federation.registry import load_registry
from tests.federation.conftest import TinyFhir, TinyServer, dead_address


def run(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "300"})
    assert result.exit_code == code, result.output
    return result.output


def test_add_list_and_check_members(tmp_path: Path) -> None:
    live = TinyServer(TinyFhir())
    try:
        _add_list_and_check(tmp_path, live)
    finally:
        live.stop()


def _add_list_and_check(tmp_path: Path, live: TinyServer) -> None:
    database = f"sqlite:///{tmp_path / 'm.db'}"
    run(
        "members",
        "add",
        "xy-county",
        "--name",
        "县医院",
        "--tier",
        "county",
        "--insurance-code",
        "H14042300001",
        "--database",
        database,
    )
    run("members", "add", "xy-wq", "--name", "王桥镇卫生院", "--tier", "township", "--parent", "xy-county",
        "--endpoint", live.base, "--kind", "fhir-r4", "--database", database)  # fmt: skip
    key = tmp_path / "k.pem"
    key.write_text("not used until asked", encoding="utf-8")
    run("members", "add", "xy-dp", "--name", "东坡村卫生室", "--tier", "village", "--parent", "xy-wq",
        "--endpoint", dead_address(), "--token-url", "http://127.0.0.1:1/auth/token", "--client-id", "gw",
        "--key", str(key), "--key-id", "k1", "--database", database)  # fmt: skip
    with operator_service(database) as (service, ctx):
        registry = load_registry(service, ctx, endpoints=True)
    village = registry.get("xy-dp")
    assert village is not None and village.parent == "xy-wq" and village.tier == "village"
    endpoint = village.live_endpoint
    assert endpoint is not None and endpoint.kind == "fhir-r5" and endpoint.smart is not None
    assert endpoint.smart.client_id == "gw" and endpoint.smart.key_id == "k1"
    assert registry.get("xy-county").insurance_code == "H14042300001"  # type: ignore[union-attr]
    listed = run("members", "list", "--database", database)
    assert "xy-wq\ttownship\txy-county\t-\t王桥镇卫生院\tfhir-r4 " + live.base in listed
    checked = run("members", "check", "--timeout", "1", "--database", database, code=1)  # one is down
    assert "xy-wq\tup\t" in checked and "FHIR 4.0.1" in checked
    assert "xy-dp\tDOWN\t" in checked
    assert "xy-county\tnot live" in checked
    # re-adding updates in place: same Organization, endpoint replaced by kind
    run("members", "add", "xy-wq", "--name", "王桥镇卫生院（新）", "--tier", "township", "--parent", "xy-county",
        "--endpoint", live.base, "--kind", "fhir-r4", "--database", database)  # fmt: skip
    with operator_service(database) as (service, ctx):
        again = load_registry(service, ctx, endpoints=True)
    assert again.get("xy-wq").name == "王桥镇卫生院（新）" and len(again) == 3  # type: ignore[union-attr]


def test_add_refuses_what_is_not_a_member(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'm.db'}"
    assert "YL-1012" in run("members", "add", "x", "--name", "x", "--tier", "city", "--database", database, code=1)
    assert "YL-1013" in run(
        "members", "add", "x", "--name", "x", "--tier", "village", "--parent", "nobody", "--database", database, code=1
    )
