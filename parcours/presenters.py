"""One presenter per concept, shared by every front end (pages, API, CLI) and the e-mails: French
dates in Europe/Paris, the GTO decisions, audit actions, statuses, organisation types.

It lives at the bottom of the layers (parcours/) because the e-mails (activities/) sit below the
application layer (services/) and must use the same words and the same date format."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")

MONTHS = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)


def aware(moment: datetime) -> datetime:
    """A read-model moment with its time zone: the read model stores UTC, SQLite gives it back naive."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def paris(moment: datetime) -> datetime:
    """The moment in Europe/Paris (a naive read-model moment is UTC)."""
    return aware(moment).astimezone(PARIS)


def french_date(moment: datetime | None, empty: str = "—") -> str:
    """'3 décembre 2026' in Europe/Paris."""
    if moment is None:
        return empty
    local = paris(moment)
    return f"{local.day} {MONTHS[local.month - 1]} {local.year}"


def french_datetime(moment: datetime | None, empty: str = "—") -> str:
    """'3 décembre 2026 à 14 h 05' in Europe/Paris."""
    if moment is None:
        return empty
    return f"{french_date(moment)} à {french_time(moment)}"


def french_time(moment: datetime | None, empty: str = "—") -> str:
    """'14 h 05' in Europe/Paris."""
    if moment is None:
        return empty
    local = paris(moment)
    return f"{local.hour} h {local.minute:02d}"


@dataclass(frozen=True)
class GtoAction:
    label: str
    """what the GTO lead chooses (form, CLI help)"""
    done: str
    """what happened (e-mails, history)"""


GTO_ACTIONS: dict[str, GtoAction] = {
    "reassign": GtoAction("Confier la tâche à une autre organisation", "la tâche est confiée à une autre organisation"),
    "extend": GtoAction("Prolonger le délai", "le délai est prolongé"),
    "add_step": GtoAction("Ajouter une étape (un module) au parcours", "une étape est ajoutée au parcours"),
    "close": GtoAction("Clore le parcours", "le parcours est clos"),
    "unblock": GtoAction(
        "Débloquer : le délai repart pour le même partenaire", "la situation est débloquée, le délai repart"
    ),
}
"""The GTO's decisions on an escalation, written once."""

AUDIT_LABELS = {
    "pathway_started": "Parcours démarré",
    "task_completed": "Tâche terminée",
    "task_reassigned": "Tâche confiée à une autre organisation",
    "module_added": "Module ajouté",
    "step_skipped": "Étape passée",
    "pathway_paused": "Parcours suspendu",
    "pathway_resumed": "Parcours repris",
    "pathway_closed": "Parcours clos",
    "pathway_migrated": "Parcours déplacé vers une nouvelle version",
    "reminder_sent": "Relance envoyée",
    "task_overdue": "Échéance dépassée",
    "escalated": "Escalade",
    "escalation_decided": "Décision du GTO",
    "personal_data_viewed": "Consultation des données personnelles",
    "signed_in": "Connexion",
    "definition_published": "Définition publiée",
}
"""Audit actions, one label map for every page."""

STATUS_LABELS = {
    "open": "En cours",
    "done": "Terminée",
    "skipped": "Passée",
    "cancelled": "Annulée",
    "active": "En cours",
    "paused": "Suspendu",
    "closed": "Clos",
    "decided": "Décidée",
    "resolved": "Résolue",
}

ORGANISATION_TYPE_LABELS = {
    "departement": "Département",
    "france_travail": "France Travail",
    "caf": "CAF",
    "msa": "MSA",
    "mission_locale": "Mission locale",
    "cap_emploi": "Cap emploi",
    "spip": "SPIP",
    "pjj": "PJJ",
    "employer_federation": "Fédération d'employeurs",
    "spie": "SPIE",
    "training": "Organisme de formation",
    "siae": "SIAE",
    "association": "Association",
    "epci": "EPCI",
    "employer": "Employeur",
}


def organisation_type_label(org_type: str) -> str:
    return ORGANISATION_TYPE_LABELS.get(org_type, org_type)


def role_label(role: str) -> str:
    """A step's role: 'partner:mission_locale' -> 'Mission locale', 'referent' -> 'Structure référente'."""
    if role == "referent":
        return "Structure référente"
    if role.startswith("partner:"):
        return organisation_type_label(role.removeprefix("partner:"))
    return role.removeprefix("organisation:")


def basins_label(basins: list[str], names: dict[str, str] | None = None) -> str:
    """'all' -> 'tous les bassins'; otherwise the basins' names."""
    if "all" in basins:
        return "tous les bassins"
    names = names or {}
    return ", ".join(names.get(b, b) for b in basins) or "aucun bassin"


def completion_label(completion: str) -> str:
    """A parallel group's completion rule."""
    return {"all": "toutes les tâches", "any": "une seule tâche"}.get(completion, completion)


CSV_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> str:
    """A CSV cell a spreadsheet will not run as a formula: text starting with =, +, -, @, a tab
    or a carriage return gets a leading quote (OWASP CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(CSV_FORMULA_STARTS) else text
