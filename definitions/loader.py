"""Load and validate definitions. Every error is written in French where it is found, and names
the file, the step id, the field and the line of the YAML source."""

from __future__ import annotations

import difflib
import hashlib
import json
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from definitions.durations import TOO_LONG, too_long
from definitions.schema import (
    SOFT_SKILLS,
    DecisionStep,
    Definition,
    EndStep,
    ImmersionStep,
    ParallelStep,
    TaskStep,
    WaitStep,
)

YamlPath = tuple[str | int, ...]
"""Where a value sits in the YAML document: ("steps", 2, "outcomes", 0, "next")."""


@dataclass(frozen=True)
class DefinitionError:
    """One problem in a definition, in French, located as precisely as we can: the step, the field
    and the line of the source (None for data that did not come from a YAML text)."""

    file: str
    step: str | None
    field: str | None
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = [self.file + (f", ligne {self.line}" if self.line else "")]
        if self.step:
            where.append(f"étape « {self.step} »")
        if self.field:
            where.append(f"champ « {self.field} »")
        return " : ".join([*where, self.message])

    def as_dict(self) -> dict[str, str | int | None]:
        return {"file": self.file, "step": self.step, "field": self.field, "message": self.message, "line": self.line}


class InvalidDefinition(Exception):
    def __init__(self, errors: list[DefinitionError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


def content_hash(definition: Definition) -> str:
    """Hash of the definition's content, version excluded, to spot re-publishing the same text."""
    body = definition.model_dump(mode="json", exclude={"version"})
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def load_file(path: str | Path) -> Definition:
    """Read and validate one YAML file; raise InvalidDefinition listing every error."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        message = f"lecture impossible : {error.strerror}"
        raise InvalidDefinition([DefinitionError(str(path), None, None, message)]) from None
    except UnicodeDecodeError:
        message = "le fichier n'est pas un texte UTF-8 : enregistrez-le en UTF-8"
        raise InvalidDefinition([DefinitionError(str(path), None, None, message)]) from None
    return parse_text(text, source=str(path))


def parse_text(text: str, *, source: str = "<definition>") -> Definition:
    """Validate YAML (or JSON, which is YAML) text into a Definition; errors carry their line."""
    try:
        raw = yaml.safe_load(text)
        lines = line_map(yaml.compose(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" ligne {mark.line + 1}, colonne {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        message = f"YAML invalide{where} : {problem}"
        line = mark.line + 1 if mark else None
        raise InvalidDefinition([DefinitionError(source, None, None, message, line)]) from None
    return parse_data(raw, source=source, lines=lines)


def line_map(root: yaml.Node | None) -> dict[YamlPath, int]:
    """The (1-based) line of every value of a composed YAML document, by its path; a mapping's
    entry is located at its key."""
    lines: dict[YamlPath, int] = {}

    def walk(node: yaml.Node, path: YamlPath) -> None:
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    lines.setdefault((*path, key.value), key.start_mark.line + 1)
                    walk(value, (*path, key.value))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, i))

    if root is not None:
        walk(root, ())
    return lines


def line_of(lines: dict[YamlPath, int] | None, path: YamlPath) -> int | None:
    """The line of the deepest part of `path` the source has (the whole document at worst)."""
    if not lines:
        return None
    for size in range(len(path), -1, -1):
        if path[:size] in lines:
            return lines[path[:size]]
    return None


def parse_data(raw: Any, *, source: str = "<definition>", lines: dict[YamlPath, int] | None = None) -> Definition:
    """Validate parsed data into a Definition: the schema, then the rules spanning steps."""
    if not isinstance(raw, dict):
        message = "une définition est un dictionnaire YAML (id, title, steps…)"
        raise InvalidDefinition([DefinitionError(source, None, None, message, line_of(lines, ()))])
    try:
        definition = Definition.model_validate(raw)
    except ValidationError as error:
        raise InvalidDefinition([_locate(source, raw, item, lines) for item in error.errors()]) from None
    errors = check_graph(definition, source=source, lines=lines)
    if errors:
        raise InvalidDefinition(errors)
    return definition


TYPE_NAMES = {
    "string_type": "un texte",
    "int_type": "un nombre entier",
    "int_parsing": "un nombre entier",
    "int_from_float": "un nombre entier",
    "float_type": "un nombre",
    "float_parsing": "un nombre",
    "bool_type": "true ou false",
    "bool_parsing": "true ou false",
    "list_type": "une liste",
    "dict_type": "un dictionnaire",
    "model_type": "un dictionnaire",
    "model_attributes_type": "un dictionnaire",
}


def _french(item: Any, loc: list[Any]) -> str:
    """The French message for one pydantic error (ours are already French: `Value error, …`)."""
    kind, ctx, value = item["type"], item.get("ctx") or {}, item.get("input")
    last = loc[-1] if loc else None
    if kind == "value_error":
        return str(item["msg"]).removeprefix("Value error, ")
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return "type d'étape inconnu : utilisez task, immersion, parallel, decision, wait ou end"
    if kind == "missing":
        return f"champ obligatoire manquant « {last} »" if isinstance(last, str) else "champ obligatoire manquant"
    if kind == "extra_forbidden":
        return f"champ inconnu « {last} »"
    if kind == "literal_error" and last == "type":
        return f"type de champ inconnu {value!r} : text, number, date, choice, yes_no ou soft_skills"
    if kind == "literal_error":
        return f"valeur inconnue {value!r} : attendu {ctx.get('expected', '')}".replace(" or ", " ou ")
    if kind == "string_pattern_mismatch" and last == "based_on":
        return f"{value!r} n'est ni une étape ni étape.champ (par ex. diagnostic ou diagnostic.besoin)"
    if kind == "string_pattern_mismatch":
        return f"identifiant invalide {value!r} : minuscules sans accent, chiffres et _, en commençant par une lettre"
    if kind == "too_short":
        return f"il faut au moins {ctx.get('min_length', 1)} élément(s)"
    if kind in ("greater_than_equal", "greater_than"):
        return f"doit valoir au moins {ctx.get('ge', ctx.get('gt'))}"
    if kind in TYPE_NAMES:
        return f"valeur invalide {value!r} : attendu {TYPE_NAMES[kind]}"
    return f"valeur invalide {value!r} ({item['msg']})"


def _locate(source: str, raw: dict[str, Any], item: Any, lines: dict[YamlPath, int] | None) -> DefinitionError:
    """Turn a pydantic error location into (step id, field path, line) and a French message."""
    loc = [p for p in item["loc"] if p not in ("task", "parallel", "decision", "wait", "end")]
    step: str | None = None
    node: Any = raw
    consumed = 0
    for i, part in enumerate(loc):
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
        if isinstance(part, int) and isinstance(node, dict) and isinstance(node.get("id"), str) and "kind" in node:
            step, consumed = node["id"], i + 1
        elif isinstance(part, int) and isinstance(node, dict) and loc[i - 1] == "modules":
            step, consumed = f"module {node.get('id', part)}", i + 1
    field = _path(loc[consumed:]) or None
    message = _french(item, loc)
    if item["type"] in ("union_tag_invalid", "union_tag_not_found"):
        field = field or "kind"
    if step is None and loc and loc[0] == "steps" and len(loc) >= 2 and isinstance(loc[1], int):
        step = f"#{loc[1] + 1}"
    return DefinitionError(source, step, field, message, line_of(lines, tuple(loc)))


def _path(parts: list[Any] | YamlPath) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _parts(field: str | None) -> YamlPath:
    """`outcomes[0].next` -> ("outcomes", 0, "next")."""
    if not field:
        return ()
    parts: list[str | int] = []
    for piece in field.replace("[", ".[").split("."):
        if piece.startswith("[") and piece.endswith("]") and piece[1:-1].isdigit():
            parts.append(int(piece[1:-1]))
        elif piece:
            parts.append(piece)
    return tuple(parts)


def step_paths(definition: Definition) -> dict[str, YamlPath]:
    """Where each step (main flow, branch, module step) and module sits in the document: its
    first occurrence, for a duplicate id."""
    paths: dict[str, YamlPath] = {}
    for i, step in enumerate(definition.steps):
        paths.setdefault(step.id, ("steps", i))
        if isinstance(step, ParallelStep):
            for j, branch in enumerate(step.branches):
                paths.setdefault(branch.id, ("steps", i, "branches", j))
    for m, module in enumerate(definition.modules):
        paths.setdefault(f"module {module.id}", ("modules", m))
        for k, task in enumerate(module.steps):
            paths.setdefault(task.id, ("modules", m, "steps", k))
    return paths


def check_graph(
    definition: Definition, *, source: str, lines: dict[YamlPath, int] | None = None
) -> list[DefinitionError]:
    """Rules that span steps: ids, targets, reachability, decisions, transitions, limits."""
    errors: list[DefinitionError] = []
    paths = step_paths(definition)

    def err(step: str | None, field: str | None, message: str, at: YamlPath | None = None) -> None:
        if at is None:
            at = paths.get(step, ()) if step else ()
            at = (*at, *_parts(field))
        errors.append(DefinitionError(source, step, field, message, line_of(lines, at)))

    main_ids = [s.id for s in definition.steps]
    located: list[tuple[str, YamlPath]] = []
    for i, step in enumerate(definition.steps):
        located.append((step.id, ("steps", i, "id")))
        if isinstance(step, ParallelStep):
            located += [(b.id, ("steps", i, "branches", j, "id")) for j, b in enumerate(step.branches)]
    for m, module in enumerate(definition.modules):
        located += [(t.id, ("modules", m, "steps", k, "id")) for k, t in enumerate(module.steps)]
    seen: set[str] = set()
    for step_id, at in located:
        if step_id in seen:
            err(step_id, "id", f"identifiant d'étape en double « {step_id} »", at)
        seen.add(step_id)
    module_seen: set[str] = set()
    for m, module in enumerate(definition.modules):
        if module.id in module_seen:
            err(f"module {module.id}", "id", f"identifiant de module en double « {module.id} »", ("modules", m, "id"))
        module_seen.add(module.id)

    targets = set(main_ids)
    broken: list[str] = []  # unknown targets: the steps they were meant for are not "unreachable"

    def target(step: str | None, field: str, value: str | None) -> None:
        if value is not None and value not in targets:
            broken.append(value)
            close = difflib.get_close_matches(value, sorted(targets), n=1)
            hint = f" (vouliez-vous dire « {close[0]} » ?)" if close else ""
            err(step, field, f"étape cible inconnue « {value} »{hint}")

    target(None, "start", definition.start)

    def check_task(task: TaskStep, *, in_flow: bool) -> None:
        for group, ids in (("outcomes", [o.id for o in task.outcomes]), ("form", [f.id for f in task.form])):
            for dup in sorted({i for i in ids if ids.count(i) > 1}):
                err(task.id, group, f"identifiant « {dup} » en double dans {group}")
        for i, outcome in enumerate(task.outcomes):
            field = f"outcomes[{i}].next"
            if isinstance(task, ImmersionStep):  # its outcomes come from these two fields
                if outcome.id == "annulee":
                    continue  # the same target as `next`, reported once
                field = "next_if_hiring" if outcome.id == "embauche" else "next"
            if in_flow:
                if outcome.next is None:
                    err(task.id, field, f"l'issue « {outcome.id} » n'indique pas l'étape suivante (next)")
                target(task.id, field, outcome.next)
            elif outcome.next is not None:
                err(
                    task.id,
                    field,
                    "dans un groupe parallèle ou un module, une issue ne peut pas mener à une autre étape",
                )
        if task.optional and in_flow and task.skip_to is None:
            at = (*paths.get(task.id, ()), "optional")
            err(task.id, "skip_to", "une étape facultative doit dire où mène son passage (skip_to)", at)
        if task.skip_to is not None:
            if not in_flow:
                err(task.id, "skip_to", "skip_to n'est permis que pour les étapes du parcours principal")
            target(task.id, "skip_to", task.skip_to)
        if task.escalation is not None:  # the default chain is checked once, below
            check_chain(task.id, [level.to for level in task.escalation])

    def check_chain(step: str | None, levels: list[str]) -> None:
        if len(set(levels)) != len(levels):
            err(step, "escalation", "un niveau d'escalade apparaît deux fois")
        if levels and levels[0] != "gto":
            err(step, "escalation", "le premier niveau d'escalade va au GTO du bassin (to: gto)")

    check_chain(None, [level.to for level in definition.escalation])

    for step in definition.steps:
        if isinstance(step, TaskStep):
            check_task(step, in_flow=True)
        elif isinstance(step, ParallelStep):
            target(step.id, "next", step.next)
            for branch in step.branches:
                check_task(branch, in_flow=False)
        elif isinstance(step, WaitStep):
            target(step.id, "next", step.next)
        elif isinstance(step, DecisionStep):
            _check_decision(definition, step, err)
            for i, case in enumerate(step.cases):
                target(step.id, f"cases[{i}].next", case.next)
            target(step.id, "default", step.default)
    for module in definition.modules:
        for task in module.steps:
            check_task(task, in_flow=False)

    if definition.start in targets:
        reachable = _reachable(definition)
        explained = _meant_for(definition, reachable, broken)
        for step in definition.steps:
            if step.id not in reachable and step.id not in explained:
                err(
                    step.id, None, f"l'étape « {step.id} » n'est pas atteignable depuis le début « {definition.start} »"
                )
    for cycle_start in _decision_cycles(definition):
        err(cycle_start, None, "les décisions reviennent à cette étape sans tâche ni attente entre elles")
    if not any(isinstance(s, EndStep) for s in definition.steps):
        err(None, "steps", "il faut au moins une étape de sortie (kind: end)")
    _check_limits(definition, err)
    return errors


def _meant_for(definition: Definition, reachable: set[str], broken: list[str]) -> set[str]:
    """Unreachable steps that a broken transition (an unknown target) was probably meant for, and
    the steps behind them: the broken transition is the one error to report, not a cascade."""
    if not broken:
        return set()
    unreachable = [s.id for s in definition.steps if s.id not in reachable]
    pointed = {n for s in unreachable for n in successors(definition, s)}
    roots: set[str] = set()
    ids = [s.id for s in definition.steps]
    for value in broken:  # a near miss names its step; otherwise any step nothing leads to
        close = difflib.get_close_matches(value, ids, n=1)
        if close:
            roots.update(c for c in close if c in unreachable)
        else:  # unreachable loops only (every step pointed to): any of them may have been meant
            roots.update([s for s in unreachable if s not in pointed] or unreachable)
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        current = todo.pop()
        if current in seen or current in reachable:
            continue
        seen.add(current)
        todo.extend(n for n in successors(definition, current) if n in set(unreachable))
    return seen


def _control(text: str | None) -> bool:
    """Control characters (and line or paragraph separators) have no place in a title or a label."""
    return bool(text) and any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in text or "")


def _check_limits(definition: Definition, err: Callable[..., None]) -> None:
    """Loader checks, not model validators: the models also parse the payloads of running pathways,
    which must keep replaying whatever the definitions they were started from."""
    control = "caractère de contrôle interdit (retour à la ligne, tabulation…) : écrivez-le sur une ligne"
    if _control(definition.title):
        err(None, "title", control)
    for i, level in enumerate(definition.escalation):
        if too_long(level.after):
            err(None, f"escalation[{i}].after", TOO_LONG)

    def check_task(task: TaskStep) -> None:
        if _control(task.title):
            err(task.id, "title", control)
        for i, outcome in enumerate(task.outcomes):
            if _control(outcome.label):
                err(task.id, f"outcomes[{i}].label", control)
        for i, form_field in enumerate(task.form):
            if _control(form_field.label):
                err(task.id, f"form[{i}].label", control)
            for j, choice in enumerate(form_field.choices or []):
                if _control(choice.label):
                    err(task.id, f"form[{i}].choices[{j}].label", control)
        if too_long(task.deadline):
            err(task.id, "deadline", TOO_LONG)
        for i, reminder in enumerate(task.reminders):
            for side in ("before", "after"):
                if too_long(getattr(reminder, side)):
                    err(task.id, f"reminders[{i}].{side}", TOO_LONG)
        for i, level in enumerate(task.escalation or []):
            if too_long(level.after):
                err(task.id, f"escalation[{i}].after", TOO_LONG)

    for step in definition.steps:
        if isinstance(step, TaskStep):
            check_task(step)
            continue
        if _control(step.title):
            err(step.id, "title", control)
        if isinstance(step, ParallelStep):
            for branch in step.branches:
                check_task(branch)
        elif isinstance(step, WaitStep) and too_long(step.duration):
            err(step.id, "duration", TOO_LONG)
    for module in definition.modules:
        if _control(module.title):
            err(f"module {module.id}", "title", control)
        for task in module.steps:
            check_task(task)


def _check_decision(definition: Definition, step: DecisionStep, err: Any) -> None:
    if step.default is None:
        err(step.id, "default", "une décision doit avoir une transition par défaut (default)")
    source_id, _, field_id = step.based_on.partition(".")
    try:
        source = definition.task(source_id)
    except KeyError:
        err(step.id, "based_on", f"décision sur une tâche inconnue « {source_id} »")
        return
    if not field_id:
        allowed = {o.id for o in source.outcomes}
        kind = f"une issue de « {source_id} »"
    else:
        form_field = source.field(field_id)
        if form_field is None:
            err(step.id, "based_on", f"la tâche « {source_id} » n'a pas de champ « {field_id} »")
            return
        if form_field.type == "yes_no":
            allowed = {"True", "False"}
        elif form_field.type == "choice":
            allowed = {c.value for c in form_field.choices or []}
        else:
            err(
                step.id,
                "based_on",
                f"une décision ne peut porter que sur un champ choice ou yes_no (« {field_id} » est {form_field.type})",
            )
            return
        kind = f"une valeur de « {step.based_on} »"
    for i, case in enumerate(step.cases):
        if str(case.when) not in allowed:
            expected = ", ".join(sorted(a.lower() if a in ("True", "False") else a for a in allowed))
            err(step.id, f"cases[{i}].when", f"{_yaml_value(case.when)} n'est pas {kind} ; attendu : {expected}")


def _yaml_value(value: str | bool) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else f"« {value} »"


def successors(definition: Definition, step_id: str) -> list[str]:
    step = definition.step(step_id)
    if isinstance(step, TaskStep):
        out = [o.next for o in step.outcomes if o.next]
        return out + ([step.skip_to] if step.skip_to else [])
    if isinstance(step, (ParallelStep, WaitStep)):
        return [step.next]
    if isinstance(step, DecisionStep):
        return [c.next for c in step.cases] + ([step.default] if step.default else [])
    return []


def _decision_cycles(definition: Definition) -> list[str]:
    """Decision steps that can reach themselves through decisions only: an endless loop."""
    decisions = {s.id: s for s in definition.steps if isinstance(s, DecisionStep)}
    looping = []
    for start in decisions:
        todo, seen = [n for n in successors(definition, start) if n in decisions], set()
        while todo:
            current = todo.pop()
            if current == start:
                looping.append(start)
                break
            if current not in seen:
                seen.add(current)
                todo.extend(n for n in successors(definition, current) if n in decisions)
    return looping


def _reachable(definition: Definition) -> set[str]:
    known = {s.id for s in definition.steps}
    seen: set[str] = set()
    todo = [definition.start]
    while todo:
        current = todo.pop()
        if current in seen or current not in known:
            continue
        seen.add(current)
        todo.extend(successors(definition, current))
    return seen


def json_schema() -> dict[str, Any]:
    """JSON Schema of the definition language, for editor completion."""
    schema = Definition.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Parcours pathway definition"
    form_field = schema["$defs"]["FormField"]["properties"]
    form_field["type"]["description"] = "what the API's `data` holds for this field: " + "; ".join(
        f"{kind}: {shape}" for kind, shape in DATA_SHAPES.items()
    )
    form_field["type"]["x-data-shapes"] = DATA_SHAPES
    skill_ids = {
        "type": "string",
        "enum": list(SOFT_SKILLS),
        "description": "; ".join(f"{key}: {label}" for key, label in SOFT_SKILLS.items()),
    }
    form_field["skills"]["anyOf"][0]["items"] = skill_ids
    form_field["skills"]["description"] = (
        "soft_skills only: the items assessed, ids of France Travail's savoir-être referential "
        f"({', '.join(SOFT_SKILLS)}); default: all 14"
    )
    when = schema["$defs"]["DecisionCase"]["properties"]["when"]
    when["description"] = (
        "an outcome id of the task, a choice value, or for a yes_no field the YAML booleans true / false"
    )
    return schema


DATA_SHAPES: dict[str, str] = {
    "text": 'a string: "Permis en cours"',
    "number": 'a number within minimum / maximum: 12 or 12.5 (a string such as "12,5" is accepted)',
    "date": 'an ISO date string: "2026-12-01"',
    "choice": 'one of the choices\' value: "vehicule"',
    "yes_no": 'a boolean: true or false (also "oui" / "non")',
    "soft_skills": 'an object from skill id to a score 1–4: {"autonomie": 3, "rigueur": 4}',
}
"""What to send in `data` (POST /api/tasks/{id}/complete) for each form field type."""
