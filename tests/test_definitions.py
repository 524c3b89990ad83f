"""The definition language: the catalog and the demo territory load, and every validation rule
reports the right step, field and message (plain sync tests, no servers)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from definitions.loader import (
    DefinitionError,
    InvalidDefinition,
    json_schema,
    load_file,
    parse_data,
    parse_text,
)
from definitions.schema import SOFT_SKILLS, Definition, ImmersionStep, TaskStep
from definitions.territory import (
    CATALOG_DIR,
    DEMO_TERRITORY,
    InvalidTerritory,
    Territory,
    load_territory,
)

CATALOG = sorted(CATALOG_DIR.glob("*.yaml"))


# --- The catalog ----------------------------------------------------------------------------


def test_catalog_has_the_four_definitions() -> None:
    assert {p.stem for p in CATALOG} >= {
        "rsa_socio_pro",
        "jeune_neet_mission_locale",
        "deld_immersion",
        "boe_cap_emploi",
    }


@pytest.mark.parametrize("path", CATALOG, ids=lambda p: p.stem)
def test_catalog_file_loads(path: Path) -> None:
    definition = load_file(path)
    assert definition.id == path.stem
    assert definition.escalation and definition.escalation[0].to == "gto"
    assert [level.to for level in definition.escalation] == ["gto", "spie_direction"]
    assert any(s.kind == "end" for s in definition.steps)
    assert 1 <= len(definition.modules) <= 3


def test_catalog_uses_every_field_type_and_step_kind() -> None:
    definitions = [load_file(p) for p in CATALOG]
    field_types = {f.type for d in definitions for t in d.all_tasks() for f in t.form}
    assert field_types == {"text", "number", "date", "choice", "yes_no", "soft_skills"}
    kinds = {s.kind for d in definitions for s in d.steps}
    assert kinds == {"task", "immersion", "parallel", "decision", "wait", "end"}


def test_new_definitions_metadata() -> None:
    neet = load_file(CATALOG_DIR / "jeune_neet_mission_locale.yaml")
    assert (neet.status, neet.publics, neet.basins) == ("active", ["neet"], ["all"])
    deld = load_file(CATALOG_DIR / "deld_immersion.yaml")
    assert (deld.status, deld.publics, deld.basins) == (
        "experimental",
        ["deld"],
        ["annecien", "genevois"],
    )
    assert deld.runs_in("annecien") and not deld.runs_in("chablais")
    immersion = deld.step("immersion")
    assert isinstance(immersion, ImmersionStep) and immersion.role == "partner:france_travail"
    assert {o.id: o.next for o in immersion.outcomes} == {
        "embauche": "suivi_emploi",
        "sans_embauche": "bilan_immersion",
        "annulee": "bilan_immersion",
    }
    boe = load_file(CATALOG_DIR / "boe_cap_emploi.yaml")
    assert (boe.status, boe.publics, boe.basins) == ("active", ["boe"], ["all"])
    assert boe.task("accueil").role == "partner:cap_emploi"


# --- The demo territory ----------------------------------------------------------------------


def test_demo_territory_loads() -> None:
    territory = load_territory(DEMO_TERRITORY)
    assert [(b.id, b.name) for b in territory.basins] == [
        ("annecien", "Bassin annécien"),
        ("genevois", "Genevois"),
        ("chablais", "Chablais"),
        ("arve_mont_blanc", "Arve – Mont-Blanc"),
    ]
    users = {u.email: u for u in territory.users}
    expected = {
        "camille.martin@example.org": ("caseworker", "departement74", None),
        "julien.roux@example.org": ("caseworker", "ft_annecy", None),
        "sarah.benali@example.org": ("caseworker", "ml_annecy", None),
        "lea.dupont@example.org": ("gto_lead", "spie74", "annecien"),
        "marc.girard@example.org": ("designer", "spie74", None),
        "admin@example.org": ("admin", "spie74", None),
    }
    for email, (role, organisation, basin) in expected.items():
        user = users[email]
        assert (user.role, user.organisation, user.basin) == (role, organisation, basin)
    leads = {u.basin for u in territory.users if u.role == "gto_lead"}
    assert leads == {b.id for b in territory.basins}


def _serving(territory: Territory, org_type: str, basin: str) -> list[str]:
    return [o.id for o in territory.organisations if o.type == org_type and ("all" in o.basins or basin in o.basins)]


def test_every_partner_role_resolves_in_every_basin() -> None:
    """Roles are resolved by (type, basin): exactly one organisation for each pair a definition
    of the catalog may need."""
    territory = load_territory(DEMO_TERRITORY)
    basin_ids = [b.id for b in territory.basins]
    for path in CATALOG:
        definition = load_file(path)
        basins = basin_ids if "all" in definition.basins else definition.basins
        types = {t.role.split(":", 1)[1] for t in definition.all_tasks() if t.role.startswith("partner:")}
        for org_type in types:
            for basin in basins:
                assert len(_serving(territory, org_type, basin)) == 1, (
                    definition.id,
                    org_type,
                    basin,
                )


# --- Definition errors -----------------------------------------------------------------------

VALID: dict[str, Any] = {
    "id": "test",
    "title": "Définition de test",
    "basins": ["all"],
    "start": "accueil",
    "escalation": [
        {"to": "gto", "after": "5 working days"},
        {"to": "spie_direction", "after": "10 working days"},
    ],
    "steps": [
        {
            "kind": "task",
            "id": "accueil",
            "title": "Accueil",
            "role": "referent",
            "deadline": "5 working days",
            "reminders": [{"before": "2 working days"}],
            "form": [
                {
                    "id": "situation",
                    "label": "Situation",
                    "type": "choice",
                    "choices": [
                        {"value": "emploi", "label": "Emploi"},
                        {"value": "autre", "label": "Autre"},
                    ],
                },
                {"id": "mobile", "label": "Mobile", "type": "yes_no"},
                {"id": "note", "label": "Note", "type": "text"},
            ],
            "outcomes": [{"id": "fait", "label": "Fait", "next": "orientation"}],
        },
        {
            "kind": "decision",
            "id": "orientation",
            "title": "Orientation",
            "based_on": "accueil.situation",
            "cases": [{"when": "emploi", "next": "accompagnement"}],
            "default": "attente",
        },
        {
            "kind": "parallel",
            "id": "accompagnement",
            "title": "Accompagnement conjoint",
            "branches": [
                {
                    "kind": "task",
                    "id": "branche_a",
                    "title": "A",
                    "role": "referent",
                    "outcomes": [{"id": "fait", "label": "Fait"}],
                },
                {
                    "kind": "task",
                    "id": "branche_b",
                    "title": "B",
                    "role": "partner:france_travail",
                    "outcomes": [{"id": "fait", "label": "Fait"}],
                },
            ],
            "next": "attente",
        },
        {"kind": "wait", "id": "attente", "title": "Suivi", "duration": "P1D", "next": "sortie"},
        {"kind": "end", "id": "sortie", "title": "Sortie", "exit_reason": "emploi_durable"},
    ],
}


def mutated(change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    raw = copy.deepcopy(VALID)
    change(raw)
    return raw


def step(raw: dict[str, Any], step_id: str) -> dict[str, Any]:
    return next(s for s in raw["steps"] if s["id"] == step_id)


def errors_of(raw: dict[str, Any]) -> list[DefinitionError]:
    with pytest.raises(InvalidDefinition) as caught:
        parse_data(raw, source="test.yaml")
    assert caught.value.errors
    assert all(e.file == "test.yaml" for e in caught.value.errors)
    return caught.value.errors


def assert_error(errors: list[DefinitionError], step_id: str | None, field: str | None, fragment: str) -> None:
    matching = [e for e in errors if e.step == step_id and e.field == field and fragment in e.message]
    assert matching, f"no error ({step_id!r}, {field!r}, ~{fragment!r}) in {errors}"


def test_valid_base_definition_loads() -> None:
    definition = parse_data(copy.deepcopy(VALID), source="test.yaml")
    assert isinstance(definition, Definition)
    assert isinstance(definition.step("accueil"), TaskStep)


def test_unknown_target_in_outcome_next() -> None:
    raw = mutated(lambda r: step(r, "accueil")["outcomes"][0].update(next="nulle_part"))
    assert_error(errors_of(raw), "accueil", "outcomes[0].next", "étape cible inconnue « nulle_part »")


def test_unknown_target_in_decision_case() -> None:
    raw = mutated(lambda r: step(r, "orientation")["cases"][0].update(next="nulle_part"))
    assert_error(errors_of(raw), "orientation", "cases[0].next", "étape cible inconnue « nulle_part »")


def test_unknown_target_in_decision_default() -> None:
    raw = mutated(lambda r: step(r, "orientation").update(default="nulle_part"))
    assert_error(errors_of(raw), "orientation", "default", "étape cible inconnue « nulle_part »")


def test_unknown_target_in_parallel_next() -> None:
    raw = mutated(lambda r: step(r, "accompagnement").update(next="nulle_part"))
    assert_error(errors_of(raw), "accompagnement", "next", "étape cible inconnue « nulle_part »")


def test_unknown_start() -> None:
    raw = mutated(lambda r: r.update(start="nulle_part"))
    assert_error(errors_of(raw), None, "start", "étape cible inconnue « nulle_part »")


def test_duplicate_step_id() -> None:
    def change(r: dict[str, Any]) -> None:
        r["steps"].insert(4, {"kind": "end", "id": "sortie", "title": "Doublon"})

    assert_error(errors_of(mutated(change)), "sortie", "id", "identifiant d'étape en double « sortie »")


def test_duplicate_step_id_between_branch_and_main_flow() -> None:
    raw = mutated(lambda r: step(r, "accompagnement")["branches"][1].update(id="accueil"))
    assert_error(errors_of(raw), "accueil", "id", "identifiant d'étape en double « accueil »")


def test_unreachable_step() -> None:
    raw = mutated(lambda r: r["steps"].append({"kind": "end", "id": "orpheline", "title": "Orpheline"}))
    errors = errors_of(raw)
    assert_error(errors, "orpheline", None, "n'est pas atteignable depuis le début « accueil »")
    assert len(errors) == 1


def test_decision_without_default() -> None:
    raw = mutated(lambda r: step(r, "orientation").pop("default"))
    assert_error(errors_of(raw), "orientation", "default", "doit avoir une transition par défaut")


def test_outcome_without_transition() -> None:
    raw = mutated(lambda r: step(r, "accueil")["outcomes"][0].pop("next"))
    assert_error(errors_of(raw), "accueil", "outcomes[0].next", "l'issue « fait » n'indique pas l'étape suivante")


def test_outcome_jump_inside_parallel_group() -> None:
    raw = mutated(lambda r: step(r, "accompagnement")["branches"][0]["outcomes"][0].update(next="sortie"))
    assert_error(errors_of(raw), "branche_a", "outcomes[0].next", "ne peut pas mener à une autre étape")


@pytest.mark.parametrize("delay", ["0 working days", "0 jours ouvrés", 0, "PT0S", "P0D"])
def test_zero_delay(delay: object) -> None:
    raw = mutated(lambda r: step(r, "accueil").update(deadline=delay))
    assert_error(errors_of(raw), "accueil", "deadline", "doit être positif")


@pytest.mark.parametrize("delay", ["-3 working days", "-2 jours ouvrés", -1, "-P1D"])
def test_negative_delay(delay: object) -> None:
    raw = mutated(lambda r: step(r, "attente").update(duration=delay))
    assert_error(errors_of(raw), "attente", "duration", "doit être positif")


@pytest.mark.parametrize("delay", ["three weeks", "10 jours", "P", "PT", "1 month"])
def test_malformed_delay(delay: str) -> None:
    raw = mutated(lambda r: step(r, "accueil").update(deadline=delay))
    assert_error(errors_of(raw), "accueil", "deadline", f"{delay!r} n'est pas un délai")


def test_malformed_delay_in_reminder_and_escalation() -> None:
    raw = mutated(lambda r: step(r, "accueil").update(reminders=[{"before": "bientôt"}]))
    assert_error(errors_of(raw), "accueil", "reminders[0].before", "'bientôt' n'est pas un délai")
    raw = mutated(lambda r: r["escalation"][1].update(after="plus tard"))
    assert_error(errors_of(raw), None, "escalation[1].after", "'plus tard' n'est pas un délai")


def test_unknown_role() -> None:
    raw = mutated(lambda r: step(r, "accueil").update(role="chef"))
    assert_error(errors_of(raw), "accueil", "role", "rôle inconnu 'chef'")


def test_unknown_partner_type() -> None:
    raw = mutated(lambda r: step(r, "accompagnement")["branches"][1].update(role="partner:banque"))
    assert_error(errors_of(raw), "branche_b", "role", "type de partenaire inconnu 'banque'")


def test_unknown_field_type() -> None:
    raw = mutated(lambda r: step(r, "accueil")["form"][2].update(type="email"))
    assert_error(errors_of(raw), "accueil", "form[2].type", "type de champ inconnu 'email'")


def test_unknown_step_kind() -> None:
    raw = mutated(lambda r: step(r, "attente").update(kind="pause"))
    assert_error(errors_of(raw), "attente", "kind", "type d'étape inconnu")


def test_choice_field_without_choices() -> None:
    raw = mutated(lambda r: step(r, "accueil")["form"][0].pop("choices"))
    assert_error(errors_of(raw), "accueil", "form[0]", "demande une liste 'choices' non vide")


def test_decision_on_text_field() -> None:
    raw = mutated(lambda r: step(r, "orientation").update(based_on="accueil.note"))
    assert_error(errors_of(raw), "orientation", "based_on", "ne peut porter que sur un champ choice ou yes_no")


def test_decision_on_unknown_field() -> None:
    raw = mutated(lambda r: step(r, "orientation").update(based_on="accueil.inconnu"))
    assert_error(errors_of(raw), "orientation", "based_on", "n'a pas de champ « inconnu »")


def test_decision_case_not_an_outcome() -> None:
    raw = mutated(lambda r: step(r, "orientation").update(based_on="accueil"))
    assert_error(errors_of(raw), "orientation", "cases[0].when", "« emploi » n'est pas une issue de « accueil »")


def test_decision_case_not_a_choice_value() -> None:
    raw = mutated(lambda r: step(r, "orientation")["cases"][0].update(when="chomage"))
    assert_error(errors_of(raw), "orientation", "cases[0].when", "n'est pas une valeur de « accueil.situation »")


def test_decision_on_yes_no_field_accepts_booleans() -> None:
    def change(r: dict[str, Any]) -> None:
        step(r, "orientation").update(based_on="accueil.mobile", cases=[{"when": True, "next": "accompagnement"}])

    definition = parse_data(mutated(change), source="test.yaml")
    assert definition.step("orientation").cases[0].when is True  # type: ignore[union-attr]


def test_optional_step_without_skip_to() -> None:
    raw = mutated(lambda r: step(r, "accueil").update(optional=True))
    assert_error(errors_of(raw), "accueil", "skip_to", "doit dire où mène son passage")


def test_invalid_yaml_names_the_line() -> None:
    text = "id: test\ntitle: Test\nsteps:\n  - kind: task\n   id: accueil\n"
    with pytest.raises(InvalidDefinition) as caught:
        parse_text(text, source="test.yaml")
    [error] = caught.value.errors
    assert (error.file, error.step, error.field) == ("test.yaml", None, None)
    assert "YAML invalide ligne 5" in error.message and error.line == 5


def test_yaml_that_is_not_a_mapping() -> None:
    with pytest.raises(InvalidDefinition) as caught:
        parse_text("- a\n- b\n", source="test.yaml")
    assert "une définition est un dictionnaire" in caught.value.errors[0].message


def test_definition_without_end_step() -> None:
    def change(r: dict[str, Any]) -> None:
        r["steps"][-1] = {
            "kind": "wait",
            "id": "sortie",
            "title": "Boucle",
            "duration": "P1D",
            "next": "attente",
        }

    assert_error(errors_of(mutated(change)), None, "steps", "au moins une étape de sortie")


def test_unknown_extra_field_in_step() -> None:
    raw = mutated(lambda r: step(r, "accueil").update(couleur="rouge"))
    assert_error(errors_of(raw), "accueil", "couleur", "champ inconnu « couleur »")


def test_unknown_extra_field_at_top_level_and_in_branch() -> None:
    assert_error(
        errors_of(mutated(lambda r: r.update(auteur="moi"))),
        None,
        "auteur",
        "champ inconnu « auteur »",
    )
    raw = mutated(lambda r: step(r, "accompagnement")["branches"][0].update(couleur="rouge"))
    assert_error(errors_of(raw), "branche_a", "couleur", "champ inconnu « couleur »")


def test_unknown_exit_reason_and_soft_skill() -> None:
    raw = mutated(lambda r: step(r, "sortie").update(exit_reason="vacances"))
    assert_error(errors_of(raw), "sortie", "exit_reason", "motif de sortie inconnu 'vacances'")
    raw = mutated(
        lambda r: step(r, "accueil")["form"].append(
            {
                "id": "se",
                "label": "Savoir-être",
                "type": "soft_skills",
                "skills": ["autonomie", "charisme"],
            }
        )
    )
    assert_error(errors_of(raw), "accueil", "form[3]", "savoir-être inconnu(s) charisme")


def test_escalation_must_start_with_gto() -> None:
    raw = mutated(lambda r: r.update(escalation=[{"to": "spie_direction", "after": "5 working days"}]))
    assert_error(errors_of(raw), None, "escalation", "le premier niveau d'escalade va au GTO du bassin")


def test_every_error_is_reported_at_once() -> None:
    def change(r: dict[str, Any]) -> None:
        step(r, "orientation").pop("default")
        step(r, "accompagnement").update(next="nulle_part")

    errors = errors_of(mutated(change))
    assert_error(errors, "orientation", "default", "transition par défaut")
    assert_error(errors, "accompagnement", "next", "étape cible inconnue")
    assert "test.yaml : étape « orientation » : champ « default » : une décision" in str(InvalidDefinition(errors))


def _yaml_of(raw: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(raw, allow_unicode=True, sort_keys=False)


def _line(text: str, fragment: str, nth: int = 0) -> int:
    """The 1-based line of the nth line containing fragment."""
    return [i + 1 for i, line in enumerate(text.splitlines()) if fragment in line][nth]


def test_every_error_carries_the_line_of_its_yaml_source() -> None:
    def change(r: dict[str, Any]) -> None:
        step(r, "accueil")["outcomes"][0]["next"] = "nulle_part"  # a graph rule
        step(r, "accueil")["form"][2]["type"] = "email"  # a schema rule
        step(r, "attente").pop("title")  # a missing field: the step's line

    text = _yaml_of(mutated(change))
    with pytest.raises(InvalidDefinition) as caught:
        parse_text(text, source="test.yaml")
    errors = caught.value.errors
    assert all(e.line for e in errors), errors
    by_field = {(e.step, e.field): e.line for e in errors}
    assert by_field[("accueil", "form[2].type")] == _line(text, "type: email")
    assert by_field[("attente", "title")] == _line(text, "kind: wait")
    text = _yaml_of(mutated(lambda r: r["steps"].insert(4, {"kind": "end", "id": "sortie", "title": "Doublon"})))
    with pytest.raises(InvalidDefinition) as caught:
        parse_text(text, source="test.yaml")
    assert [e.line for e in caught.value.errors] == [_line(text, "id: sortie", nth=1)]  # the second one
    with pytest.raises(InvalidDefinition) as caught:  # graph rules run once the schema is valid
        parse_text(_yaml_of(mutated(lambda r: step(r, "accueil")["outcomes"][0].update(next="nulle_part"))))
    [error] = caught.value.errors
    assert error.line == _line(_yaml_of(VALID), "next: orientation")
    assert "ligne " in str(error) and "étape « accueil »" in str(error)


@pytest.mark.parametrize(
    "change",
    [
        lambda r: step(r, "accueil").pop("title"),
        lambda r: step(r, "accueil").update(outcomes=[]),
        lambda r: step(r, "accueil").update(id="Accueil"),
        lambda r: step(r, "accueil").update(optional="peut-être"),
        lambda r: r.update(status="brouillon"),
        lambda r: r.update(steps="aucune"),
        lambda r: step(r, "orientation").update(based_on="Accueil!"),
        lambda r: step(r, "accueil")["reminders"][0].update(after="P1D"),
        lambda r: step(r, "accueil")["form"][2].update(choices=[{"value": "a", "label": "A"}]),
    ],
)
def test_schema_errors_are_written_in_french(change: Callable[[dict[str, Any]], object]) -> None:
    for error in errors_of(mutated(change)):
        english = ("should", "Field required", "Input", "unknown", "must", "List ", "valid ", "only", "gives")
        assert not any(word in error.message for word in english), error.message


def test_a_broken_transition_does_not_make_the_steps_behind_it_unreachable() -> None:
    for target in ("orientatio", "nulle_part"):
        raw = mutated(lambda r, t=target: step(r, "accueil")["outcomes"][0].update(next=t))  # type: ignore[misc]
        errors = errors_of(raw)
        assert [(e.step, e.field) for e in errors] == [("accueil", "outcomes[0].next")], errors
    assert (
        "vouliez-vous dire « orientation »"
        in errors_of(mutated(lambda r: step(r, "accueil")["outcomes"][0].update(next="orientatio")))[0].message
    )

    # A step nothing leads to is still reported, even beside a broken transition that names another.
    def change(r: dict[str, Any]) -> None:
        step(r, "accompagnement").update(next="atente")
        r["steps"].append({"kind": "end", "id": "orpheline", "title": "Orpheline"})

    errors = errors_of(mutated(change))
    assert_error(errors, "accompagnement", "next", "étape cible inconnue « atente »")
    assert_error(errors, "orpheline", None, "n'est pas atteignable")
    assert not [e for e in errors if e.step == "attente"]


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda r: r.update(title="Parcours\x07"), (None, "title")),
        (lambda r: step(r, "accueil").update(title="Accueil\nbis"), ("accueil", "title")),
        (lambda r: step(r, "accueil")["outcomes"][0].update(label="Fait\x00"), ("accueil", "outcomes[0].label")),
        (lambda r: step(r, "accueil")["form"][1].update(label="Mobile\t?"), ("accueil", "form[1].label")),
        (
            lambda r: step(r, "accueil")["form"][0]["choices"][0].update(label="\x1bEmploi"),
            ("accueil", "form[0].choices[0].label"),
        ),
        (lambda r: step(r, "accompagnement")["branches"][0].update(title="A\r"), ("branche_a", "title")),
        (lambda r: step(r, "sortie").update(title="Sortie\u2028"), ("sortie", "title")),
    ],
)
def test_control_characters_in_titles_and_labels_are_refused(
    change: Callable[[dict[str, Any]], object], where: tuple[str | None, str]
) -> None:
    raw = mutated(change)
    assert_error(errors_of(raw), *where, "caractère de contrôle interdit")
    Definition.model_validate(raw)  # the model stays as lenient: running pathways' payloads replay


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda r: step(r, "accueil").update(deadline="501 working days"), ("accueil", "deadline")),
        (lambda r: step(r, "accueil").update(deadline="P731D"), ("accueil", "deadline")),
        (lambda r: step(r, "attente").update(duration="P1000D"), ("attente", "duration")),
        (
            lambda r: step(r, "accueil")["reminders"][0].update(before="600 jours ouvrés"),
            ("accueil", "reminders[0].before"),
        ),
        (lambda r: r["escalation"][1].update(after="P3000D"), (None, "escalation[1].after")),
        (
            lambda r: step(r, "accueil").update(escalation=[{"to": "gto", "after": "PT17600H"}]),
            ("accueil", "escalation[0].after"),
        ),
    ],
)
def test_delays_longer_than_two_years_are_refused(
    change: Callable[[dict[str, Any]], object], where: tuple[str | None, str]
) -> None:
    raw = mutated(change)
    assert_error(errors_of(raw), *where, "délai trop long")
    Definition.model_validate(raw)  # a loader check, not a model validator


def test_the_longest_delays_allowed() -> None:
    def change(r: dict[str, Any]) -> None:
        step(r, "accueil").update(deadline="500 working days")
        step(r, "attente").update(duration="P730D")

    parse_data(mutated(change), source="test.yaml")


def test_json_schema_lists_step_kinds() -> None:
    schema = json_schema()
    assert schema["$schema"].startswith("https://json-schema.org/")
    kinds: set[str] = set()
    for model in schema["$defs"].values():
        kind = model.get("properties", {}).get("kind", {})
        if "const" in kind:
            kinds.add(kind["const"])
        kinds.update(kind.get("enum", []))
    assert kinds == {"task", "immersion", "parallel", "decision", "wait", "end"}
    assert "steps" in schema["properties"]


def test_json_schema_lists_soft_skill_ids_yes_no_values_and_data_shapes() -> None:
    schema = json_schema()
    form_field = schema["$defs"]["FormField"]["properties"]
    assert form_field["skills"]["anyOf"][0]["items"]["enum"] == list(SOFT_SKILLS)
    assert len(SOFT_SKILLS) == 14 and "sens_de_l_organisation" in form_field["skills"]["description"]
    assert "true / false" in schema["$defs"]["DecisionCase"]["properties"]["when"]["description"]
    shapes = form_field["type"]["x-data-shapes"]
    assert set(shapes) == {"text", "number", "date", "choice", "yes_no", "soft_skills"}
    assert '{"autonomie": 3' in shapes["soft_skills"] and "true or false" in shapes["yes_no"]


def test_a_soft_skills_grid_without_a_list_assesses_france_travail_s_fourteen_skills() -> None:
    """What a caseworker is asked to assess when a definition does not pick the skills: every
    item of France Travail's savoir-être referential, by its French label, in this order."""
    step = TaskStep.model_validate(
        {
            "kind": "task",
            "id": "bilan",
            "title": "Bilan",
            "role": "referent",
            "form": [{"id": "grille", "label": "Savoir-être", "type": "soft_skills"}],
            "outcomes": [{"id": "fait", "label": "Fait", "next": "fin"}],
        }
    )
    assert [SOFT_SKILLS[s] for s in step.form[0].assessed_skills] == [
        "Autonomie",
        "Capacité à fédérer",
        "Capacité d'adaptation",
        "Capacité de décision",
        "Curiosité",
        "Force de proposition",
        "Gestion du stress",
        "Persévérance",
        "Prise de recul",
        "Réactivité",
        "Rigueur",
        "Sens de l'organisation",
        "Sens de la communication",
        "Travail en équipe",
    ]


# --- Territory errors -------------------------------------------------------------------------


def _territory_file(tmp_path: Path, change: Callable[[dict[str, Any]], object]) -> Path:
    import yaml

    raw = yaml.safe_load(DEMO_TERRITORY.read_text(encoding="utf-8"))
    change(raw)
    path = tmp_path / "territory.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def test_territory_unknown_basin(tmp_path: Path) -> None:
    path = _territory_file(tmp_path, lambda r: r["organisations"][0].update(basins=["mars"]))
    with pytest.raises(InvalidTerritory, match="organisation 'spie74': unknown basin 'mars'"):
        load_territory(path)


def test_territory_user_with_unknown_organisation(tmp_path: Path) -> None:
    path = _territory_file(tmp_path, lambda r: r["users"][0].update(organisation="nulle_part"))
    with pytest.raises(InvalidTerritory, match="unknown organisation 'nulle_part'"):
        load_territory(path)


def test_territory_gto_lead_without_basin(tmp_path: Path) -> None:
    def change(r: dict[str, Any]) -> None:
        lead = next(u for u in r["users"] if u["email"] == "lea.dupont@example.org")
        del lead["basin"]

    path = _territory_file(tmp_path, change)
    with pytest.raises(InvalidTerritory, match="lea.dupont@example.org'.*gto_lead needs a known basin"):
        load_territory(path)


def test_territory_unknown_organisation_type_and_duplicates(tmp_path: Path) -> None:
    path = _territory_file(tmp_path, lambda r: r["organisations"][0].update(type="banque"))
    with pytest.raises(InvalidTerritory, match="unknown organisation type 'banque'"):
        load_territory(path)

    def duplicate(r: dict[str, Any]) -> None:
        r["organisations"].append(dict(r["organisations"][0]))
        r["users"].append(dict(r["users"][0]))

    path = _territory_file(tmp_path, duplicate)
    with pytest.raises(InvalidTerritory) as caught:
        load_territory(path)
    assert "organisation 'spie74' is declared twice" in str(caught.value)
    assert "user 'camille.martin@example.org' is declared twice" in str(caught.value)


def test_decisions_looping_on_each_other_are_rejected() -> None:
    from definitions.loader import InvalidDefinition, parse_text

    text = """
id: boucle
title: Boucle
basins: [all]
start: a
steps:
  - {kind: task, id: a, title: A, role: referent, outcomes: [{id: ok, label: OK, next: d1}]}
  - {kind: decision, id: d1, title: D1, based_on: a, cases: [{when: ok, next: d2}], default: fin}
  - {kind: decision, id: d2, title: D2, based_on: a, cases: [{when: ok, next: d1}], default: fin}
  - {kind: end, id: fin, title: Fin}
"""
    try:
        parse_text(text, source="boucle.yaml")
    except InvalidDefinition as error:
        steps = sorted(e.step or "" for e in error.errors if "reviennent à cette étape" in e.message)
        assert steps == ["d1", "d2"]
    else:
        raise AssertionError("a loop of decisions was accepted")


def test_an_immersion_step_is_validated_like_the_others() -> None:
    source = """
id: t
title: T
basins: [all]
start: imm
steps:
  - kind: immersion
    id: imm
    title: Immersion
    role: referent
    next: fin
    next_if_hiring: {hiring}
    {extra}
  - {{kind: end, id: fin, title: Fin, exit_reason: reorientation}}
"""
    parsed = parse_text(source.format(hiring="fin", extra=""))
    assert [o.id for o in parsed.step("imm").outcomes] == ["embauche", "sans_embauche", "annulee"]  # type: ignore[union-attr]
    for hiring, extra, expected in (
        ("ailleurs", "", "ligne 12 : étape « imm » : champ « next_if_hiring » : étape cible inconnue « ailleurs »"),
        ("fin", "form: [{id: a, label: A, type: text}]", "une étape immersion n'a pas de formulaire"),
        ("fin", "outcomes: [{id: ok, label: OK}]", "les issues d'une étape immersion sont fixées"),
    ):
        with pytest.raises(InvalidDefinition, match=expected):
            parse_text(source.format(hiring=hiring, extra=extra))
