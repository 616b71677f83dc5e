// langgraph-runstore ui: live refresh of active runs, tidy filter URLs, cancel confirmation.
// No framework and no network beyond this server.
(function () {
  "use strict";

  // -- live refresh: a region marked data-live is fetched again until nothing in it is active
  var poll = parseInt(document.body.getAttribute("data-poll"), 10) || 1500;
  var failures = 0;
  var timer = null;

  function schedule() {
    var live = document.getElementById("live");
    if (!live || !live.hasAttribute("data-live")) return;
    var wait = failures ? Math.min(poll * Math.pow(2, failures), 15000) : poll;
    timer = window.setTimeout(refresh, wait);
  }

  function refresh() {
    timer = null;
    fetch(window.location.href, { cache: "no-store", credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (text) {
        var doc = new DOMParser().parseFromString(text, "text/html");
        var fresh = doc.getElementById("live");
        var current = document.getElementById("live");
        if (fresh && current) {
          current.replaceWith(document.adoptNode(fresh));
          document.title = doc.title;
        }
        failures = 0;
        schedule();
      })
      .catch(function () {
        failures += 1;
        var current = document.getElementById("live");
        if (current && !current.querySelector(".live-lost")) {
          var note = document.createElement("p");
          note.className = "live-lost";
          note.textContent = "lost the server; retrying…";
          current.prepend(note);
        }
        schedule();
      });
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden && timer) { window.clearTimeout(timer); timer = null; }
    else if (!document.hidden && !timer) { schedule(); }
  });
  schedule();

  // -- filters: the custom time range shows when chosen; empty fields stay out of the URL
  document.querySelectorAll("form[data-clean]").forEach(function (form) {
    var select = form.querySelector("select[data-window]");
    var range = form.querySelector("[data-custom-range]");
    function showRange() {
      if (!select || !range) return;
      var option = select.options[select.selectedIndex];
      var custom = option && option.hasAttribute("data-custom");
      range.hidden = !custom;
      if (!custom) range.querySelectorAll("input").forEach(function (i) { i.value = ""; });
    }
    if (select && range) {
      if (!range.hasAttribute("data-open")) range.hidden = true;
      select.addEventListener("change", showRange);
    }
    form.addEventListener("submit", function () {
      form.querySelectorAll("input, select").forEach(function (field) {
        if (field.name && field.value === "" && field.type !== "checkbox") field.disabled = true;
      });
      window.setTimeout(function () {
        form.querySelectorAll(":disabled").forEach(function (f) { f.disabled = false; });
      }, 0);
    });
  });

  // -- cancel asks first
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });
})();
