// Polls the ticket's public JSON view once a second and shows the status, team and next step as soon as the
// worker has routed it. Only textContent is written: nothing from the response is ever parsed as HTML.
(function () {
  "use strict";
  var list = document.getElementById("ticket");
  if (!list) { return; }
  var labels = JSON.parse(list.dataset.labels);
  var nextSteps = JSON.parse(list.dataset.next);
  var statusCell = document.getElementById("status");
  var pending = { received: true, queued: true };

  function show(ticket) {
    statusCell.textContent = labels[ticket.status] || ticket.status;
    statusCell.dataset.status = ticket.status;
    document.getElementById("route").textContent = ticket.route ? (labels[ticket.route] || ticket.route) : "—";
    document.getElementById("next-step").textContent = nextSteps[ticket.status] || "";
  }

  function poll() {
    fetch(list.dataset.apiUrl, { headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (ticket) {
        if (ticket) { show(ticket); }
        if (!ticket || pending[ticket.status]) { setTimeout(poll, 1000); }
      })
      .catch(function () { setTimeout(poll, 1000); });
  }

  if (pending[statusCell.dataset.status]) { setTimeout(poll, 1000); }
})();
