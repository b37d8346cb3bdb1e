// Live updates for the network page: the explorer subscribes to a node's newHeads and
// forwards each head as a server-sent event; on each, the latest tables are re-rendered
// by the server and swapped in. No third-party code.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var latest = document.getElementById("latest");
  if (!live || !latest || !window.EventSource) { return; }
  var refreshing = false, again = false;
  function refresh() {
    if (refreshing) { again = true; return; }
    refreshing = true;
    fetch("/fragment/latest").then(function (reply) { return reply.text(); })
      .then(function (html) {
        var holder = document.createElement("div");
        holder.innerHTML = html;
        var fresh = holder.querySelector("#latest");
        if (fresh) { latest.replaceWith(fresh); latest = fresh; }
      })
      .finally(function () { refreshing = false; if (again) { again = false; refresh(); } });
  }
  var events = new EventSource("/events");
  events.addEventListener("ready", function (event) {
    live.textContent = "live updates: subscribed to " + JSON.parse(event.data).source + "'s new blocks";
    live.dataset.state = "subscribed";
  });
  events.addEventListener("head", function (event) {
    var head = JSON.parse(event.data);
    live.textContent = "live updates: block " + head.number + " from " + head.source;
    live.dataset.state = "live";
    live.dataset.head = head.number;
    refresh();
  });
  events.addEventListener("error", function () {
    live.textContent = "live updates: reconnecting…";
    live.dataset.state = "reconnecting";
  });
})();
