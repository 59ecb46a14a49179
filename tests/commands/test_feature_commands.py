"""Feature sub-commands mount from gateway.commands without edits to the core CLI."""

from __future__ import annotations

from pathlib import Path

import orjson
from typer.testing import CliRunner

from gateway.cli import app
from gateway.commands import OPERATOR, feature_commands, operator_service
from gateway.fhir.json_text import ResourceText
from gateway.principal import Role


def test_every_feature_command_is_mounted() -> None:
    names = {group.name for group in app.registered_groups}
    assert {c.name for c in feature_commands()} <= names


def test_operator_service_writes_through_the_service_as_the_operator(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'op.db'}"
    with operator_service(database) as (service, ctx):
        assert ctx.principal is OPERATOR and OPERATOR.role is Role.ADMIN
        patient = ResourceText.parse(orjson.dumps({"resourceType": "Patient", "name": [{"family": "王"}]}))
        with service.store.transaction() as tx:
            created = service.writer.create(tx, ctx, "Patient", patient)
    with operator_service(database) as (service, ctx):
        assert service.read("Patient", created.stored.res_id, ctx).version == 1


def test_cli_help_lists_the_core_commands() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0 and "serve" in result.output
