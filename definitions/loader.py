"""Load and validate definitions. Every error names the file, the step id and the field."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from definitions.schema import (
    DecisionStep,
    Definition,
    EndStep,
    ParallelStep,
    TaskStep,
    WaitStep,
)


@dataclass(frozen=True)
class DefinitionError:
    """One problem in a definition, located as precisely as we can."""

    file: str
    step: str | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = [self.file]
        if self.step:
            where.append(f"step '{self.step}'")
        if self.field:
            where.append(f"field '{self.field}'")
        return f"{': '.join(where)}: {self.message}"

    def as_dict(self) -> dict[str, str | None]:
        return {"file": self.file, "step": self.step, "field": self.field, "message": self.message}


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
        raise InvalidDefinition([DefinitionError(str(path), None, None, f"cannot read: {error.strerror}")]) from None
    return parse_text(text, source=str(path))


def parse_text(text: str, *, source: str = "<definition>") -> Definition:
    """Validate YAML (or JSON, which is YAML) text into a Definition."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise InvalidDefinition([DefinitionError(source, None, None, f"invalid YAML{where}: {problem}")]) from None
    return parse_data(raw, source=source)


def parse_data(raw: Any, *, source: str = "<definition>") -> Definition:
    if not isinstance(raw, dict):
        raise InvalidDefinition([DefinitionError(source, None, None, "a definition is a mapping (id, title, steps…)")])
    try:
        definition = Definition.model_validate(raw)
    except ValidationError as error:
        raise InvalidDefinition([_locate(source, raw, item) for item in error.errors()]) from None
    errors = check_graph(definition, source=source)
    if errors:
        raise InvalidDefinition(errors)
    return definition


def _locate(source: str, raw: dict[str, Any], item: Any) -> DefinitionError:
    """Turn a pydantic error location into (step id, field path)."""
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
    message = item["msg"].removeprefix("Value error, ")
    if item["type"] == "union_tag_invalid" or item["type"] == "union_tag_not_found":
        message = "unknown step kind: use task, parallel, decision, wait or end"
        field = field or "kind"
    elif item["type"] == "extra_forbidden":
        message = f"unknown field '{loc[-1]}'"
    elif item["type"] == "literal_error" and loc and loc[-1] == "type":
        message = f"unknown field type {item.get('input')!r}: {message}"
    if step is None and loc and loc[0] == "steps" and len(loc) >= 2 and isinstance(loc[1], int):
        step = f"#{loc[1] + 1}"
    return DefinitionError(source, step, field, message)


def _path(parts: list[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def check_graph(definition: Definition, *, source: str) -> list[DefinitionError]:
    """Rules that span steps: ids, targets, reachability, decisions, transitions."""
    errors: list[DefinitionError] = []

    def err(step: str | None, field: str | None, message: str) -> None:
        errors.append(DefinitionError(source, step, field, message))

    main_ids = [s.id for s in definition.steps]
    all_ids = main_ids + [b.id for s in definition.steps if isinstance(s, ParallelStep) for b in s.branches]
    all_ids += [t.id for m in definition.modules for t in m.steps]
    seen: set[str] = set()
    for step_id in all_ids:
        if step_id in seen:
            err(step_id, "id", f"duplicate step id '{step_id}'")
        seen.add(step_id)
    module_ids = [m.id for m in definition.modules]
    for module_id in {m for m in module_ids if module_ids.count(m) > 1}:
        err(f"module {module_id}", "id", f"duplicate module id '{module_id}'")

    targets = set(main_ids)

    def target(step: str, field: str, value: str | None) -> None:
        if value is not None and value not in targets:
            err(step, field, f"unknown target step '{value}'")

    if definition.start not in targets:
        err(None, "start", f"unknown target step '{definition.start}'")

    def check_task(task: TaskStep, *, in_flow: bool) -> None:
        for group, ids in (("outcomes", [o.id for o in task.outcomes]), ("form", [f.id for f in task.form])):
            for dup in sorted({i for i in ids if ids.count(i) > 1}):
                err(task.id, group, f"duplicate id '{dup}' in {group}")
        for i, outcome in enumerate(task.outcomes):
            field = f"outcomes[{i}].next"
            if in_flow:
                if outcome.next is None:
                    err(task.id, field, f"outcome '{outcome.id}' has no transition (next)")
                target(task.id, field, outcome.next)
            elif outcome.next is not None:
                err(task.id, field, "inside a parallel group or a module an outcome cannot jump to another step")
        if task.optional and in_flow and task.skip_to is None:
            err(task.id, "skip_to", "an optional step must say where a skip leads (skip_to)")
        if task.skip_to is not None:
            if not in_flow:
                err(task.id, "skip_to", "skip_to is only for steps of the main flow")
            target(task.id, "skip_to", task.skip_to)
        levels = [level.to for level in definition.escalation_for(task)]
        if len(set(levels)) != len(levels):
            err(task.id, "escalation", "an escalation level appears twice")
        if levels and levels[0] != "gto":
            err(task.id, "escalation", "the first escalation level goes to the basin's GTO (to: gto)")

    for level_list, name in ((definition.escalation, "escalation"),):
        tos = [level.to for level in level_list]
        if tos and tos[0] != "gto":
            err(None, name, "the first escalation level goes to the basin's GTO (to: gto)")

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
        for step in definition.steps:
            if step.id not in reachable:
                err(step.id, None, f"step '{step.id}' is unreachable from start '{definition.start}'")
    for cycle_start in _decision_cycles(definition):
        err(cycle_start, None, "decisions loop back to this step without any task or wait in between")
    if not any(isinstance(s, EndStep) for s in definition.steps):
        err(None, "steps", "a definition needs at least one end step (kind: end)")
    return errors


def _check_decision(definition: Definition, step: DecisionStep, err: Any) -> None:
    if step.default is None:
        err(step.id, "default", "a decision needs a default transition (default)")
    source_id, _, field_id = step.based_on.partition(".")
    try:
        source = definition.task(source_id)
    except KeyError:
        err(step.id, "based_on", f"decision on unknown task '{source_id}'")
        return
    if not field_id:
        allowed = {o.id for o in source.outcomes}
        kind = f"an outcome of '{source_id}'"
    else:
        form_field = source.field(field_id)
        if form_field is None:
            err(step.id, "based_on", f"task '{source_id}' has no form field '{field_id}'")
            return
        if form_field.type == "yes_no":
            allowed = {"True", "False"}
        elif form_field.type == "choice":
            allowed = {c.value for c in form_field.choices or []}
        else:
            err(
                step.id,
                "based_on",
                f"a decision can only use a choice or yes_no field ('{field_id}' is {form_field.type})",
            )
            return
        kind = f"a value of '{step.based_on}'"
    for i, case in enumerate(step.cases):
        if str(case.when) not in allowed:
            err(step.id, f"cases[{i}].when", f"{case.when!r} is not {kind}; expected one of {sorted(allowed)}")


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
    return schema
