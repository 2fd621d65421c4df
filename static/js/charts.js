// Draws the plotly figures a page embeds as JSON (<script type="application/json">).
// The figures are built on the server (advisor/plots.py); every number is also in
// a table on the page, so without JavaScript nothing is lost.
(function () {
  "use strict";

  // Below this width (a phone) the heatmap's colour bar and the rotated method
  // names would squeeze its cells to a few pixels: the bar goes (the caption says
  // blue gives, red takes, and each cell prints its number) and the figure grows
  // by the room the rotated names need.
  var NARROW = 480;

  function forNarrow(figure) {
    var heatmap = false;
    figure.data.forEach(function (trace) {
      if (trace.type === "heatmap") {
        heatmap = true;
        trace.showscale = false;
        trace.textfont = Object.assign({}, trace.textfont, { size: 10 });
      }
    });
    if (heatmap) {
      var layout = figure.layout;
      layout.height = (layout.height || 350) + 60;
      layout.margin = Object.assign({}, layout.margin, { l: 10, r: 4 });
      layout.xaxis = Object.assign({}, layout.xaxis, { tickangle: -90 });
    }
    return figure;
  }

  function draw(el) {
    var source = document.getElementById(el.dataset.figure);
    if (!source || !window.Plotly) return;
    var figure = JSON.parse(source.textContent);
    if (!figure) return;
    if (el.clientWidth < NARROW) figure = forNarrow(figure);
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
