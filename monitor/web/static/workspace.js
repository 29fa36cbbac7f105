/* The workspace's behaviour: row selection on the review page, competitor colour swatches, the
 * product chart. No inline script anywhere (the CSP forbids it); htmx does the partial updates. */
(function () {
  "use strict";

  function paintSwatches(root) {
    root.querySelectorAll(".swatch[data-colour]").forEach(function (el) {
      el.style.backgroundColor = el.getAttribute("data-colour");  // CSSOM: allowed by the CSP
    });
  }

  function wireSelection(root) {
    var all = root.querySelector("#select-page");
    if (!all || all.dataset.wired) { return; }
    all.dataset.wired = "1";
    var boxes = function () { return root.querySelectorAll("input[name=ids]"); };
    all.addEventListener("change", function () {
      boxes().forEach(function (b) { b.checked = all.checked; });
    });
    var filtered = root.querySelector("#scope-filtered");
    root.addEventListener("change", function (event) {
      if (event.target && event.target.name === "ids" && event.target.checked && filtered) {
        root.querySelector("input[name=scope][value=selected]").checked = true;
      }
    });
    var form = root.querySelector("#decide");
    if (form) {
      form.addEventListener("submit", function (event) {
        var scope = form.querySelector("input[name=scope]:checked");
        var action = event.submitter ? event.submitter.value : "decide";
        if (scope && scope.value === "filtered") {
          var count = document.getElementById("count");
          if (!window.confirm(action + " " + (count ? count.textContent : "all matching suggestions") + "?")) {
            event.preventDefault();
          }
        }
      });
    }
  }

  function drawChart() {
    var data = document.getElementById("chart-data");
    var target = document.getElementById("product-chart");
    if (!data || !target || !window.pricemonCharts) { return; }
    window.pricemonCharts(JSON.parse(data.textContent), function () { return target; });
  }

  function wire(root) { paintSwatches(root); wireSelection(root); }

  /* A form with data-confirm (deactivating a product) asks first; the text is the template's, escaped there. */
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form && form.getAttribute ? form.getAttribute("data-confirm") : null;
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });

  document.addEventListener("DOMContentLoaded", function () { wire(document); drawChart(); });
  document.body.addEventListener("htmx:afterSwap", function () { wire(document); });
})();
