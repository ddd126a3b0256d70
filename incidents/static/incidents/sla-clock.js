// Keeps every SLA clock on the page ticking between page loads. The server renders the
// authoritative label; this only counts down from the deadline it rendered.
(function () {
  "use strict";
  const WORDS = { ack: "Ack", resolve: "Resolution" };

  function humanize(ms) {
    let s = Math.floor(Math.abs(ms) / 1000);
    const d = Math.floor(s / 86400); s -= d * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    if (d) return d + "d " + h + "h";
    if (h) return h + "h " + String(m).padStart(2, "0") + "m";
    if (m) return m + "m";
    return s + "s";
  }

  function tick() {
    const now = Date.now();
    document.querySelectorAll(".sla-clock[data-due]").forEach(function (el) {
      const word = WORDS[el.dataset.kind];
      if (!el.dataset.due || !word) return;
      const left = Date.parse(el.dataset.due) - now;
      if (left < 0) {
        el.textContent = word + " overdue " + humanize(left);
        el.classList.remove("sla-ok", "sla-warning");
        el.classList.add("sla-overdue");
      } else {
        el.textContent = word + " due in " + humanize(left);
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    tick();
    setInterval(tick, 1000);
  });
})();
