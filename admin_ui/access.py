"""The signed-in user of the web application; the need-to-know rules are in services.reading."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from services.reading import (
    NIR_READERS,
    STUCK_AFTER_WORKING_DAYS,
    access_reason,
    is_stuck,
    mask_nir,
    person_view,
    record_action,
    record_view,
    record_views,
    stuck_since_cutoff,
)
from store import models
from store.db import session_scope
from workflows.contract import Actor


@dataclass(frozen=True)
class CurrentUser:
    id: str
    email: str
    name: str
    role: str
    organisation_id: str
    organisation_name: str
    organisation_type: str
    basin_id: str | None

    @property
    def actor(self) -> Actor:
        return Actor(user_id=self.id, organisation_id=self.organisation_id, role=self.role, basin_id=self.basin_id)

    @property
    def role_label(self) -> str:
        return {
            "caseworker": "Conseiller·ère",
            "gto_lead": "Animateur·rice GTO",
            "designer": "Concepteur·rice de parcours",
            "admin": "Administrateur·rice",
        }.get(self.role, self.role)


def load_user(engine: Engine, user_id: str) -> CurrentUser | None:
    with session_scope(engine) as session:
        user = session.get(models.User, user_id)
        if user is None or not user.active:
            return None
        org = session.get(models.Organisation, user.organisation_id)
        return CurrentUser(
            id=user.id,
            email=user.email,
            name=user.name,
            role=user.role,
            organisation_id=user.organisation_id,
            organisation_name=org.name if org else user.organisation_id,
            organisation_type=org.type if org else "",
            basin_id=user.basin_id,
        )


# The need-to-know rules live in services.reading (one place for pages, API and CLI).
__all__ = [
    "NIR_READERS",
    "STUCK_AFTER_WORKING_DAYS",
    "CurrentUser",
    "access_reason",
    "is_stuck",
    "load_user",
    "mask_nir",
    "person_view",
    "record_action",
    "record_view",
    "record_views",
    "stuck_since_cutoff",
]
