// Progressive enhancement; every page works without this script. It adds:
// - how long ago each <time datetime> was (kept fresh every 30 s);
// - live rows: lists with data-stream (space-separated Server-Sent Event URLs) get each
//   new event, and the vault's rows update their Last rotated and Expired cells.
(function () {
  "use strict";
  function ago(ms) {
    var s = Math.round((Date.now() - ms) / 1000);
    var future = s < 0;
    s = Math.abs(s);
    var text = s < 45 ? "just now" :
      s < 5400 ? Math.round(s / 60) + " min" :
      s < 129600 ? Math.round(s / 3600) + " h" : Math.round(s / 86400) + " d";
    if (text === "just now") { return text; }
    return future ? "in " + text : text + " ago";
  }
  function relative(root) {
    var times = (root || document).querySelectorAll("time[datetime]");
    for (var i = 0; i < times.length; i++) {
      var t = times[i];
      var ms = Date.parse(t.getAttribute("datetime"));
      if (isNaN(ms)) { continue; }
      // A sibling, so the <time> element's own text stays the RFC 3339 timestamp.
      var rel = t.nextElementSibling;
      if (!rel || !rel.classList.contains("rel")) {
        rel = document.createElement("span");
        rel.className = "rel";
        t.parentNode.insertBefore(rel, t.nextSibling);
      }
      rel.textContent = " (" + ago(ms) + ")";
    }
  }
  function timeEl(ts) {
    var t = document.createElement("time");
    t.setAttribute("datetime", ts);
    t.title = ts;
    t.textContent = ts;
    return t;
  }
  function vaultCell(name, cls) {
    var codes = document.querySelectorAll("#placeholder-vault code[data-placeholder]");
    for (var i = 0; i < codes.length; i++) {
      if (codes[i].getAttribute("data-placeholder") === name) {
        return codes[i].closest("tr").querySelector("span." + cls);
      }
    }
    return null;
  }
  function updateVault(event) {
    var d = event.details || {};
    var cell;
    if (event.type === "placeholder_rotated" && (cell = vaultCell(d.placeholder, "last-rotated"))) {
      cell.textContent = "";
      cell.appendChild(timeEl(event.ts));
      relative(cell);
      cell.closest("tr").classList.add("changed");
    }
    if (event.type === "credential_expired" && d.kind === "placeholder" &&
        (cell = vaultCell(d.placeholder, "expires"))) {
      var badge = document.createElement("strong");
      badge.className = "badge expired";
      badge.textContent = "Expired";
      cell.insertBefore(document.createTextNode(" "), cell.firstChild);
      cell.insertBefore(badge, cell.firstChild);
      cell.closest("tr").classList.add("changed");
    }
  }
  function follow(list, url) {
    var source = new EventSource(url);
    var handler = function (msg) {
      var event;
      try { event = JSON.parse(msg.data); } catch (e) { return; }
      var li = document.createElement("li");
      li.className = "live";
      var type = document.createElement("strong");
      type.textContent = event.type;
      li.appendChild(timeEl(event.ts));
      li.appendChild(document.createTextNode(" "));
      li.appendChild(type);
      li.appendChild(document.createTextNode(" " + ((event.details && event.details.placeholder) || "")));
      list.insertBefore(li, list.firstChild);
      var empty = document.getElementById("lifecycle-empty");
      if (empty) { empty.remove(); }
      updateVault(event);
      relative(li);
    };
    ["placeholder_updated", "placeholder_rotated", "placeholder_deleted", "placeholder_denied",
     "credential_expired", "message"].forEach(function (t) {
      source.addEventListener(t, handler);
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    relative();
    setInterval(relative, 30000);
    var lists = document.querySelectorAll("[data-stream]");
    for (var i = 0; i < lists.length; i++) {
      var urls = lists[i].getAttribute("data-stream").split(/\s+/);
      for (var j = 0; j < urls.length; j++) {
        if (urls[j]) { follow(lists[i], urls[j]); }
      }
    }
  });
})();
