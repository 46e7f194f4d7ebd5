// kyu dashboard: optional enhancements. Every page works without this
// script. With it: "select all" for job rows, and live pages: a page that
// carries #live listens to /live/events (one stream per tab; the server
// follows the event log once for every viewer) and reloads itself when
// one of its jobs changed (a job's page within 1 s, a list at most every
// 5 s), never while the operator is
// selecting rows or typing, nor in the first 5 s of an action's notice.
// A running job's page also appends its command output as it is written.
// The Live page prepends new matching events instead of reloading: it
// fetches its own rows after the newest shown (rendered and escaped by the
// server) and moves them in. Times of schedules get the viewer's local time.
(function () {
  "use strict";
  var loadedAt = Date.now();
  function busy() {
    // A notice left by the operator's last action stays readable for 5 s
    // before a live reload replaces the page (the notice is shown once).
    if (document.querySelector(".notice") && Date.now() - loadedAt < 5000) {
      return true;
    }
    var el = document.activeElement;
    if (el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT")) {
      return true;
    }
    return document.querySelector("input[name=ids]:checked") !== null;
  }
  document.addEventListener("DOMContentLoaded", function () {
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
    document.querySelectorAll("time[data-local]").forEach(function (t) {
      var d = new Date(t.getAttribute("datetime"));
      if (isNaN(d.getTime())) { return; }
      var s = document.createElement("span");
      s.className = "hint local";
      s.textContent = " (your time: " + d.toLocaleString(undefined,
        { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", timeZoneName: "short" }) + ")";
      t.parentNode.insertBefore(s, t.nextSibling);
    });
    var live = document.getElementById("live");
    if (!live || !window.EventSource) { return; }
    if (live.hasAttribute("data-events")) { liveEvents(live); return; }
    var job = live.getAttribute("data-job");
    var pending = null;
    var after = live.getAttribute("data-after") || "";
    var params = [];
    if (after) { params.push("after=" + encodeURIComponent(after)); }
    // A running job's output: the stream sends what is written after the
    // page's own text (its byte counts), and it is appended here.
    var tail = job ? document.querySelector(".tail[data-attempt]") : null;
    if (tail) {
      params.push("job=" + encodeURIComponent(job));
      ["attempt", "stdout", "stderr"].forEach(function (k) {
        params.push(k + "=" + encodeURIComponent(tail.getAttribute("data-" + k)));
      });
    }
    var source = new EventSource("/live/events" + (params.length ? "?" + params.join("&") : ""));
    source.addEventListener("output", function (msg) {
      var o;
      try { o = JSON.parse(msg.data); } catch (err) { return; }
      if (!tail || String(o.attempt) !== tail.getAttribute("data-attempt")) {
        // Another attempt began: the page shows it once reloaded.
        if (!pending) { pending = setTimeout(function () { source.close(); window.location.reload(); }, 1000); }
        return;
      }
      ["stdout", "stderr"].forEach(function (k) {
        var pre = tail.querySelector("pre[data-stream=" + k + "]");
        // Text, never HTML: the output is the command's, not ours.
        if (pre && o[k]) { pre.appendChild(document.createTextNode(o[k])); }
        tail.setAttribute("data-" + k, String(o[k + "_bytes"]));
      });
    });
    // Leaving the page closes its stream at once: an open stream would hold
    // one of the browser's few connections to this host.
    window.addEventListener("pagehide", function () { source.close(); });
    source.addEventListener("change", function (msg) {
      if (job) {
        try {
          var e = JSON.parse(msg.data);
          if (e.job !== undefined && e.job !== null && String(e.job) !== job) { return; }
        } catch (err) { /* reload anyway */ }
      }
      if (pending) { return; }
      var delay = job ? 1000 : 5000;
      pending = setTimeout(function again() {
        if (busy()) { pending = setTimeout(again, delay); return; }
        source.close();
        window.location.reload();
      }, delay);
    });
  });
  // The Live page: one stream; a matching change fetches the rows after the
  // newest shown (at most one fetch at a time, another after it if more came).
  function liveEvents(live) {
    var tbody = document.getElementById("events");
    if (!tbody || !window.fetch || !window.DOMParser) { return; }
    var want = {};
    ["queue", "kind", "job", "type"].forEach(function (k) {
      var v = live.getAttribute("data-filter-" + k);
      if (v) { want[k] = v; }
    });
    var fetching = false;
    var again = false;
    function pull() {
      if (fetching) { again = true; return; }
      fetching = true;
      var top = tbody.querySelector("tr[data-event]");
      var url = new URL(window.location.href);
      url.searchParams.delete("before");
      url.searchParams.set("after", top ? top.getAttribute("data-event") : live.getAttribute("data-after"));
      fetch(url.pathname + url.search, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : ""; })
        .then(function (text) {
          var doc = new DOMParser().parseFromString(text, "text/html");
          var rows = doc.querySelectorAll("#events tr[data-event]");
          var first = tbody.firstChild;
          for (var i = 0; i < rows.length; i++) {
            var id = rows[i].getAttribute("data-event");
            if (tbody.querySelector("tr[data-event=\"" + id + "\"]")) { continue; }
            tbody.insertBefore(document.importNode(rows[i], true), first);
          }
          // Keep the page small: the oldest rows go (the "older" link has them).
          var all = tbody.querySelectorAll("tr[data-event]");
          for (var j = 500; j < all.length; j++) { all[j].remove(); }
          if (rows.length) {
            var empty = document.querySelector("p.empty");
            if (empty) { empty.remove(); }
          }
        })
        .catch(function () { /* the next change tries again */ })
        .then(function () {
          fetching = false;
          if (again) { again = false; pull(); }
        });
    }
    var source = new EventSource("/live/events?after=" + encodeURIComponent(live.getAttribute("data-after") || ""));
    window.addEventListener("pagehide", function () { source.close(); });
    source.addEventListener("change", function (msg) {
      var e = {};
      try { e = JSON.parse(msg.data); } catch (err) { /* fetch anyway */ }
      if (e.type !== undefined) {
        if (want.queue && e.queue !== want.queue) { return; }
        if (want.kind && e.kind !== want.kind) { return; }
        if (want.job && String(e.job) !== want.job) { return; }
        if (want.type && e.type !== want.type) { return; }
      }
      pull();
    });
  }
})();
