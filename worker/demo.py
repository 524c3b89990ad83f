"""Demo data: the Haute-Savoie territory, the catalog, and a few fictitious pathways."""

from __future__ import annotations

import logging
from datetime import datetime, time

from sqlalchemy.engine import Engine

from definitions.durations import PARIS, add_working_days
from definitions.loader import load_file
from definitions.territory import CATALOG_DIR, DEMO_DIR, DEMO_TERRITORY, load_territory
from services import exchanges
from services.pathways import PathwayService
from store import queries as q

log = logging.getLogger(__name__)

DEMO_PASSWORD = "demo-parcours-74"
"""Password given to the demo territory's users in dev mode only (never in prod)."""

DEMO_PATHWAYS = [
    # definition, basin, referent, referent's caseworker, person
    (
        "rsa_socio_pro",
        "annecien",
        "departement74",
        "camille.martin@example.org",
        {"first_name": "Nadia", "last_name": "Fictive", "birth_date": "1988-04-12"},
    ),
    (
        "rsa_socio_pro",
        "chablais",
        "departement74",
        "camille.martin@example.org",
        {"first_name": "Paul", "last_name": "Exemple", "birth_date": "1975-09-30"},
    ),
    (
        "jeune_neet_mission_locale",
        "annecien",
        "ml_annecy",
        "sarah.benali@example.org",
        {"first_name": "Lina", "last_name": "Démo", "birth_date": "2006-02-03"},
    ),
    (
        "deld_immersion",
        "annecien",
        "ft_annecy",
        "julien.roux@example.org",
        {"first_name": "Karim", "last_name": "Essai", "birth_date": "1969-11-21"},
    ),
    (
        "demo_escalade",
        "annecien",
        "departement74",
        "camille.martin@example.org",
        {"first_name": "Hugo", "last_name": "Démonstration", "birth_date": "1990-01-01"},
    ),
    (
        "boe_cap_emploi",
        "genevois",
        "cap_emploi74",
        None,
        {"first_name": "Sophie", "last_name": "Modèle", "birth_date": "1981-06-15"},
    ),
]


def load_reference_data(engine: Engine, *, demo_definitions: bool = False) -> list[tuple[str, int, bool]]:
    """Territory and catalog, idempotently (re-publishing unchanged files creates nothing)."""
    q.load_territory(engine, territory=load_territory(DEMO_TERRITORY))
    published = []
    paths = sorted(CATALOG_DIR.glob("*.yaml")) + (sorted(DEMO_DIR.glob("*.yaml")) if demo_definitions else [])
    for path in paths:
        definition = load_file(path)
        version, created = q.publish_definition(
            engine, definition=definition, source=path.read_text(encoding="utf-8"), published_by="demo"
        )
        published.append((definition.id, version, created))
    return published


async def seed_demo_pathways(service: PathwayService) -> list[str]:
    """Start the demo pathways once (only into an empty read model)."""
    if q.count_pathways(service.engine) > 0:
        return []
    started = []
    for definition_id, basin, referent, by, person in DEMO_PATHWAYS:
        actor = service.actor_for(by) if by else service.actor_for("admin@example.org")
        pathway_id = await service.start_pathway(
            definition_id=definition_id,
            basin_id=basin,
            referent_org=referent,
            person={**person, "consent": True},
            actor=actor,
        )
        started.append(pathway_id)
    seed_demo_sessions(service.engine)
    return started


def seed_demo_sessions(engine: Engine) -> None:
    """The annecien basin's next GTO meeting and an employer breakfast, organised by its GTO lead."""
    lead = q.get_user_by_email(engine, email="lea.dupont@example.org")
    if lead is None:
        return
    today = q.now().astimezone(PARIS).date()
    for kind, title, days, start, end, place, capacity in (
        ("gto", "GTO du bassin annécien", 9, "14:00", "16:30", "Maison de l'emploi, Annecy", 30),
        ("employeurs", "Petit-déjeuner employeurs : l'immersion", 16, "08:30", "10:00", "CCI, Annecy", 40),
    ):
        day = add_working_days(datetime.combine(today, time(12), PARIS), days).date().isoformat()
        exchanges.create(
            engine, lead, exchanges.SessionEntry(kind, title, "annecien", day, start, end, place, capacity)
        )


def ensure_demo_passwords(engine: Engine) -> int:
    """Dev mode: give every demo user without a password the demo password."""
    from definitions.territory import load_territory as read_territory
    from services.identity import set_password

    count = 0
    for spec in read_territory(DEMO_TERRITORY).users:
        user = q.get_user_by_email(engine, email=spec.email)
        if user is not None and user.password_hash is None:
            set_password(engine, email=spec.email, password=DEMO_PASSWORD)
            count += 1
    return count
