"""Check a form submission against a task's form: the same rules for the CLI, the UI and the
workflow's validator, so a rejection reads the same everywhere."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from definitions.schema import SOFT_SKILL_SCALE, DecisionStep, Definition, FormField, TaskStep


@dataclass
class CheckedSubmission:
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def filled(self) -> list[str]:
        return sorted(self.values)


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value == {}


def _coerce(form_field: FormField, value: Any) -> Any:
    """Return the clean value or raise ValueError with a French message."""
    kind = form_field.type
    if kind == "text":
        return str(value).strip()
    if kind == "number":
        try:
            number = float(str(value).replace(",", "."))
        except ValueError:
            raise ValueError("doit être un nombre") from None
        if form_field.minimum is not None and number < form_field.minimum:
            raise ValueError(f"doit être au moins {form_field.minimum:g}")
        if form_field.maximum is not None and number > form_field.maximum:
            raise ValueError(f"doit être au plus {form_field.maximum:g}")
        return int(number) if number.is_integer() else number
    if kind == "date":
        try:
            return date.fromisoformat(str(value)).isoformat()
        except ValueError:
            raise ValueError("doit être une date (AAAA-MM-JJ)") from None
    if kind == "choice":
        allowed = {c.value for c in form_field.choices or []}
        if str(value) not in allowed:
            raise ValueError(f"choix inconnu {value!r} (attendu : {', '.join(sorted(allowed))})")
        return str(value)
    if kind == "yes_no":
        text = str(value).strip().lower()
        if text in ("true", "oui", "yes", "1"):
            return True
        if text in ("false", "non", "no", "0"):
            return False
        raise ValueError("doit être oui ou non")
    if kind == "soft_skills":
        if not isinstance(value, dict):
            raise ValueError("doit associer à chaque savoir-être une note de 1 à 4")
        scores: dict[str, int] = {}
        for skill, score in value.items():
            if skill not in form_field.assessed_skills:
                raise ValueError(f"savoir-être inconnu {skill!r}")
            if _is_empty(score):
                continue
            try:
                level = int(score)
            except (TypeError, ValueError):
                raise ValueError(f"note invalide pour {skill!r}") from None
            if level not in SOFT_SKILL_SCALE:
                raise ValueError(f"la note de {skill!r} doit aller de 1 à 4")
            scores[skill] = level
        return scores
    raise ValueError(f"type de champ inconnu {kind!r}")


def check_submission(task: TaskStep, data: dict[str, Any]) -> CheckedSubmission:
    """Validate and clean form data; errors are keyed by field id."""
    result = CheckedSubmission()
    known = {f.id for f in task.form}
    for name in data:
        if name not in known:
            result.errors[name] = "champ inconnu pour cette étape"
    for form_field in task.form:
        raw = data.get(form_field.id)
        if _is_empty(raw):
            if form_field.required:
                result.errors[form_field.id] = f"« {form_field.label} » est obligatoire"
            continue
        try:
            clean = _coerce(form_field, raw)
        except ValueError as error:
            result.errors[form_field.id] = f"« {form_field.label} » {error}"
            continue
        if not _is_empty(clean):
            result.values[form_field.id] = clean
        elif form_field.required:
            result.errors[form_field.id] = f"« {form_field.label} » est obligatoire"
    return result


def routing_fields(definition: Definition, task_id: str) -> list[str]:
    """Fields of this task that a decision branches on: the only answers the workflow sees."""
    fields = []
    for step in definition.steps:
        if isinstance(step, DecisionStep):
            source, _, field_id = step.based_on.partition(".")
            if source == task_id and field_id:
                fields.append(field_id)
    return fields


def routing_values(definition: Definition, task_id: str, values: dict[str, Any]) -> dict[str, str]:
    return {name: str(values[name]) for name in routing_fields(definition, task_id) if name in values}
