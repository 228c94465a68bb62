// Progressive enhancement: lists with data-stream follow Server-Sent Events.
// Pages work without this script; it only adds live rows.
(function () {
  "use strict";
  function follow(list) {
    var source = new EventSource(list.getAttribute("data-stream"));
    source.onmessage = null;
    var handler = function (msg) {
      var event;
      try { event = JSON.parse(msg.data); } catch (e) { return; }
      var li = document.createElement("li");
      li.className = "live";
      var time = document.createElement("time");
      time.textContent = event.ts;
      var type = document.createElement("strong");
      type.textContent = event.type;
      li.appendChild(time);
      li.appendChild(document.createTextNode(" "));
      li.appendChild(type);
      li.appendChild(document.createTextNode(" " + ((event.details && event.details.placeholder) || "")));
      list.insertBefore(li, list.firstChild);
    };
    ["placeholder_updated", "placeholder_rotated", "placeholder_deleted", "placeholder_denied", "message"].forEach(function (t) {
      source.addEventListener(t, handler);
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var lists = document.querySelectorAll("[data-stream]");
    for (var i = 0; i < lists.length; i++) { follow(lists[i]); }
  });
})();
