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
