// Draws the plotly figures a page embeds as JSON (<script type="application/json">).
// The figures are built on the server (advisor/plots.py); every number is also in
// a table on the page, so without JavaScript nothing is lost.
(function () {
  "use strict";

  function draw(el) {
    var source = document.getElementById(el.dataset.figure);
    if (!source || !window.Plotly) return;
    var figure = JSON.parse(source.textContent);
    if (!figure) return;
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
