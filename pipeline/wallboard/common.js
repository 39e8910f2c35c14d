// What the wallboard's pages share (the board, the agent list, a tile's contacts): number formats
// and the banner that says the figures are stale. Loaded before each page's own script.
"use strict";

function formatDuration(seconds) {
  const total = Math.max(0, Math.round(seconds));  // a clock slightly behind the events: not "-0:03"
  const h = Math.floor(total / 3600), m = Math.floor((total % 3600) / 60), s = total % 60;
  const two = (n) => String(n).padStart(2, "0");
  return h > 0 ? `${h}:${two(m)}:${two(s)}` : `${m}:${two(s)}`;
}

function format(value, kind) {
  if (value === null || value === undefined) return "–";
  if (kind === "percent") return `${(value * 100).toFixed(1)}%`;
  if (kind === "duration") return formatDuration(value);
  return String(value);
}

// kind: null (fresh), "connection" (no answer from the worker) or "events" (no new events)
function showBanner(kind, text) {
  const banner = document.getElementById("banner");
  banner.hidden = kind === null;
  banner.dataset.kind = kind || "";
  banner.textContent = kind === null ? "" : text;
  document.body.classList.toggle("stale", kind !== null);
  document.body.dataset.stale = kind || "";
}
