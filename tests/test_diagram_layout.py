"""Definition diagrams laid out by ELK (elkjs) in Debian's chromium: for every catalog definition,
plain and as a heat map (open tasks counted on every task, as on the GTO dashboard), no arrow label
covers a box, every text stays in its box, and the whole drawing lies inside the SVG's frame (its
viewBox). The page is the same container the server renders, with the same static files
(elk.bundled.js from node_modules, admin_ui/static/diagram.js)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from admin_ui.diagram import definition_graph, render_definition_diagram
from definitions.loader import load_file
from definitions.territory import CATALOG_DIR
from tests.browser import browser_page, screenshot

ROOT = Path(__file__).resolve().parents[1]
ELK = ROOT / "node_modules" / "elkjs" / "lib" / "elk.bundled.js"
SCRIPT = ROOT / "admin_ui" / "static" / "diagram.js"
CATALOG = sorted(CATALOG_DIR.glob("*.yaml"))

MEASURE = """
() => {
  const svg = document.querySelector('.parcours-elk svg');
  const [, , width, height] = svg.getAttribute('viewBox').split(' ').map(Number);
  const box = (g) => g.getAttribute('data-box').split(',').map(Number);
  const nodes = [...svg.querySelectorAll('.elk-node')].map((g) => ({id: g.dataset.step, box: box(g),
    group: g.matches('.elk-node--parallel, .elk-node--module'), heat: g.dataset.heat || null,
    count: [...g.querySelectorAll(':scope > .elk-text--c')].map((t) => t.textContent)}));
  const labels = [...svg.querySelectorAll('.elk-label')].map((g) => ({text: g.textContent, box: box(g),
    drawn: (() => { const b = g.getBBox(); return [b.x, b.y, b.width, b.height]; })()}));
  const texts = [...svg.querySelectorAll('.elk-node > text')].map((t) => {
    const b = t.getBBox(); return {text: t.textContent, box: [b.x, b.y, b.width, b.height],
      node: box(t.parentNode)}; });
  const all = svg.getBBox();
  return {width, height, nodes, labels, texts, all: [all.x, all.y, all.width, all.height],
          hidden: document.querySelector('.parcours-elk__steps').hidden};
}
"""


def overlap(a: list[float], b: list[float]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


HEAT = ("on_time", "due_soon", "overdue", "escalated")


def heat_counts(definition: Any) -> dict[str, dict[str, Any]]:
    """Open tasks on every task of the definition, each heat level in turn, some late: the longest
    count lines (« 12 ouvertes dont 3 en retard ») in every kind of box, branches and modules too."""
    counts: dict[str, dict[str, Any]] = {}
    for i, task in enumerate(definition.all_tasks()):
        level = HEAT[i % len(HEAT)]
        entry = dict.fromkeys(("on_time", "due_soon", "overdue", "escalated"), 0)
        entry.update({"total": 12, "on_time": 9, level: 3} if level != "on_time" else {"total": 1, "on_time": 1})
        counts[task.id] = entry
    return counts


def inside(inner: list[float], outer: list[float], slack: float = 0.5) -> bool:
    return (
        inner[0] >= outer[0] - slack
        and inner[1] >= outer[1] - slack
        and inner[0] + inner[2] <= outer[0] + outer[2] + slack
        and inner[1] + inner[3] <= outer[1] + outer[3] + slack
    )


def test_the_server_describes_every_step_and_arrow() -> None:
    definition = load_file(CATALOG_DIR / "rsa_socio_pro.yaml")
    graph = definition_graph(definition)
    ids = {n["id"] for n in graph["nodes"]} | {c["id"] for n in graph["nodes"] for c in n.get("children", [])}
    assert {t.id for t in definition.all_tasks()} <= ids
    assert {s.id for s in definition.steps} <= ids
    assert "Personne orientée" in {e["label"] for e in graph["edges"]}
    fallback = str(render_definition_diagram(definition))
    assert "<svg" not in fallback and 'data-step="orientation"' in fallback  # the list without JavaScript


def test_the_heat_map_counts_are_in_the_graph_and_the_list() -> None:
    definition = load_file(CATALOG_DIR / "rsa_socio_pro.yaml")
    counts = heat_counts(definition)
    graph = definition_graph(definition, counts)
    nodes = {n["id"]: n for n in graph["nodes"]} | {c["id"]: c for n in graph["nodes"] for c in n.get("children", [])}
    for task_id, entry in counts.items():
        node = nodes[task_id]
        assert node["count"] == entry["total"] and node["heat"] in HEAT, node
        assert node["lines"][-1][0] == "c" and node["lines"][-1][1].startswith(f"{entry['total']} ouverte"), node
    assert all("heat" not in n for n in nodes.values() if n["id"] not in counts)
    fallback = str(render_definition_diagram(definition, counts=counts)).partition("<ol")[2]
    listed = sum(fallback.count(sentence) for sentence in ("12 tâches ouvertes", "1 tâche ouverte"))
    assert listed == len(counts)  # branches and module tasks included


@pytest.mark.parametrize("heat", [False, True], ids=["plain", "heat"])
@pytest.mark.parametrize("path", CATALOG, ids=lambda p: p.stem)
async def test_elk_diagram_has_no_label_over_a_box_and_fits_its_frame(path: Path, heat: bool, tmp_path: Path) -> None:
    assert ELK.exists(), "elkjs missing: run `make setup` (npm ci)"
    definition = load_file(path)
    counts = heat_counts(definition) if heat else None
    html = tmp_path / "diagram.html"
    html.write_text(
        '<!doctype html><html lang="fr"><head><meta charset="utf-8"></head><body>'
        f"{render_definition_diagram(definition, counts=counts, dom_id='schema')}"
        f'<script src="{ELK.as_uri()}"></script><script src="{SCRIPT.as_uri()}"></script></body></html>',
        encoding="utf-8",
    )
    async with browser_page() as page:
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(html.as_uri())
        await page.wait_for_selector(".parcours-elk[data-drawn=done] svg")
        found: dict[str, Any] = await page.evaluate(MEASURE)
        await screenshot(page, f"diagram-{path.stem}{'-heat' if heat else ''}")
    assert not errors, errors
    assert found["hidden"], "the fallback list stays visible once the diagram is drawn"
    frame = [0.0, 0.0, found["width"], found["height"]]
    assert inside(found["all"], frame), (found["all"], frame)
    drawn = {n["id"] for n in found["nodes"]}
    assert {s.id for s in definition.steps} <= drawn and {t.id for t in definition.all_tasks()} <= drawn
    heated = {n["id"]: n for n in found["nodes"] if n["heat"]}
    assert set(heated) == set(counts or {}), heated
    for node in heated.values():
        assert len(node["count"]) == 1 and " ouverte" in node["count"][0], node
    for node in found["nodes"]:
        assert inside(node["box"], frame), node
    for label in found["labels"]:
        assert inside(label["box"], frame) and inside(label["drawn"], label["box"], slack=1.0), label
        # A label never covers a step; it may lie wholly inside a group (parallel group, module), never across its edge.
        covered = [
            n["id"]
            for n in found["nodes"]
            if overlap(label["box"], n["box"]) and not (n["group"] and inside(label["box"], n["box"], 0))
        ]
        assert not covered, (label, covered)
    for text in found["texts"]:
        assert inside(text["box"], text["node"], slack=1.0), text
