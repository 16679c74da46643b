// Keeps the agents' queue fresh without reloading the page: every few seconds it fetches the server-rendered
// rows (escaped by Jinja on the server) and swaps them in. It pauses while the tab is hidden, and a session that
// has ended (401) reloads the page, which then shows the sign-in form.
(function () {
  "use strict";
  var region = document.getElementById("queue-region");
  if (!region) { return; }
  var url = region.dataset.refreshUrl;
  var every = (Number(region.dataset.refreshSeconds) || 5) * 1000;
  var timer = null;

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(refresh, every);
  }

  function refresh() {
    if (document.hidden) { schedule(); return; }
    fetch(url, { headers: { "X-Requested-With": "fetch" }, credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (response.status === 401) { window.location.reload(); return null; }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html !== null) {
          region.innerHTML = html;
          region.dataset.refreshes = String(Number(region.dataset.refreshes || 0) + 1);
        }
      })
      .catch(function () { /* the network blinked: the next round tries again */ })
      .then(schedule);
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) { refresh(); }
  });
  schedule();
})();

// The ticket page's suggested replies: "Use this reply" copies the suggestion into the reply box, where the agent
// edits it before sending. Text only (textContent → value): nothing is parsed as HTML. Text the agent has already
// typed is kept, the suggestion goes below it.
(function () {
  "use strict";
  var list = document.getElementById("suggestions");
  var box = document.getElementById("reply-body");
  if (!list || !box) { return; }
  list.addEventListener("click", function (event) {
    var button = event.target.closest("[data-use-suggestion]");
    if (!button) { return; }
    var text = button.closest(".suggestion").querySelector(".suggestion-text").textContent;
    box.value = box.value.trim() ? box.value.replace(/\s+$/, "") + "\n\n" + text : text;
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
    box.scrollIntoView({ block: "center" });
  });
})();

// A Japanese IME's Enter confirms the conversion (keydown with isComposing, or keyCode 229 in older browsers): it
// must never submit the form the text box is in (the search box, the reply box's fields).
document.addEventListener("keydown", function (event) {
  "use strict";
  if (event.key === "Enter" && (event.isComposing || event.keyCode === 229)) {
    event.preventDefault();
    event.stopPropagation();
  }
}, true);

// "3 minutes ago" stays true while a page is left open: every half minute each <time data-relative> is written
// again from its datetime, in the page's language, rounded as the server's Babel rounds (threshold 0.85: 50
// minutes is "1 hour ago"). Under a minute the server's own words ("just now") stay. Browsers without
// Intl.RelativeTimeFormat keep what the server wrote.
(function () {
  "use strict";
  if (!window.Intl || !Intl.RelativeTimeFormat) { return; }
  var format = new Intl.RelativeTimeFormat(document.documentElement.lang || "en");
  var units = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400], ["hour", 3600],
               ["minute", 60]];

  function words(seconds) {
    for (var i = 0; i < units.length; i++) {
      var value = Math.abs(seconds) / units[i][1];
      if (value >= 0.85 || units[i][0] === "minute") {
        return format.format(-Math.sign(seconds) * Math.max(1, Math.round(value)), units[i][0]);
      }
    }
    return null;
  }

  function update() {
    var now = Date.now();
    document.querySelectorAll("time[data-relative]").forEach(function (tag) {
      var seconds = (now - Date.parse(tag.getAttribute("datetime"))) / 1000;
      if (isNaN(seconds) || Math.abs(seconds) < 60) { return; }
      var text = words(seconds);
      if (text) { tag.textContent = text; }
    });
  }

  setInterval(update, 30000);
})();
