// Keeps relative times ("3 min ago", "in 40 s") true while a page stays open.
(function () {
  "use strict";

  function duration(seconds) {
    var units = [["d", 86400], ["h", 3600], ["min", 60]];
    for (var i = 0; i < units.length; i++) {
      if (seconds >= units[i][1]) {
        var whole = Math.floor(seconds / units[i][1]);
        var next = units[i + 1];
        var rest = next ? Math.floor((seconds % units[i][1]) / next[1]) : 0;
        return whole + " " + units[i][0] + (rest && i < 2 ? " " + rest + " " + next[0] : "");
      }
    }
    return Math.max(0, Math.floor(seconds)) + " s";
  }

  function relative(when, now) {
    var delta = (now - when) / 1000;
    if (Math.abs(delta) < 5) return "just now";
    return delta > 0 ? duration(delta) + " ago" : "in " + duration(-delta);
  }

  function refresh(root) {
    var now = Date.now();
    (root || document).querySelectorAll("time.ago[datetime]").forEach(function (el) {
      el.textContent = relative(Date.parse(el.getAttribute("datetime")), now);
    });
  }

  window.mailpulse = { duration: duration, relative: relative, refreshTimes: refresh };
  document.addEventListener("DOMContentLoaded", function () { refresh(); });
  setInterval(refresh, 10000);
})();
