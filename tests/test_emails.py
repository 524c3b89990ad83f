"""E-mail rendering is a pure function: French text, the pathway's reference, no personal data."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from activities.emails import french_datetime, render_email

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
