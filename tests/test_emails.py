"""E-mail rendering is a pure function: French text, the pathway's reference, no personal data."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from activities.emails import french_datetime, render_email
from store import models
from store.db import session_scope
from tests.conftest import Parcours, eventually
from tests.flows import fast

CONTEXT = {
    "step_title": "Diagnostic socio-professionnel",
    "pathway_id": "P-0123456789",
    "definition": "Parcours RSA",
    "basin": "Chablais",
    "organisation": "France Travail Thonon",
    "due_at": datetime(2026, 12, 24, 9, 30, tzinfo=UTC),
    "level": 1,
    "action": "extend",
    "link": "http://parcours.test/parcours/P-0123456789",
    "territory": "Haute-Savoie",
}


@pytest.mark.parametrize(
    ("kind", "subject"),
    [
        ("task_assigned", "[Parcours] Nouvelle tâche : Diagnostic socio-professionnel (dossier P-0123456789)"),
        ("reminder", "[Parcours] Relance : Diagnostic socio-professionnel (dossier P-0123456789)"),
        ("overdue", "[Parcours] En retard : Diagnostic socio-professionnel (dossier P-0123456789)"),
        ("escalated", "[Parcours] Escalade au GTO Chablais : Diagnostic socio-professionnel (dossier P-0123456789)"),
        ("escalation_decided", "[Parcours] Décision du GTO : Diagnostic socio-professionnel (dossier P-0123456789)"),
    ],
)
def test_each_kind_renders_a_french_subject_and_a_link(kind: str, subject: str) -> None:
    email = render_email(kind, CONTEXT)
    assert email.subject == subject
    assert "Bonjour," in email.body and CONTEXT["link"] in email.body
    assert "Subject" not in email.body


def test_level_two_goes_to_the_direction_and_decisions_say_what_was_decided() -> None:
    assert "direction du SPIE" in render_email("escalated", {**CONTEXT, "level": 2}).subject
    assert "le délai est prolongé" in render_email("escalation_decided", CONTEXT).body


def test_dates_are_french_in_paris_time() -> None:
    assert french_datetime(datetime(2026, 12, 24, 9, 30, tzinfo=UTC)) == "24 décembre 2026 à 10 h 30"
    assert french_datetime(datetime(2026, 7, 14, 9, 5, tzinfo=UTC)) == "14 juillet 2026 à 11 h 05"
    assert "24 décembre 2026 à 10 h 30" in render_email("overdue", CONTEXT).body


async def test_an_email_that_cannot_be_built_fails_alone_and_never_wedges_the_pathway(
    parcours: Parcours, monkeypatch: pytest.MonkeyPatch
) -> None:
    import activities.pathway_activities as activities_module

    real = activities_module.render_email

    def broken_reminders(kind: str, context: dict[str, Any]) -> Any:
        if kind == "reminder":
            raise KeyError("gabarit de relance cassé")
        return real(kind, context)

    monkeypatch.setattr(activities_module, "render_email", broken_reminders)
    parcours.publish(fast(level2="PT1H"))
    pathway_id = await parcours.start("test_fast")
    task_id = parcours.open_task(pathway_id, "tache").id
    # The pathway goes on: it escalates and its escalation e-mail goes out.
    await eventually(
        lambda: f"{task_id}:g0:escalated:1" in parcours.mail.keys(pathway_id), what="the escalation e-mail"
    )
    assert not [k for k in parcours.mail.keys(pathway_id) if ":reminder:" in k]
    with session_scope(parcours.engine) as session:
        reminder = session.get(models.Notification, f"{task_id}:g0:reminder:0")
    assert reminder is not None and reminder.status == "failed"  # visible to an operator
    assert reminder.last_error is not None and "construction impossible" in reminder.last_error
