"""The diagram of a pathway definition (schéma du parcours), computed from the definition itself:
one box per step with its kind, deadline and escalation chain, arrows labelled with outcomes and
decision cases, parallel groups and modules as boxes holding their tasks. The server describes the
graph (`definition_graph`); ELK lays it out and static/diagram.js draws it in the browser. With
`counts` (open tasks per step, anonymous) each box shows its count and is coloured by its worst
deadline status: the GTO heat map."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, field
from html import escape
from typing import Any

from markupsafe import Markup

from definitions.schema import (
    EXIT_REASONS,
    DecisionStep,
    Definition,
    EndStep,
    ParallelStep,
    TaskStep,
    WaitStep,
)

KIND_LABELS = {
    "task": "Tâche",
    "parallel": "Accompagnement conjoint",
    "decision": "Décision automatique",
    "wait": "Attente",
    "end": "Sortie",
}
SLA_ORDER = ("escalated", "overdue", "due_soon", "on_time")
CHAR_W = 6.4  # average glyph width at 12 px


def _x(text: object) -> str:
    return escape(str(text), quote=True)


def _wrap(text: str, width: float, lines: int = 2, char_w: float = CHAR_W) -> list[str]:
    chars = max(8, int((width - 16) / char_w))
    return textwrap.wrap(text, chars, max_lines=lines, placeholder="…") or [""]


def _short(text: str, width: float) -> str:
    return _wrap(text, width, 1)[0]


def delay_label(delay: Any) -> str:
    if delay is None:
        return ""
    if delay.working_days is not None:
        n = delay.working_days
        return f"{n} j. ouvré{'s' if n > 1 else ''}"
    seconds = float(delay.seconds)
    for unit, size in (("j", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def role_label(role: str) -> str:
    if role == "referent":
        return "Structure référente"
    if role.startswith("partner:"):
        return "Partenaire : " + role.removeprefix("partner:").replace("_", " ")
    return "Organisation : " + role.removeprefix("organisation:")


def escalation_label(definition: Definition, task: TaskStep) -> str:
    chain = definition.escalation_for(task)
    if not chain:
        return ""
    names = {"gto": "GTO", "spie_direction": "SPIE"}
    return "Escalade : " + " → ".join(f"{names[lv.to]} +{delay_label(lv.after)}" for lv in chain)


def worst_sla(entry: dict[str, Any] | None) -> str | None:
    if not entry or not entry.get("total"):
        return None
    return next((s for s in SLA_ORDER if entry.get(s)), "on_time")


@dataclass
class Box:
    id: str
    kind: str
    w: float
    h: float
    lines: list[tuple[str, str]] = field(default_factory=list)  # (css class, text)
    children: list[Box] = field(default_factory=list)


def _task_box(definition: Definition, task: TaskStep, kind: str = "task", width: float = 232) -> Box:
    lines = [("t", line) for line in _wrap(task.title, width)]
    lines.append(("id", task.id))
    lines.append(("m", _wrap(role_label(task.role), width, 1, 5.9)[0]))
    if task.deadline is not None:
        lines.append(("m", "Délai : " + delay_label(task.deadline)))
    if escalation := escalation_label(definition, task):
        lines.extend(("m", line) for line in _wrap(escalation, width, 2, 5.9))
    if task.optional:
        lines.append(("m", "Facultative"))
    return Box(task.id, kind, width, 14 + 16 * len(lines), lines)


def _box(definition: Definition, step: Any) -> Box:
    if isinstance(step, TaskStep):
        return _task_box(definition, step)
    if isinstance(step, ParallelStep):
        children = [_task_box(definition, b, "branch", 210) for b in step.branches]
        inner_h = max(c.h for c in children)
        for c in children:
            c.h = inner_h
        width = sum(c.w for c in children) + 14 * (len(children) + 1)
        mode = "toutes les branches" if step.completion == "all" else "la première branche"
        lines = [("t", _short(step.title, width)), ("m", f"{step.id} · se termine avec {mode}")]
        return Box(step.id, "parallel", width, 54 + inner_h + 14, lines, children)
    if isinstance(step, DecisionStep):
        lines = [("t", line) for line in _wrap(step.title, 150)] + [("id", step.id)]
        return Box(step.id, "decision", 220, 110, lines)
    if isinstance(step, WaitStep):
        lines = [
            ("t", _short(step.title, 210)),
            ("id", step.id),
            ("m", "Attente : " + delay_label(step.duration)),
        ]
        return Box(step.id, "wait", 210, 14 + 16 * len(lines), lines)
    assert isinstance(step, EndStep)
    lines = [
        ("t", _short(step.title, 210)),
        ("id", step.id),
        ("m", "Sortie : " + EXIT_REASONS.get(step.exit_reason, step.exit_reason)),
    ]
    return Box(step.id, "end", 210, 14 + 16 * len(lines), lines)


def edge_labels(definition: Definition, step: Any) -> list[tuple[str, str]]:
    """(target, label) for each arrow leaving a step of the main flow."""
    if isinstance(step, TaskStep):
        out = [(o.next, o.label) for o in step.outcomes if o.next]
        if step.skip_to:
            out.append((step.skip_to, "si passée"))
        return out
    if isinstance(step, (ParallelStep, WaitStep)):
        return [(step.next, "")]
    if isinstance(step, DecisionStep):
        source_id, _, field_id = step.based_on.partition(".")
        names: dict[str, str] = {}
        try:
            source = definition.task(source_id)
            if field_id and (form_field := source.field(field_id)):
                names = {c.value: c.label for c in form_field.choices or []}
                names.update({"True": "Oui", "False": "Non"})
            else:
                names = {o.id: o.label for o in source.outcomes}
        except KeyError:
            pass
        out = [(c.next, names.get(str(c.when), str(c.when))) for c in step.cases]
        if step.default:
            out.append((step.default, "sinon"))
        return out
    return []


def count_sentence(entry: dict[str, Any]) -> str:
    total = int(entry.get("total", 0))
    text = f"{total} tâche{'s' if total > 1 else ''} ouverte{'s' if total > 1 else ''}"
    late = int(entry.get("overdue", 0)) + int(entry.get("escalated", 0))
    details = []
    if late:
        details.append(f"{late} en retard ou escaladée{'s' if late > 1 else ''}")
    if entry.get("due_soon"):
        details.append(f"{entry['due_soon']} à échéance proche")
    return text + (f" dont {', '.join(details)}" if details else "")


def count_label(entry: dict[str, Any]) -> str:
    """The short line in a box of the heat map: « 3 ouvertes », « 3 ouvertes dont 1 en retard »."""
    total = int(entry.get("total", 0))
    late = int(entry.get("overdue", 0)) + int(entry.get("escalated", 0))
    text = f"{total} ouverte{'s' if total > 1 else ''}"
    return text + (f" dont {late} en retard" if late else "")


# --- The graph laid out by ELK in the browser --------------------------------------------------------


def _node(box: Box, entry: dict[str, Any] | None) -> dict[str, Any]:
    """One box of the graph: its kind, its text lines (css class, text), and with open tasks their
    count (a line « 3 ouvertes », the full sentence) and the heat level, its worst deadline status
    (escalated, overdue, due_soon, on_time), which static/diagram.js colours."""
    node: dict[str, Any] = {"id": box.id, "kind": box.kind, "lines": [list(line) for line in box.lines]}
    if entry and (heat := worst_sla(entry)):
        node["heat"], node["count"], node["detail"] = heat, int(entry["total"]), count_sentence(entry)
        node["lines"].append(["c", count_label(entry)])
    return node


def definition_graph(definition: Definition, counts: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """What the diagram shows, as data for ELK (elkjs, laid out in the browser by
    static/diagram.js): nodes with their text, parallel groups and modules as boxes holding their
    tasks, arrows with their labels. The browser measures the text, so boxes fit their labels."""
    counts = counts or {}
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    known = {s.id for s in definition.steps}
    for step in definition.steps:
        box = _box(definition, step)
        node = _node(box, counts.get(step.id))
        if isinstance(step, ParallelStep):
            node["children"] = [_node(child, counts.get(child.id)) for child in box.children]
        node["start"] = step.id == definition.start
        nodes.append(node)
        for i, (target, label) in enumerate(edge_labels(definition, step)):
            if target in known:
                edges.append({"id": f"{step.id}>{target}#{i}", "source": step.id, "target": target, "label": label})
    for module in definition.modules:
        children = [_node(_task_box(definition, t), counts.get(t.id)) for t in module.steps]
        inner = [
            {"id": f"{a.id}>{b.id}", "source": a.id, "target": b.id, "label": ""}
            for a, b in zip(module.steps, module.steps[1:], strict=False)
        ]
        nodes.append(
            {
                "id": f"module:{module.id}",
                "kind": "module",
                "lines": [["t", f"Module facultatif : {module.title}"], ["id", module.id]],
                "children": children,
                "edges": inner,
            }
        )
    return {"id": "root", "title": definition.title, "nodes": nodes, "edges": edges}


def render_definition_diagram(
    definition: Definition, *, counts: dict[str, dict[str, Any]] | None = None, dom_id: str = "schema"
) -> Markup:
    """The diagram's container: the graph as JSON for static/diagram.js (ELK lays it out and draws
    the SVG) and, until then or without JavaScript, the list of steps with where each one leads."""
    counts = counts or {}
    graph = definition_graph(definition, counts)
    items = []

    def counted(step_id: str, title: str | None = None) -> str:
        entry = counts.get(step_id)
        if not entry or not entry.get("total"):
            return ""
        return f" — {title + ' : ' if title else ''}{count_sentence(entry)}"

    for step in definition.steps:
        arrows = ", ".join(f"{label or 'puis'} → {target}" for target, label in edge_labels(definition, step))
        count = counted(step.id)
        if isinstance(step, ParallelStep):
            count += "".join(counted(branch.id, branch.title) for branch in step.branches)
        items.append(
            f'<li data-step="{_x(step.id)}"><strong>{_x(step.title)}</strong> '
            f"<code>{_x(step.id)}</code> ({_x(KIND_LABELS.get(step.kind, step.kind))})"
            f"{' : ' + _x(arrows) if arrows else ''}{_x(count)}</li>"
        )
    for module in definition.modules:
        tasks = ", ".join(t.title for t in module.steps)
        count = "".join(counted(t.id, t.title) for t in module.steps)
        items.append(f"<li>Module facultatif <strong>{_x(module.title)}</strong> : {_x(tasks)}{_x(count)}</li>")
    return Markup(
        f'<div class="parcours-elk" id="{_x(dom_id)}" data-graph="{_x(json.dumps(graph, ensure_ascii=False))}" '
        f'aria-label="Schéma du parcours « {_x(definition.title)} »">'
        f'<ol class="parcours-elk__steps">{"".join(items)}</ol></div>'
    )
