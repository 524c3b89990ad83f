/* Definition diagrams: the server describes the graph (admin_ui/diagram.py, data-graph), ELK
   (elkjs, /static/elk/elk.bundled.js) lays it out, this file draws the SVG. Text is measured
   here, so boxes and arrow labels are sized to their words; ELK's layered algorithm places the
   labels as their own items, so a label never covers a box, and the viewBox is ELK's own size.
   With open tasks (the GTO heat map) a box carries data-heat (its worst deadline status), is
   filled with that status's tint and shows its count in the status's dark colour (contrast over
   4.5:1 on the tint). Without JavaScript the container keeps its list of steps. */
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var FONT = "Marianne, Arial, sans-serif";
  var SIZES = { t: 13, id: 11, m: 11.5, c: 11.5, label: 11.5 };
  var WEIGHTS = { t: "700", id: "400", m: "400", c: "700", label: "400" };
  var FILL = { t: "#161616", id: "#666666", m: "#3a3a3a", c: "#161616", label: "#3a3a3a" };
  var STYLE = {
    task: ["#f5f5fe", "#000091"], branch: ["#ffffff", "#000091"], parallel: ["#fbfbff", "#6a6af4"],
    decision: ["#fef7da", "#716043"], wait: ["#f6f6f6", "#666666"], end: ["#e3e3fd", "#000091"],
    module: ["#fbfbfb", "#929292"]
  };
  var HEAT = {  // heat level: [box fill, border and count colour], DSFR error / warning / success
    escalated: ["#ffe9e9", "#ce0500"], overdue: ["#ffe9e9", "#ce0500"], due_soon: ["#ffe9e6", "#b34000"],
    on_time: ["#dffee6", "#18753c"]
  };
  var arrow = "elk-arrow";  // the arrow marker's id, one per diagram (set by render)
  var LINE = 17, PAD = 10, COMPOUND_TOP = 48;

  function el(name, attrs, parent) {
    var node = document.createElementNS(NS, name);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (parent) parent.appendChild(node);
    return node;
  }

  function measurer() {
    var svg = el("svg", { width: "0", height: "0", "aria-hidden": "true" });
    svg.style.position = "absolute";
    svg.style.visibility = "hidden";
    document.body.appendChild(svg);
    var text = el("text", { "font-family": FONT }, svg);
    return {
      width: function (value, kind) {
        text.setAttribute("font-size", SIZES[kind] || 12);
        text.setAttribute("font-weight", WEIGHTS[kind] || "400");
        text.textContent = value;
        return text.getComputedTextLength();
      },
      done: function () { svg.remove(); }
    };
  }

  function textWidth(lines, measure) {
    return lines.reduce(function (w, line) { return Math.max(w, measure.width(line[1], line[0])); }, 0);
  }

  function toElk(node, measure) {
    var lines = node.lines || [];
    var width = Math.ceil(textWidth(lines, measure)) + 2 * PAD;
    var item = { id: node.id, layoutOptions: {}, _source: node };
    if (node.kind === "decision") width += 40;  // the hexagon's points
    if (node.children) {
      item.children = node.children.map(function (child) { return toElk(child, measure); });
      item.edges = (node.edges || []).map(function (edge) { return edgeOf(edge, measure); });
      // The group's title is its node label: ELK sizes the group so the title fits.
      item.labels = [{ text: "", width: width, height: lines.length * LINE,
        layoutOptions: { "elk.nodeLabels.placement": "[H_LEFT, V_TOP, INSIDE]" } }];
      item.layoutOptions = {
        "elk.padding": "[top=14,left=14,bottom=14,right=14]",
        "elk.direction": node.kind === "parallel" ? "RIGHT" : "DOWN",
        "elk.nodeSize.constraints": "[NODE_LABELS]",
        "elk.nodeLabels.placement": "[H_LEFT, V_TOP, INSIDE]"
      };
    } else {
      item.width = Math.max(width, 120);
      item.height = lines.length * LINE + 2 * PAD - 4;
    }
    return item;
  }

  function edgeOf(edge, measure) {
    var item = { id: edge.id, sources: [edge.source], targets: [edge.target], _source: edge };
    if (edge.label) {
      item.labels = [{
        text: edge.label,
        width: Math.ceil(measure.width(edge.label, "label")) + 8,
        height: 16,
        layoutOptions: { "elk.edgeLabels.placement": "CENTER" }
      }];
    }
    return item;
  }

  function drawText(group, lines, x, y, width, anchorCenter, heat) {
    lines.forEach(function (line, i) {
      var text = el("text", {
        x: anchorCenter ? x + width / 2 : x + PAD,
        y: y + PAD + 9 + i * LINE,
        "font-family": FONT,
        "font-size": SIZES[line[0]] || 12,
        "font-weight": WEIGHTS[line[0]] || "400",
        fill: line[0] === "c" && heat ? heat[1] : FILL[line[0]] || "#161616",
        "text-anchor": anchorCenter ? "middle" : "start",
        "dominant-baseline": "middle",
        "class": "elk-text elk-text--" + line[0]
      }, group);
      text.textContent = line[1];
    });
  }

  function drawNode(svg, node, dx, dy) {
    var source = node._source, x = dx + node.x, y = dy + node.y, w = node.width, h = node.height;
    var style = STYLE[source.kind] || STYLE.task;
    var heat = source.heat ? HEAT[source.heat] : null;
    var group = el("g", {
      "class": "elk-node elk-node--" + source.kind + (heat ? " elk-node--heat-" + source.heat : ""),
      "data-step": source.id,
      "data-box": [x, y, w, h].map(function (v) { return v.toFixed(1); }).join(",")
    }, svg);
    if (heat) group.setAttribute("data-heat", source.heat);
    var common = { fill: heat ? heat[0] : style[0], stroke: heat ? heat[1] : style[1],
      "stroke-width": source.start || heat ? 3 : 1.5 };
    if (source.kind === "parallel" || source.kind === "module" || source.kind === "wait") {
      common["stroke-dasharray"] = "6 4";
    }
    if (source.kind === "decision") {
      common.points = [[x + 18, y], [x + w - 18, y], [x + w, y + h / 2], [x + w - 18, y + h], [x + 18, y + h],
        [x, y + h / 2]].map(function (p) { return p.join(","); }).join(" ");
      el("polygon", common, group);
    } else {
      common.x = x; common.y = y; common.width = w; common.height = h;
      common.rx = source.kind === "end" ? h / 2 : 6;
      if (source.kind === "end") common.rx = Math.min(18, h / 2);
      el("rect", common, group);
    }
    var title = el("title", {}, group);
    title.textContent = source.lines.filter(function (line) { return line[0] !== "c"; })
      .map(function (line) { return line[1]; }).concat(source.detail ? [source.detail] : []).join(" — ");
    drawText(group, source.lines, x + (source.kind === "decision" ? 20 : 0), y, w - (source.kind === "decision" ? 40 : 0),
      source.kind === "decision", heat);
    (node.children || []).forEach(function (child) { drawNode(svg, child, x, y); });
    (node.edges || []).forEach(function (edge) { drawEdge(svg, edge, x, y); });
  }

  function drawEdge(svg, edge, dx, dy) {
    (edge.sections || []).forEach(function (section) {
      var points = [section.startPoint].concat(section.bendPoints || [], [section.endPoint]);
      var back = edge._source && edge._source.back;
      el("polyline", {
        points: points.map(function (p) { return (dx + p.x).toFixed(1) + "," + (dy + p.y).toFixed(1); }).join(" "),
        fill: "none", stroke: "#3a3a3a", "stroke-width": 1.3, "marker-end": "url(#" + arrow + ")",
        "stroke-dasharray": back ? "5 4" : "none", "class": "elk-edge",
        "data-edge": edge.id
      }, svg);
    });
    (edge.labels || []).forEach(function (label) {
      var group = el("g", {
        "class": "elk-label",
        "data-box": [dx + label.x, dy + label.y, label.width, label.height].map(function (v) { return v.toFixed(1); }).join(",")
      }, svg);
      el("rect", { x: dx + label.x, y: dy + label.y, width: label.width, height: label.height, rx: 3, fill: "#ffffff",
        "fill-opacity": 0.9 }, group);
      var text = el("text", {
        x: dx + label.x + label.width / 2, y: dy + label.y + label.height / 2, "font-family": FONT,
        "font-size": SIZES.label, fill: FILL.label, "text-anchor": "middle", "dominant-baseline": "middle"
      }, group);
      text.textContent = label.text;
    });
  }

  function render(container) {
    if (container.dataset.drawn || typeof ELK === "undefined") return Promise.resolve();
    container.dataset.drawn = "pending";
    var graph = JSON.parse(container.getAttribute("data-graph"));
    var measure = measurer();
    var root = {
      id: "root",
      layoutOptions: {
        "elk.algorithm": "layered",
        "elk.direction": "DOWN",
        "elk.hierarchyHandling": "SEPARATE_CHILDREN",
        "elk.edgeRouting": "ORTHOGONAL",
        "elk.padding": "[top=16,left=16,bottom=16,right=16]",
        "elk.spacing.nodeNode": "28",
        "elk.layered.spacing.nodeNodeBetweenLayers": "44",
        "elk.spacing.edgeLabel": "6",
        "elk.spacing.edgeNode": "16",
        "elk.layered.spacing.edgeNodeBetweenLayers": "16",
        "elk.layered.nodePlacement.strategy": "BRANDES_KOEPF",
        "elk.layered.considerModelOrder.strategy": "NODES_AND_EDGES"
      },
      children: graph.nodes.map(function (node) { return toElk(node, measure); }),
      edges: graph.edges.map(function (edge) { return edgeOf(edge, measure); })
    };
    measure.done();
    return new ELK().layout(root).then(function (laid) {
      var width = Math.ceil(laid.width), height = Math.ceil(laid.height);
      var svg = el("svg", {
        viewBox: "0 0 " + width + " " + height, width: width, height: height, role: "img",
        "aria-label": container.getAttribute("aria-label") || "Schéma du parcours", "class": "elk-diagram"
      });
      var defs = el("defs", {}, svg);
      arrow = (container.id || "elk") + "-arrow";
      var marker = el("marker", { id: arrow, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7,
        markerHeight: 7, orient: "auto-start-reverse" }, defs);
      el("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#3a3a3a" }, marker);
      (laid.children || []).forEach(function (node) { drawNode(svg, node, 0, 0); });
      (laid.edges || []).forEach(function (edge) { drawEdge(svg, edge, 0, 0); });
      var list = container.querySelector(".parcours-elk__steps");
      if (list) list.hidden = true;
      container.appendChild(svg);
      container.dataset.drawn = "done";
    }).catch(function (error) {
      container.dataset.drawn = "failed";  // the list of steps stays
      if (window.console) console.error("diagram layout failed", error);
    });
  }

  function renderAll(scope) {
    var containers = (scope || document).querySelectorAll(".parcours-elk[data-graph]");
    return Promise.all(Array.prototype.map.call(containers, render));
  }

  window.parcoursDiagrams = renderAll;
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { renderAll(); });
  } else {
    renderAll();
  }
  document.addEventListener("htmx:afterSettle", function (event) { renderAll(event.target); });
})();
