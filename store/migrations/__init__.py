"""The read model's schema, changed only through Alembic revisions (`versions/`).

`upgrade_to_head` is what `parcours setup` and `parcours dev` run; every other process calls
`require_head` and refuses an outdated database instead of creating or altering tables itself."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

HERE = Path(__file__).resolve().parent

BASELINE = "0001"
"""The revision equal to the schema release 1.0.0 made with `create_all` (no version table)."""

BASELINE_TABLES = frozenset(
    {
        "audit_event",
        "basin",
        "captured_email",
        "definition",
        "escalation",
        "follow_up_member",
        "login_token",
        "note",
        "notification",
        "organisation",
        "pathway",
        "pathway_step",
        "person",
        "setting",
        "submission",
        "task",
        "user",
    }
)

# Two processes upgrading one PostgreSQL database at once wait for each other (transaction lock).
_PG_LOCK_KEY = 0x70617263  # "parc"


class SchemaError(RuntimeError):
    """The read model cannot be used or migrated as it is; the message says what to do (French)."""


@dataclass(frozen=True)
class SchemaStatus:
    """Where a database stands: its revision (None: no version table), the code's head revision,
    and whether it holds release 1.0.0's tables without a version table."""

    current: str | None
    head: str
    legacy: bool = False

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head

    def refusal(self) -> str:
        """Why a process other than `parcours setup` must not run on this database (French)."""
        if self.legacy:
            where = f"créée par Parcours 1.0 sans numéro de révision (équivaut à {BASELINE})"
        elif self.current is None:
            where = "vide (aucune révision)"
        else:
            where = f"à la révision {self.current}"
        action = "la créer" if self.current is None and not self.legacy else "la migrer (les données sont conservées)"
        return f"la base de lecture est {where}, ce code attend la révision {self.head} : lancez `parcours setup` pour {action}."


@dataclass(frozen=True)
class Upgrade:
    """What `upgrade_to_head` did: from which revision (None: empty database) to which."""

    before: str | None
    after: str
    stamped: bool = False

    def describe(self) -> str:
        """One French line for the operator."""
        if self.before is None:
            return f"Base de lecture : créée à la révision {self.after}"
        legacy = f"base Parcours 1.0 reconnue et marquée révision {self.before}, " if self.stamped else ""
        if self.before == self.after:
            return f"Base de lecture : {legacy}révision {self.after}, à jour"
        return f"Base de lecture : {legacy}migrée de la révision {self.before} à la révision {self.after}"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration built in code (no alembic.ini needed), optionally bound to a connection."""
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no Alembic revision in store/migrations/versions"
    return head


def _status(connection: Connection, head: str) -> SchemaStatus:
    current = MigrationContext.configure(connection).get_current_revision()
    if current is not None:
        return SchemaStatus(current=current, head=head)
    present = BASELINE_TABLES & set(inspect(connection).get_table_names())
    if present == BASELINE_TABLES:
        return SchemaStatus(current=None, head=head, legacy=True)
    if present:
        raise SchemaError(
            "la base de lecture contient une partie seulement des tables de Parcours 1.0 "
            f"({', '.join(sorted(present))}) et aucune révision : vérifiez PARCOURS_DATABASE_URL "
            "ou restaurez une sauvegarde avant `parcours setup`."
        )
    return SchemaStatus(current=None, head=head)


def schema_status(engine: Engine) -> SchemaStatus:
    """The database's revision against the code's head, without changing anything."""
    head = head_revision()
    with engine.connect() as connection:
        return _status(connection, head)


def require_head(engine: Engine) -> None:
    """Refuse (SchemaError, French) a database that is not at the code's head revision."""
    status = schema_status(engine)
    if not status.up_to_date:
        raise SchemaError(status.refusal())


def upgrade_to_head(engine: Engine) -> Upgrade:
    """Bring the database to head: every revision on an empty one; release 1.0.0's tables are
    first stamped `0001`; a database already at head is left as it is (idempotent)."""
    head = head_revision()
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        status = _status(connection, head)
        before, stamped = status.current, False
        if status.legacy:
            command.stamp(alembic_config(connection), BASELINE)
            before, stamped = BASELINE, True
        if before != head:
            command.upgrade(alembic_config(connection), "head")
    return Upgrade(before=before, after=head, stamped=stamped)
