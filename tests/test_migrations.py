"""The read model's Alembic revisions: at head they give exactly the SQLModel tables; the baseline
is exactly what release 1.0.0 created; a release 1.0.0 database with data upgrades in place, on
SQLite and on PostgreSQL. Release 1.0.0's side runs its own code (tests/releases.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from store import models  # noqa: F401  (registers the tables)
from store.db import make_engine
from store.migrations import (
    BASELINE,
    BASELINE_TABLES,
    SchemaError,
    alembic_config,
    head_revision,
    require_head,
    schema_status,
    upgrade_to_head,
)
from tests.conftest import fresh_postgres_database
from tests.releases import run_release_python

pytestmark = pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])


@pytest.fixture
def empty_url(dialect: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of the dialect under test."""
    if dialect == "sqlite":
        yield f"sqlite:///{tmp_path / 'read-model.db'}"
    else:
        with fresh_postgres_database("parcours_migrations") as url:
            yield url


@pytest.fixture
def other_empty_url(dialect: str, tmp_path: Path) -> Iterator[str]:
    if dialect == "sqlite":
        yield f"sqlite:///{tmp_path / 'other.db'}"
    else:
        with fresh_postgres_database("parcours_migrations") as url:
            yield url


def differences(engine: Engine, metadata: sa.MetaData) -> list[Any]:
    """What `alembic revision --autogenerate` would write to bring the database to `metadata`."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": True})
        return list(compare_metadata(context, metadata))


def describe_schema(engine: Engine) -> dict[str, Any]:
    """Every table of the database as the dialect reflects it (types, nullability, defaults, keys,
    indexes), without Alembic's version table; on SQLite also the CREATE statements themselves."""
    inspector = sa.inspect(engine)
    tables: dict[str, Any] = {}
    for name in sorted(set(inspector.get_table_names()) - {"alembic_version"}):
        tables[name] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], str(c.get("default")), c.get("autoincrement"))
                for c in inspector.get_columns(name)
            ],
            "primary_key": inspector.get_pk_constraint(name)["constrained_columns"],
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in inspector.get_indexes(name)
            ),
            "unique": sorted(tuple(u["column_names"]) for u in inspector.get_unique_constraints(name)),
            "foreign_keys": sorted(
                (tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
                for f in inspector.get_foreign_keys(name)
            ),
        }
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:
            tables["sqlite_master"] = sorted(
                tuple(row)
                for row in connection.exec_driver_sql(
                    "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE tbl_name != 'alembic_version'"
                )
            )
    return tables


# --- (a) the revisions at head are the models --------------------------------------------


def test_head_matches_the_models(empty_url: str) -> None:
    engine = make_engine(empty_url)
    try:
        upgrade = upgrade_to_head(engine)
        assert (upgrade.before, upgrade.after, upgrade.stamped) == (None, head_revision(), False)
        assert set(sa.inspect(engine).get_table_names()) >= {t.name for t in SQLModel.metadata.sorted_tables}
        missing = differences(engine, SQLModel.metadata)
        assert missing == [], (
            "store/models.py and the Alembic revisions differ; write a revision in store/migrations/versions "
            f"(see README, Upgrading Parcours): {missing}"
        )
        # The comparison does see a model column that no revision created.
        extended = sa.MetaData()
        for table in SQLModel.metadata.sorted_tables:
            table.to_metadata(extended)
        extended.tables["person"].append_column(sa.Column("nickname", sa.String(), nullable=True))
        assert [d[0] for d in differences(engine, extended)] == ["add_column"]
        # Idempotent, and the check other processes run passes.
        again = upgrade_to_head(engine)
        assert (again.before, again.after) == (head_revision(), head_revision())
        require_head(engine)
    finally:
        engine.dispose()


def test_an_outdated_or_partial_database_is_refused(empty_url: str) -> None:
    engine = make_engine(empty_url)
    try:
        status = schema_status(engine)
        assert (status.current, status.legacy, status.up_to_date) == (None, False, False)
        with pytest.raises(SchemaError, match=r"vide \(aucune révision\).*lancez `parcours setup`"):
            require_head(engine)
        with engine.begin() as connection:  # one table of release 1.0.0 alone: not a database to stamp
            connection.exec_driver_sql("CREATE TABLE pathway (id VARCHAR PRIMARY KEY)")
        with pytest.raises(SchemaError, match="une partie seulement"):
            upgrade_to_head(engine)
    finally:
        engine.dispose()


# --- (b) release 1.0.0's database ----------------------------------------------------------

# Run by release 1.0.0's own code: its create_tables, the demo territory, the catalog, and one row
# or more in every table a running Parcours writes. Prints what it wrote, as the release reads it.
V1_DATABASE = r"""
import json, sys
from datetime import date, datetime, timedelta, timezone

import store
from sqlmodel import SQLModel, select, func
from definitions.loader import load_file
from definitions.territory import CATALOG_DIR, DEMO_TERRITORY, load_territory
from store import models, queries as q
from store.db import create_tables, make_engine, session_scope

url = sys.argv[1]
engine = make_engine(url)
create_tables(engine)
q.load_territory(engine, territory=load_territory(DEMO_TERRITORY))
for path in sorted(CATALOG_DIR.glob("*.yaml")):
    q.publish_definition(engine, definition=load_file(path), source=path.read_text(), published_by="v1")
now = datetime(2026, 11, 27, 9, 30, tzinfo=timezone.utc)
with session_scope(engine) as s:
    s.add(models.Person(id="person-1", first_name="Nadia", last_name="Fictive", birth_date=date(1988, 4, 12),
                        nir="2 88 04 74 010 001 42", consent_at=now, consent_by="u-camille", created_at=now))
    s.add(models.Pathway(id="pathway-1", definition_id="rsa_socio_pro", definition_version=1, basin_id="annecien",
                         referent_org="departement74", person_id="person-1", status="running",
                         current_steps=["diagnostic"], sla="on_time", started_at=now, updated_at=now,
                         last_progress_at=now, revision=3))
    s.add(models.FollowUpMember(pathway_id="pathway-1", organisation_id="departement74", since=now))
    s.add(models.PathwayStep(id="pathway-1:orientation:0", pathway_id="pathway-1", step_id="orientation",
                             title="Décider l'orientation", kind="task", track="main", status="done",
                             opened_at=now, closed_at=now, outcome="orientee"))
    s.add(models.Submission(id="submission-1", pathway_id="pathway-1", task_id="task-1",
                            data={"type_orientation": "socio_professionnelle", "motif": "Projet « clair »"},
                            submitted_by="u-camille", created_at=now))
    s.add(models.Task(id="task-1", pathway_id="pathway-1", step_id="orientation", title="Décider l'orientation",
                      definition_id="rsa_socio_pro", basin_id="annecien", organisation_id="departement74",
                      status="done", due_at=now + timedelta(days=42), opened_at=now, closed_at=now,
                      outcome="orientee", submission_id="submission-1"))
    s.add(models.Task(id="task-2", pathway_id="pathway-1", step_id="diagnostic", title="Diagnostic",
                      definition_id="rsa_socio_pro", basin_id="annecien", organisation_id="departement74",
                      status="open", sla="late", due_at=now - timedelta(days=1), opened_at=now, escalation_level=1))
    s.add(models.Note(id="note-1", pathway_id="pathway-1", author_user_id="u-lea", text="Relancer le référent.",
                      created_at=now))
    s.add(models.Escalation(id="escalation-1", pathway_id="pathway-1", task_id="task-2", step_id="diagnostic",
                            basin_id="annecien", level=1, to="gto", status="open", opened_at=now, note_id="note-1"))
    s.add(models.Notification(key="task-2:0:escalated:1", kind="escalated", pathway_id="pathway-1",
                              task_id="task-2", recipients=["gto.annecien@example.org"], subject="Escalade",
                              body="Bonjour,\nla tâche est en retard.", status="sent", attempts=1,
                              created_at=now, sent_at=now))
    s.add(models.AuditEvent(id="audit-1", at=now, pathway_id="pathway-1", actor_user_id="u-camille",
                            actor_org_id="departement74", action="task.completed", task_id="task-1",
                            detail={"outcome": "orientee", "fields": ["type_orientation"]}))
    s.add(models.CapturedEmail(received_at=now, mail_from="parcours@example.org",
                               recipients=["gto.annecien@example.org"], subject="Escalade", body="…"))
    s.add(models.LoginToken(token_hash="hash-1", user_id="u-camille", created_at=now,
                            expires_at=now + timedelta(minutes=15)))

with session_scope(engine) as s:
    counts = {t.name: s.exec(select(func.count()).select_from(t)).one() for t in SQLModel.metadata.sorted_tables}
    person = s.get(models.Person, "person-1")
    pathway = s.get(models.Pathway, "pathway-1")
    task = s.get(models.Task, "task-2")
    values = {
        "person": [person.first_name, person.last_name, person.birth_date.isoformat(), person.nir],
        "pathway": [pathway.status, pathway.current_steps, pathway.revision, pathway.sla],
        "task_due": task.due_at.replace(tzinfo=None).isoformat(timespec="seconds"),
        "submission": s.get(models.Submission, "submission-1").data,
        "audit": s.get(models.AuditEvent, "audit-1").detail,
        "note": s.get(models.Note, "note-1").text,
        "escalation": s.get(models.Escalation, "escalation-1").to,
        "definitions": sorted([d.id, d.version] for d in s.exec(select(models.DefinitionVersion))),
    }
engine.dispose()
print(json.dumps({"store": store.__file__, "counts": counts, "values": values}))
"""


def make_v1_database(checkout: Path, url: str) -> dict[str, Any]:
    """The read model release 1.0.0 made, with data; what it wrote, as it reads it."""
    written: dict[str, Any] = json.loads(run_release_python(checkout, V1_DATABASE, url).stdout.strip().splitlines()[-1])
    assert Path(written["store"]).resolve().is_relative_to(checkout.resolve()), written["store"]
    return written


def read_back(engine: Engine) -> dict[str, Any]:
    """The same figures as V1_DATABASE prints, read by the current code."""
    from sqlmodel import Session, func, select

    with Session(engine) as s:
        counts = {
            t.name: s.exec(select(func.count()).select_from(t)).one()
            for t in SQLModel.metadata.sorted_tables
            if t.name in BASELINE_TABLES
        }
        person = s.get(models.Person, "person-1")
        pathway = s.get(models.Pathway, "pathway-1")
        task = s.get(models.Task, "task-2")
        submission = s.get(models.Submission, "submission-1")
        audit = s.get(models.AuditEvent, "audit-1")
        note = s.get(models.Note, "note-1")
        escalation = s.get(models.Escalation, "escalation-1")
        assert person and pathway and task and submission and audit and note and escalation
        assert person.birth_date is not None and task.due_at is not None
        values = {
            "person": [person.first_name, person.last_name, person.birth_date.isoformat(), person.nir],
            "pathway": [pathway.status, pathway.current_steps, pathway.revision, pathway.sla],
            "task_due": task.due_at.replace(tzinfo=None).isoformat(timespec="seconds"),
            "submission": submission.data,
            "audit": audit.detail,
            "note": note.text,
            "escalation": escalation.to,
            "definitions": sorted([d.id, d.version] for d in s.exec(select(models.DefinitionVersion))),
        }
    return {"counts": counts, "values": values}


def test_baseline_is_the_v1_0_0_schema(v1_0_0_checkout: Path, empty_url: str, other_empty_url: str) -> None:
    make_v1_database(v1_0_0_checkout, empty_url)
    released = make_engine(empty_url)
    baseline = make_engine(other_empty_url)
    try:
        with baseline.begin() as connection:
            command.upgrade(alembic_config(connection), BASELINE)
        assert set(describe_schema(released)) >= BASELINE_TABLES
        assert describe_schema(baseline) == describe_schema(released)
    finally:
        released.dispose()
        baseline.dispose()


def test_upgrade_a_v1_0_0_database_with_data(v1_0_0_checkout: Path, empty_url: str) -> None:
    written = make_v1_database(v1_0_0_checkout, empty_url)
    assert written["counts"]["pathway"] == 1 and written["counts"]["organisation"] > 0
    engine = make_engine(empty_url)
    try:
        status = schema_status(engine)
        assert (status.current, status.legacy) == (None, True)
        with pytest.raises(SchemaError, match="créée par Parcours 1.0.*lancez `parcours setup`"):
            require_head(engine)

        upgrade = upgrade_to_head(engine)
        assert (upgrade.before, upgrade.after, upgrade.stamped) == (BASELINE, head_revision(), True)
        assert "Parcours 1.0 reconnue" in upgrade.describe()
        require_head(engine)
        assert differences(engine, SQLModel.metadata) == []
        assert read_back(engine) == {"counts": written["counts"], "values": written["values"]}

        # The current code writes into it, and upgrading again changes nothing.
        from store.db import session_scope

        with session_scope(engine) as session:
            session.add(models.Note(id="note-2", pathway_id="pathway-1", author_user_id="u-lea", text="Après."))
        assert upgrade_to_head(engine).before == head_revision()
        assert read_back(engine)["counts"]["note"] == written["counts"]["note"] + 1
    finally:
        engine.dispose()
