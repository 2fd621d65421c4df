// Draws the plotly figures a page embeds as JSON (<script type="application/json">).
// The figures are built on the server (advisor/plots.py); every number is also in
// a table on the page, and each chart box holds a sentence saying so until it is
// drawn, so without JavaScript nothing is lost.
(function () {
  "use strict";

  // Below this width (a phone) the heatmap's colour bar and the rotated method
  // names would squeeze its cells to a few pixels: the figure grows by the room
  // the rotated names need (there is no colour bar: see asCells).
  var NARROW = 480;

  function parseColour(text) {
    var m = /rgba?\(([^)]+)\)/.exec(text || "");
    if (m) return m[1].split(",").slice(0, 3).map(Number);
    if (/^#[0-9a-f]{6}$/i.test(text)) {
      return [1, 3, 5].map(function (i) { return parseInt(text.slice(i, i + 2), 16); });
    }
    return [190, 190, 190];
  }

  // Plotly's RdBu (red for the low end, blue for the high end), used when the
  // figure names its scale instead of listing it.
  var RDBU = [
    [0, "rgb(103,0,31)"], [0.1, "rgb(178,24,43)"], [0.2, "rgb(214,96,77)"],
    [0.3, "rgb(244,165,130)"], [0.4, "rgb(253,219,199)"], [0.5, "rgb(247,247,247)"],
    [0.6, "rgb(209,229,240)"], [0.7, "rgb(146,197,222)"], [0.8, "rgb(67,147,195)"],
    [0.9, "rgb(33,102,172)"], [1, "rgb(5,48,97)"],
  ];

  function colourAt(scale, t) {
    t = Math.max(0, Math.min(1, t));
    for (var i = 1; i < scale.length; i++) {
      if (t <= scale[i][0]) {
        var a = scale[i - 1], b = scale[i];
        var f = b[0] === a[0] ? 0 : (t - a[0]) / (b[0] - a[0]);
        var ca = parseColour(a[1]), cb = parseColour(b[1]);
        return ca.map(function (v, k) { return Math.round(v + f * (cb[k] - v)); });
      }
    }
    return parseColour(scale[scale.length - 1][1]);
  }

  // Points as the page's tables write them: one decimal, no trailing ".0" ("+3.5",
  // "-1"); an answer that did not count for a method leaves its cell blank.
  function signed(v) {
    var r = Math.round(Math.abs(v) * 10) / 10;
    if (r === 0) return "";
    return (v > 0 ? "+" : "-") + String(r);
  }

  // A heatmap drawn as coloured rectangles (layout shapes) under a text trace.
  // Plotly paints heatmaps on a canvas and shows it as a data: image, which the
  // page's Content-Security-Policy (img-src 'self') refuses; shapes are plain SVG.
  function asCells(figure) {
    var layout = figure.layout || {};
    var shapes = (layout.shapes || []).slice();
    figure.data = figure.data.map(function (trace) {
      if (trace.type !== "heatmap") return trace;
      var xs = trace.x || [], ys = trace.y || [], z = trace.z || [];
      var scale = Array.isArray(trace.colorscale) ? trace.colorscale : RDBU;
      var lo = trace.zmin, hi = trace.zmax;
      if (lo === undefined || hi === undefined) {
        var flat = [].concat.apply([], z);
        lo = Math.min.apply(null, flat);
        hi = Math.max.apply(null, flat);
      }
      var cx = [], cy = [], text = [], colours = [], values = [];
      ys.forEach(function (yName, i) {
        xs.forEach(function (xName, j) {
          var v = Number((z[i] || [])[j] || 0);
          var rgb = colourAt(scale, hi === lo ? 0.5 : (v - lo) / (hi - lo));
          shapes.push({
            type: "rect", xref: "x", yref: "y", layer: "below",
            x0: j - 0.5, x1: j + 0.5, y0: i - 0.5, y1: i + 0.5,
            fillcolor: "rgb(" + rgb.join(",") + ")", line: { width: 1, color: "#ffffff" },
          });
          var light = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] > 150;
          cx.push(xName); cy.push(yName); text.push(signed(v)); values.push(v);
          colours.push(light ? "#1b1f24" : "#ffffff");
        });
      });
      layout.xaxis = Object.assign({}, layout.xaxis, {
        type: "category", range: [-0.5, xs.length - 0.5], showgrid: false, zeroline: false,
      });
      layout.yaxis = Object.assign({}, layout.yaxis, {
        type: "category", autorange: false, range: [ys.length - 0.5, -0.5],
        showgrid: false, zeroline: false,
      });
      return {
        type: "scatter", mode: "text", x: cx, y: cy, text: text, customdata: values,
        textfont: { color: colours, size: (trace.textfont && trace.textfont.size) || 12 },
        hovertemplate: "%{y} \u2192 %{x}: %{text}<extra></extra>",
        showlegend: false, name: trace.name || "",
      };
    });
    layout.shapes = shapes;
    figure.layout = layout;
    return figure;
  }

  function forNarrow(figure) {
    var cells = figure.data.some(function (t) { return t.mode === "text"; });
    if (cells) {
      var layout = figure.layout;
      layout.height = (layout.height || 350) + 60;
      layout.margin = Object.assign({}, layout.margin, { l: 10, r: 4 });
      layout.xaxis = Object.assign({}, layout.xaxis, { tickangle: -90 });
      figure.data.forEach(function (t) {
        if (t.mode === "text") t.textfont = Object.assign({}, t.textfont, { size: 10 });
      });
    }
    return figure;
  }

  function draw(el) {
    var source = document.getElementById(el.dataset.figure);
    if (!source || !window.Plotly) return;
    var figure = JSON.parse(source.textContent);
    if (!figure) return;
    figure = asCells(figure);
    if (el.clientWidth < NARROW) figure = forNarrow(figure);
    // The sentence shown without JavaScript gives way to the drawing.
    el.querySelectorAll(".chart-fallback").forEach(function (p) { p.remove(); });
    window.Plotly.newPlot(el, figure.data, figure.layout, {
      responsive: true,
      displaylogo: false,
      displayModeBar: false,
    });
  }

  function drawAll(root) {
    root.querySelectorAll("[data-figure]").forEach(draw);
  }

  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  // Fragments swapped in by htmx may carry charts too.
  document.addEventListener("htmx:afterSwap", function (event) { drawAll(event.target); });
})();
