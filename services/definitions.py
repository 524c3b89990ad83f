"""Definitions, written once for the designer pages, the JSON API and the CLI: validate a text
(errors in French with their step, field and line), publish a version (`published_by` is always
the publisher's user id), set the status and basins of a version, read the versions, and make the
trial copies designers run with short delays."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.engine import Engine
from sqlmodel import select

from definitions.loader import DefinitionError, InvalidDefinition, content_hash, json_schema, parse_data, parse_text
from definitions.schema import TRIAL_SUFFIX, Definition
from services.administration import actor_for
from services.errors import ServiceError
from services.pathways import PathwayService
from store import models
from store import queries as q
from store.db import session_scope
from workflows.contract import Actor

DESIGNER_ROLES = ("designer", "admin")
STATUSES = {"experimental": "Expérimentale", "active": "Active", "retired": "Retirée"}
SECONDS_PER_WORKING_DAY = 10
"""Trial runs: one working day lasts this many seconds."""


# --- Who publishes -------------------------------------------------------------------------------


def require_designer(actor: Actor) -> None:
    """Only designers and administrators write definitions (pages, API and CLI alike)."""
    if actor.role not in DESIGNER_ROLES:
        raise ServiceError("Réservé aux concepteur·rices de parcours et aux administrateur·rices.", "forbidden")


def publisher(engine: Engine, email: str) -> Actor:
    """The CLI's `--by EMAIL`: a known, active user with the designer or admin role (French refusal
    otherwise)."""
    return actor_for(engine, email=email, command="definitions")


# --- Validating ---------------------------------------------------------------------------------


def schema() -> dict[str, Any]:
    """The JSON Schema of the definition language (`parcours definitions schema`)."""
    return json_schema()


@dataclass
class Checked:
    """A text validated: its definition, or its errors (each in French, located)."""

    definition: Definition | None
    errors: list[DefinitionError] = field(default_factory=list)
    latest: models.DefinitionVersion | None = None
    text: str = ""

    @property
    def unchanged(self) -> bool:
        """Publishing it would create nothing: the latest version has the same content."""
        return (
            self.definition is not None
            and self.latest is not None
            and self.latest.content_hash == content_hash(self.definition)
        )


def parse(text: str, *, source: str = "définition", is_json: bool = False) -> Definition:
    """Validate a YAML (or JSON) text; raise InvalidDefinition with every error."""
    if not text.strip():
        message = "la définition est vide : collez le texte YAML ou choisissez un fichier"
        raise InvalidDefinition([DefinitionError(source, None, None, message)])
    if not is_json:
        return parse_text(text, source=source)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        message = f"JSON invalide ligne {error.lineno}, colonne {error.colno} : {error.msg}"
        raise InvalidDefinition([DefinitionError(source, None, None, message, error.lineno)]) from None
    return parse_data(data, source=source)


def check(engine: Engine | None, text: str, *, source: str = "définition", is_json: bool = False) -> Checked:
    """Validate a text and say which version publishing it would make (needs the read model)."""
    try:
        definition = parse(text, source=source, is_json=is_json)
    except InvalidDefinition as invalid:
        return Checked(None, invalid.errors, text=text)
    latest = latest_version(engine, definition.id) if engine is not None else None
    return Checked(definition, [], latest, text)


def check_file(engine: Engine | None, path: Path) -> Checked:
    """Validate a YAML file (the CLI): an unreadable file is one error too."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        return Checked(None, [DefinitionError(str(path), None, None, f"lecture impossible : {error.strerror}")])
    except UnicodeDecodeError:
        message = "le fichier n'est pas un texte UTF-8 : enregistrez-le en UTF-8"
        return Checked(None, [DefinitionError(str(path), None, None, message)])
    return check(engine, text, source=str(path))


# --- Publishing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Published:
    definition: Definition
    version: int
    created: bool


def publish(
    engine: Engine, actor: Actor | None, text: str, *, source: str = "définition", is_json: bool = False
) -> Published:
    """Validate and publish: version n+1, or the latest version if its content is the same.
    `actor` None is the system operator (CLI without `--by`, the demo loader)."""
    if actor is not None:
        require_designer(actor)
    definition = parse(text, source=source, is_json=is_json)
    return publish_definition(engine, actor, definition, text)


def publish_definition(engine: Engine, actor: Actor | None, definition: Definition, text: str) -> Published:
    """Publish an already validated definition, audited, with the publisher's user id."""
    version, created = q.publish_definition(
        engine, definition=definition, source=text, published_by=actor.user_id if actor else None
    )
    if created and actor is not None:
        _audit(engine, actor, "definition_published", {"definition": definition.id, "version": version})
    return Published(definition, version, created)


def _audit(engine: Engine, actor: Actor, action: str, detail: dict[str, Any], pathway_id: str | None = None) -> None:
    q.record_access(
        engine,
        actor_user_id=actor.user_id,
        actor_org_id=actor.organisation_id,
        action=action,
        pathway_id=pathway_id,
        detail=detail,
    )


# --- Reading versions -----------------------------------------------------------------------------


def all_versions(engine: Engine) -> dict[str, list[models.DefinitionVersion]]:
    """Every version of every definition, by id, oldest first."""
    grouped: dict[str, list[models.DefinitionVersion]] = {}
    for row in q.list_definitions(engine):
        grouped.setdefault(row.id, []).append(row)
    return grouped


def latest_versions(engine: Engine) -> list[models.DefinitionVersion]:
    """The latest version of every definition."""
    return [rows[-1] for rows in all_versions(engine).values()]


def latest_version(engine: Engine, definition_id: str) -> models.DefinitionVersion | None:
    rows = all_versions(engine).get(definition_id)
    return rows[-1] if rows else None


def version_row(engine: Engine, definition_id: str, version: int) -> models.DefinitionVersion:
    with session_scope(engine) as session:
        row = session.get(models.DefinitionVersion, (definition_id, version))
    if row is None:
        raise ServiceError(f"Version {version} de la définition « {definition_id} » introuvable.", "not_found")
    return row


# --- Status and basins of a version -------------------------------------------------------------


def set_status(
    engine: Engine, actor: Actor, definition_id: str, version: int, *, status: str, basins: list[str]
) -> list[str]:
    """Set the status and basins of a version (new runs start from its updated body); returns the
    basins kept. Refusals carry `fields` (status, basins)."""
    require_designer(actor)
    return _apply_status(engine, actor, definition_id, version, status=status, basins=basins)


def spread(
    engine: Engine, actor: Actor, definition_id: str, version: int, *, more_basins: list[str], promote: bool
) -> list[str]:
    """Spreading what works (essaimage): the SPIE direction, from an evaluated experiment, opens a
    version to more basins and/or promotes it to active, in one audited action. Pathways already
    running keep their version and what it said."""
    if actor.role not in ("direction", "admin"):
        raise ServiceError("L'essaimage d'un parcours est décidé par la direction du SPIE.", "forbidden")
    row = version_row(engine, definition_id, version)
    if not more_basins and not promote:
        raise ServiceError(
            "Choisissez des bassins à ouvrir ou le passage en parcours actif.",
            "invalid",
            {"basins": "Rien à essaimer."},
        )
    basins = ["all"] if "all" in row.basins or "all" in more_basins else sorted({*row.basins, *more_basins})
    status = "active" if promote else row.status
    return _apply_status(
        engine, actor, definition_id, version, status=status, basins=basins, action="definition_spread"
    )


def _apply_status(
    engine: Engine,
    actor: Actor,
    definition_id: str,
    version: int,
    *,
    status: str,
    basins: list[str],
    action: str = "definition_status_changed",
) -> list[str]:
    version_row(engine, definition_id, version)
    with session_scope(engine) as session:
        known = set(session.exec(select(models.Basin.id)))
    chosen = ["all"] if "all" in basins else [b for b in basins if b]
    errors: dict[str, str] = {}
    if status not in STATUSES:
        errors["status"] = "Choisissez un statut : expérimentale, active ou retirée."
    if not chosen:
        errors["basins"] = "Cochez au moins un bassin (ou « tous les bassins »)."
    elif unknown := [b for b in chosen if b != "all" and b not in known]:
        errors["basins"] = f"Bassin(s) inconnu(s) : {', '.join(unknown)}."
    if errors:
        raise ServiceError(" ".join(errors.values()), "invalid", errors)
    with session_scope(engine) as session:
        stored = session.get(models.DefinitionVersion, (definition_id, version))
        assert stored is not None
        previous = {"status": stored.status, "basins": list(stored.basins)}
        stored.status, stored.basins = status, list(chosen)
        body = copy.deepcopy(stored.body)
        body["status"], body["basins"] = status, list(chosen)
        stored.body = body  # new runs start from this body
        session.add(stored)
    _audit(
        engine,
        actor,
        action,
        {
            "definition": definition_id,
            "version": version,
            "status": status,
            "basins": chosen,
            "previous_status": previous["status"],
            "previous_basins": previous["basins"],
        },
    )
    return chosen


# --- Trial copies with short delays -------------------------------------------------------------


def _compress(node: Any) -> Any:
    """Every delay shortened: a working day lasts SECONDS_PER_WORKING_DAY seconds, an exact delay
    of an hour or more is scaled the same way (a day of 24 h lasts as long as a working day)."""
    if isinstance(node, dict):
        if set(node) == {"working_days", "seconds"}:
            if node["working_days"] is not None:
                return f"PT{int(node['working_days']) * SECONDS_PER_WORKING_DAY}S"
            seconds = float(node["seconds"])
            if seconds >= 3600:
                seconds = max(1.0, round(seconds / 86400 * SECONDS_PER_WORKING_DAY, 1))
            return f"PT{seconds:g}S"
        return {k: _compress(v) for k, v in node.items() if v is not None}
    if isinstance(node, list):
        return [_compress(v) for v in node]
    return node


def trial_copy(row: models.DefinitionVersion) -> tuple[Definition, str]:
    """The definition with short durations, under the id `<id>_essai`, experimental."""
    body = _compress(copy.deepcopy(row.body))
    body.pop("version", None)
    if not row.id.endswith(TRIAL_SUFFIX):
        body["id"] = row.id + TRIAL_SUFFIX
        body["title"] = f"{row.title} (essai)"
    body["status"] = "experimental"
    body["description"] = (
        f"Copie d'essai de {row.id} v{row.version} : 1 jour ouvré = {SECONDS_PER_WORKING_DAY} s. "
        + (body.get("description") or "")
    ).strip()
    source = (
        f"# Copie d'essai de {row.id} version {row.version}, durées raccourcies "
        f"(1 jour ouvré = {SECONDS_PER_WORKING_DAY} secondes).\n"
        + yaml.safe_dump(body, allow_unicode=True, sort_keys=False, width=110)
    )
    return parse_text(source, source=f"{body['id']}.yaml"), source


@dataclass(frozen=True)
class Trial:
    pathway_id: str
    definition: Definition
    version: int


async def start_trial(
    engine: Engine, service: PathwayService, actor: Actor, definition_id: str, version: int, *, basin: str
) -> Trial:
    """Publish the trial copy of a version and start it for a fictitious person in `basin`."""
    require_designer(actor)
    row = version_row(engine, definition_id, version)
    if q.get_basin(engine, basin_id=basin) is None:
        raise ServiceError("Choisissez le bassin où lancer l'essai.", "invalid", {"basin": "bassin inconnu"})
    referent = q.organisation_serving(engine, org_type="departement", basin_id=basin)
    if referent is None:
        raise ServiceError(
            "Aucune structure de type département ne dessert ce bassin : l'essai ne peut pas démarrer.", "conflict"
        )
    try:
        trial, source = trial_copy(row)
    except InvalidDefinition as invalid:
        raise ServiceError(
            "La copie d'essai est invalide : " + " ; ".join(str(e) for e in invalid.errors), "invalid"
        ) from None
    published = publish_definition(engine, actor, trial, source)
    try:
        # The one way to start a trial copy (start_pathway refuses them for real persons).
        pathway_id = await service.start_trial(
            definition_id=trial.id, basin_id=basin, referent_org=referent.id, actor=actor
        )
    except ServiceError as error:
        raise ServiceError(f"L'essai n'a pas pu démarrer : {error.message}", error.kind) from None
    _audit(
        engine,
        actor,
        "definition_trial_started",
        {"definition": trial.id, "version": published.version, "from": f"{definition_id} v{version}"},
        pathway_id,
    )
    return Trial(pathway_id, trial, published.version)
