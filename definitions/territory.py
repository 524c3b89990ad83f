"""The territory file: basins with their GTO, partner organisations and users (YAML)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from definitions.schema import ORGANISATION_TYPES, Ident

UserRole = Literal["caseworker", "gto_lead", "designer", "admin", "direction"]
IMMERSION_PRESCRIBERS = ("france_travail", "mission_locale", "cap_emploi", "departement", "siae")
"""Who may prescribe an immersion (PMSMP) unless the territory file says otherwise."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BasinSpec(_Strict):
    id: Ident
    name: str
    gto_email: str = Field(description="the GTO's shared mailbox, e-mailed on escalations")


class OrganisationSpec(_Strict):
    id: str = Field(pattern=r"^[a-z0-9_\-]+$")
    name: str
    type: str
    basins: list[str] = Field(min_length=1, description="basin ids served, or ['all']")
    email: str
    retention_days: int = Field(
        730, ge=30, le=3650, description="days after a pathway closes before the person's data is anonymised"
    )

    @model_validator(mode="after")
    def _known_type(self) -> OrganisationSpec:
        if self.type not in ORGANISATION_TYPES:
            raise ValueError(f"unknown organisation type {self.type!r}; known: {', '.join(ORGANISATION_TYPES)}")
        return self


class UserSpec(_Strict):
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    name: str
    organisation: str
    role: UserRole
    basin: str | None = Field(None, description="for a gto_lead: the basin whose GTO they lead")


class Territory(_Strict):
    name: str
    direction_email: str = Field(description="the SPIE direction, level-2 escalations")
    immersion_prescribers: list[str] = Field(
        default_factory=lambda: list(IMMERSION_PRESCRIBERS),
        description="organisation types allowed to prescribe an immersion (PMSMP)",
    )
    basins: list[BasinSpec] = Field(min_length=1)
    organisations: list[OrganisationSpec] = Field(min_length=1)
    users: list[UserSpec] = []

    @model_validator(mode="after")
    def _references(self) -> Territory:
        basin_ids = {b.id for b in self.basins}
        org_ids = [o.id for o in self.organisations]
        problems: list[str] = []
        for dup in sorted({o for o in org_ids if org_ids.count(o) > 1}):
            problems.append(f"organisation '{dup}' is declared twice")
        for org in self.organisations:
            for basin in org.basins:
                if basin != "all" and basin not in basin_ids:
                    problems.append(f"organisation '{org.id}': unknown basin '{basin}'")
        emails = [u.email.lower() for u in self.users]
        for dup in sorted({e for e in emails if emails.count(e) > 1}):
            problems.append(f"user '{dup}' is declared twice")
        for user in self.users:
            if user.organisation not in org_ids:
                problems.append(f"user '{user.email}': unknown organisation '{user.organisation}'")
            if user.role == "gto_lead" and user.basin not in basin_ids:
                problems.append(f"user '{user.email}': a gto_lead needs a known basin (got {user.basin!r})")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class InvalidTerritory(Exception):
    pass


def load_territory(path: str | Path) -> Territory:
    """Read a territory YAML file; raise InvalidTerritory with one line per problem."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InvalidTerritory(f"{path}: cannot read: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise InvalidTerritory(f"{path}: invalid YAML: {error}") from None
    try:
        return Territory.model_validate(raw)
    except ValidationError as error:
        lines = [
            f"{path}: {'.'.join(str(p) for p in e['loc']) or 'territory'}: {e['msg'].removeprefix('Value error, ')}"
            for e in error.errors()
        ]
        raise InvalidTerritory("\n".join(lines)) from None


DEMO_TERRITORY = Path(__file__).parent / "territory" / "haute-savoie.yaml"
CATALOG_DIR = Path(__file__).parent / "catalog"
DEMO_DIR = Path(__file__).parent / "demo"
"""Definitions loaded only by the dev stack's demo (very short delays)."""
