"""Server-side SVG drawing of a pathway definition (schéma du parcours), computed from the
definition itself: steps in layers by breadth-first depth from `start`, one shape per kind,
arrows labelled with outcomes and decision cases, deadlines and escalation chains on tasks,
modules below. With `counts` (open tasks per step, anonymous) it becomes a heat map."""

from __future__ import annotations

import json
import textwrap
from collections import deque
from dataclasses import dataclass, field
from html import escape
from typing import Any

from markupsafe import Markup

from definitions.loader import successors
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
SLA_COLOURS = {  # (box fill, badge colour): DSFR error / warning / success tints
    "escalated": ("#ffe9e9", "#ce0500"),
    "overdue": ("#ffe9e9", "#ce0500"),
    "due_soon": ("#ffe9e6", "#b34000"),
    "on_time": ("#dffee6", "#18753c"),
}
STYLE = {  # fill, stroke
    "task": ("#f5f5fe", "#000091"),
    "branch": ("#ffffff", "#000091"),
    "parallel": ("#fbfbff", "#6a6af4"),
    "decision": ("#fef7da", "#716043"),
    "wait": ("#f6f6f6", "#666666"),
    "end": ("#e3e3fd", "#000091"),
    "module": ("#fbfbfb", "#929292"),
}
FONT = "Marianne, Arial, sans-serif"
CHAR_W = 6.4  # average glyph width at 12 px
H_GAP, V_GAP, MARGIN = 36, 76, 24


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
    x: float = 0
    y: float = 0

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def bottom(self) -> float:
        return self.y + self.h


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


def layers_of(definition: Definition) -> list[list[str]]:
    """Main-flow step ids grouped by breadth-first depth from start (unreachable ones last)."""
    known = {s.id for s in definition.steps}
    depth: dict[str, int] = {}
    queue: deque[str] = deque()
    if definition.start in known:
        depth[definition.start] = 0
        queue.append(definition.start)
    while queue:
        current = queue.popleft()
        for nxt in successors(definition, current):
            if nxt in known and nxt not in depth:
                depth[nxt] = depth[current] + 1
                queue.append(nxt)
    last = max(depth.values(), default=-1) + 1
    for step in definition.steps:
        depth.setdefault(step.id, last)
    layers: list[list[str]] = [[] for _ in range(max(depth.values()) + 1)]
    for step in definition.steps:  # the file's order within a layer, then barycentre below
        layers[depth[step.id]].append(step.id)
    return [layer for layer in layers if layer]


def render_definition_svg(
    definition: Definition,
    *,
    counts: dict[str, dict[str, Any]] | None = None,
    dom_id: str = "schema",
) -> Markup:
    """The SVG drawing; `counts` maps step id -> {total, on_time, due_soon, overdue, escalated}."""
    counts = counts or {}
    steps = {s.id: s for s in definition.steps}
    boxes = {sid: _box(definition, s) for sid, s in steps.items()}
    layers = layers_of(definition)
    layer_of = {sid: i for i, layer in enumerate(layers) for sid in layer}

    # Arrows leaving each step, labels of parallel arrows to the same target merged.
    edges: list[tuple[str, str, str]] = []
    for sid, step in steps.items():
        merged: dict[str, list[str]] = {}
        for target, label in edge_labels(definition, step):
            if target in steps:
                merged.setdefault(target, [])
                if label and label not in merged[target]:
                    merged[target].append(label)
        edges.extend((sid, target, " / ".join(texts)) for target, texts in merged.items())

    # Order each layer by the mean position of its parents (one downward pass).
    parents: dict[str, list[str]] = {}
    for sid, target, _ in edges:
        parents.setdefault(target, []).append(sid)
    position: dict[str, float] = {}
    for layer in layers:
        original = {sid: i - (len(layer) - 1) / 2 for i, sid in enumerate(layer)}

        def key(sid: str, original: dict[str, float] = original) -> float:
            known = [position[p] for p in parents.get(sid, []) if p in position and layer_of[p] < layer_of[sid]]
            return sum(known) / len(known) if known else original[sid]

        layer.sort(key=key)
        for i, sid in enumerate(layer):
            position[sid] = i - (len(layer) - 1) / 2

    # Arrows going back up (loops, retries) run in lanes beside the drawing, on the source's side.
    back: list[tuple[str, str, str, str, int]] = []
    lanes = {"left": 0, "right": 0}
    for sid, target, label in edges:
        if layer_of[target] < layer_of[sid] or (layer_of[target] == layer_of[sid] and sid == target):
            side = "left" if position[sid] < 0 or (position[sid] == 0 and lanes["left"] < lanes["right"]) else "right"
            lanes[side] += 1
            back.append((sid, target, label, side, lanes[side]))

    module_boxes: list[Box] = []
    for module in definition.modules:
        children = [_task_box(definition, t, "branch", 210) for t in module.steps]
        inner_h = max(c.h for c in children)
        for c in children:
            c.h = inner_h
        width = sum(c.w for c in children) + 30 * (len(children) - 1) + 28
        lines = [("t", _short(module.title, width)), ("m", f"module {module.id}")]
        module_boxes.append(Box(module.id, "module", width, 54 + inner_h + 14, lines, children))

    row_widths = [sum(boxes[s].w for s in layer) + H_GAP * (len(layer) - 1) for layer in layers]
    content_w = max(row_widths + [b.w for b in module_boxes] + [320])
    label_room = {
        side: max(
            (min(len(label), 34) * 5.9 + 16 for *_, label, s, _ in back if s == side and label),
            default=0,
        )
        for side in ("left", "right")
    }
    left_pad = (24 + 14 * lanes["left"] + label_room["left"]) if lanes["left"] else 0
    right_pad = (24 + 14 * lanes["right"] + label_room["right"]) if lanes["right"] else 0
    left = MARGIN + left_pad
    width = content_w + 2 * MARGIN + left_pad + right_pad

    y: float = MARGIN
    for layer, row_w in zip(layers, row_widths, strict=True):
        x = left + (content_w - row_w) / 2
        row_h = max(boxes[s].h for s in layer)
        for sid in layer:
            box = boxes[sid]
            box.x, box.y = x, y + (row_h - box.h) / 2
            _place_children(box)
            x += box.w + H_GAP
        y += row_h + V_GAP
    modules_top = y - V_GAP / 2
    if module_boxes:
        y += 10
        for box in module_boxes:
            box.x, box.y = left, y
            cx = box.x + 14
            for child in box.children:
                child.x, child.y = cx, box.y + 54
                cx += child.w + 30
            y += box.h + 20
        height = y + MARGIN - 20
    else:
        height = y - V_GAP + MARGIN

    p = _x(dom_id)
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" role="img" class="parcours-svg" '
        f'aria-labelledby="{p}-title {p}-desc" font-family="{FONT}" font-size="12">',
        f'<title id="{p}-title">Schéma du parcours « {_x(definition.title)} »</title>',
        f'<desc id="{p}-desc">{_x(_describe(definition, layers, counts))}</desc>',
        "<defs>",
        f'<marker id="{p}-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" fill="#3a3a3a"/></marker>',
        "</defs>",
    ]
    obstacles = [(b.x, b.y, b.w, b.h) for b in boxes.values()]
    placed: list[tuple[float, float, float, float]] = []
    labels: list[str] = []
    stroke = f'fill="none" stroke="#3a3a3a" stroke-width="1.4" marker-end="url(#{p}-arrow)"'

    for sid, target, label in edges:
        source, dest = boxes[sid], boxes[target]
        if layer_of[target] > layer_of[sid]:
            x1, y1, x2, y2 = source.cx, source.bottom, dest.cx, dest.y
            dy = min(V_GAP, (y2 - y1) / 2)
            out.append(
                f'<path d="M{x1:.1f},{y1:.1f} C{x1:.1f},{y1 + dy:.1f} {x2:.1f},{y2 - dy:.1f} '
                f'{x2:.1f},{y2 - 2:.1f}" {stroke}><title>{_x(sid)} → {_x(target)}</title></path>'
            )
            if label:  # in the gap below the source, on the curve
                t = min(0.5, (V_GAP * 0.55) / max(1.0, y2 - y1) * 1.5)
                lx, ly = _bezier(x1, x1, x2, x2, t), _bezier(y1, y1 + dy, y2 - dy, y2, t)
                labels.append(_label(lx, ly, label, placed, obstacles))
        elif layer_of[target] == layer_of[sid] and sid != target:
            forward = dest.x > source.x
            ym = max(source.y, dest.y) + min(source.h, dest.h) / 2 + (-8 if forward else 10)
            x1 = source.x + source.w if forward else source.x
            x2 = dest.x - 2 if forward else dest.x + dest.w + 2
            out.append(
                f'<path d="M{x1:.1f},{ym:.1f} H{x2:.1f}" {stroke}><title>{_x(sid)} → {_x(target)}</title></path>'
            )
            if label:  # above a rightward arrow, below a leftward one, over the boxes if need be
                labels.append(_label((x1 + x2) / 2, ym + (-12 if forward else 16), label, placed, []))
    for sid, target, label, side, lane in back:
        source, dest = boxes[sid], boxes[target]
        y1, y2 = source.y + source.h / 2 + 8, dest.y + dest.h / 2 - 8
        if side == "right":
            lane_x = MARGIN + left_pad + content_w + 12 + 14 * lane + label_room["right"]
            x1 = source.x + source.w
            x2 = dest.x + dest.w + 2
        else:
            lane_x = MARGIN + left_pad - 12 - 14 * lane - label_room["left"]
            x1 = source.x
            x2 = dest.x - 2
        out.append(
            f'<path d="M{x1:.1f},{y1:.1f} H{lane_x:.1f} V{y2:.1f} H{x2:.1f}" {stroke} '
            f'stroke-dasharray="5 3"><title>{_x(sid)} → {_x(target)} (retour)</title></path>'
        )
        if label:
            lx = x1 + 6 if side == "right" else x1 - 6
            labels.append(
                _label(
                    lx,
                    y1 + 14,
                    label,
                    placed,
                    obstacles,
                    anchor="start" if side == "right" else "end",
                )
            )

    for box in boxes.values():
        out.append(_draw(box, counts.get(box.id), p))
        for child in box.children:
            out.append(_draw(child, counts.get(child.id), p))
    if module_boxes:
        out.append(
            f'<line x1="{left}" y1="{modules_top:.1f}" '
            f'x2="{left + content_w:.1f}" y2="{modules_top:.1f}" '
            'stroke="#929292" stroke-dasharray="2 4"/>'
            f'<text x="{left}" y="{modules_top + 16:.1f}" font-size="12" fill="#666">'
            "Modules ajoutables en cours de parcours (par le référent ou le GTO)</text>"
        )
        for box in module_boxes:
            out.append(_draw(box, None, p))
            for a, b in zip(box.children, box.children[1:], strict=False):
                yy = a.y + a.h / 2
                out.append(f'<path d="M{a.x + a.w:.1f},{yy:.1f} H{b.x - 2:.1f}" {stroke}/>')
            for child in box.children:
                out.append(_draw(child, counts.get(child.id), p))
    out.extend(labels)
    out.append("</svg>")
    return Markup("\n".join(out))


def _place_children(box: Box) -> None:
    x = box.x + 14
    for child in box.children:
        child.x, child.y = x, box.y + 54
        x += child.w + 14


def _bezier(a: float, b: float, c: float, d: float, t: float) -> float:
    u = 1 - t
    return u**3 * a + 3 * u * u * t * b + 3 * u * t * t * c + t**3 * d


def _overlaps(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _label(
    x: float,
    y: float,
    text: str,
    placed: list[tuple[float, float, float, float]],
    obstacles: list[tuple[float, float, float, float]],
    anchor: str = "middle",
) -> str:
    """A label on a white patch, moved up or down a little when it would hide another one."""
    text = text if len(text) <= 34 else text[:33] + "…"
    w = len(text) * 5.9 + 10
    rx = x - w / 2 if anchor == "middle" else (x - 4 if anchor == "start" else x - w + 4)
    for shift in (0, 18, -18, 36, -36, 54):
        rect = (rx, y - 10 + shift, w, 16)
        if not any(_overlaps(rect, other) for other in placed + obstacles):
            y += shift
            break
    else:
        rect = (rx, y - 10, w, 16)
    placed.append((rx, y - 10, w, 16))
    return (
        f'<g class="edge-label"><rect x="{rx:.1f}" y="{y - 10:.1f}" '
        f'width="{w:.1f}" height="16" rx="3" '
        f'fill="#ffffff" fill-opacity="0.92" stroke="#dddddd"/>'
        f'<text x="{x:.1f}" y="{y + 2:.1f}" text-anchor="{anchor}" font-size="11" fill="#161616">'
        f"{_x(text)}</text></g>"
    )


def _shape(box: Box, fill: str, stroke: str) -> str:
    x, y, w, h = box.x, box.y, box.w, box.h
    if box.kind == "decision":
        return (
            f'<polygon points="{x + w / 2:.1f},{y:.1f} {x + w:.1f},{y + h / 2:.1f} '
            f"{x + w / 2:.1f},{y + h:.1f} "
            f'{x:.1f},{y + h / 2:.1f}" fill="{fill}" stroke="{stroke}" stroke-width="1.6"/>'
        )
    radius = {"end": h / 2, "wait": 14, "parallel": 6, "module": 6}.get(box.kind, 4)
    dash = ' stroke-dasharray="6 4"' if box.kind in ("wait", "parallel", "module") else ""
    width = 2.4 if box.kind == "end" else 1.6
    return (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" '
        f'rx="{radius:.1f}" fill="{fill}" '
        f'stroke="{stroke}" stroke-width="{width}"{dash}/>'
    )


def _draw(box: Box, entry: dict[str, Any] | None, p: str) -> str:
    fill, stroke = STYLE[box.kind]
    sla = worst_sla(entry)
    if sla:
        fill = SLA_COLOURS[sla][0]
    title = next((text for css, text in box.lines if css == "t"), box.id)
    tooltip = f"{KIND_LABELS.get(box.kind, 'Tâche')} « {title} » ({box.id})"
    if entry and entry.get("total"):
        tooltip += " : " + count_sentence(entry)
    parts = [
        f'<g id="{p}-step-{_x(box.id)}" class="step step--{box.kind}" data-step="{_x(box.id)}">',
        f"<title>{_x(tooltip)}</title>",
        _shape(box, fill, stroke),
    ]
    if box.children:  # groups: title at the top left
        ty = box.y + 20
        for css, text in box.lines:
            weight = ' font-weight="700"' if css == "t" else ' fill="#555"'
            parts.append(f'<text x="{box.x + 14:.1f}" y="{ty:.1f}"{weight}>{_x(text)}</text>')
            ty += 17
    else:
        ty = box.y + box.h / 2 - 16 * len(box.lines) / 2 + 12
        for css, text in box.lines:
            attrs = {
                "t": ' font-weight="700" fill="#161616"',
                "id": ' font-family="monospace" font-size="11" fill="#000091"',
                "m": ' font-size="11" fill="#3a3a3a"',
            }[css]
            parts.append(f'<text x="{box.cx:.1f}" y="{ty:.1f}" text-anchor="middle"{attrs}>{_x(text)}</text>')
            ty += 16
    if sla and entry:
        colour = SLA_COLOURS[sla][1]
        bx, by = box.x + box.w - 6, box.y + 4
        if box.kind == "decision":
            bx, by = box.x + box.w * 0.75, box.y + box.h * 0.2
        parts.append(
            f'<circle cx="{bx:.1f}" cy="{by:.1f}" r="14" fill="{colour}" '
            'stroke="#fff" stroke-width="2"/>'
            f'<text x="{bx:.1f}" y="{by + 4:.1f}" text-anchor="middle" '
            'font-weight="700" fill="#fff" '
            f'class="step-count">{int(entry["total"])}</text>'
        )
    parts.append("</g>")
    return "".join(parts)


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


def _describe(definition: Definition, layers: list[list[str]], counts: dict[str, Any]) -> str:
    total = sum(int(e.get("total", 0)) for e in counts.values())
    text = (
        f"{len(definition.steps)} étapes sur {len(layers)} niveaux, début : {definition.start}"
        f", {len(definition.modules)} module(s)."
    )
    if counts:
        text += f" {total} tâche(s) ouverte(s) au total."
    return text


# --- The graph laid out by ELK in the browser --------------------------------------------------------


def _node(box: Box, entry: dict[str, Any] | None) -> dict[str, Any]:
    """One box of the graph: its kind, its text lines (css class, text), its open tasks."""
    node: dict[str, Any] = {"id": box.id, "kind": box.kind, "lines": [list(line) for line in box.lines]}
    if sla := worst_sla(entry):
        node["sla"], node["count"] = sla, int((entry or {}).get("total", 0))
        node["lines"].append(["c", count_sentence(entry or {})])
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
    for step in definition.steps:
        arrows = ", ".join(f"{label or 'puis'} → {target}" for target, label in edge_labels(definition, step))
        count = f" — {count_sentence(counts[step.id])}" if counts.get(step.id, {}).get("total") else ""
        items.append(
            f'<li data-step="{_x(step.id)}"><strong>{_x(step.title)}</strong> '
            f"<code>{_x(step.id)}</code> ({_x(KIND_LABELS.get(step.kind, step.kind))})"
            f"{' : ' + _x(arrows) if arrows else ''}{_x(count)}</li>"
        )
    for module in definition.modules:
        tasks = ", ".join(t.title for t in module.steps)
        items.append(f"<li>Module facultatif <strong>{_x(module.title)}</strong> : {_x(tasks)}</li>")
    return Markup(
        f'<div class="parcours-elk" id="{_x(dom_id)}" data-graph="{_x(json.dumps(graph, ensure_ascii=False))}" '
        f'aria-label="Schéma du parcours « {_x(definition.title)} »">'
        f'<ol class="parcours-elk__steps">{"".join(items)}</ol></div>'
    )
