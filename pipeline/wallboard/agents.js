// The agent list for the floor's TV: reads /api/agents every 2 s (docs/wallboard-api.md).
// URL: ?lang=en|ja|ko  &idle=60 (seconds without input before "no new events" shows)  &queue=billing,sales (agents serving any of them)  &offline=1 (show offline
// agents too)  &long=away:900,after_contact_work:300,on_contact:1200 (seconds in a state after which
// an agent stands out)
"use strict";

const REFRESH_MS = 2000;
const STALE_AFTER_MS = 6000;  // no answer for this long: the data is stale
const STATE_ORDER = ["on_contact", "after_contact_work", "available", "away", "offline"];
const MARKS = { available: "●", on_contact: "■", after_contact_work: "▲", away: "◆", offline: "○" };

const params = new URLSearchParams(location.search);
const IDLE_EVENTS_SECONDS = Number(params.get("idle")) > 0 ? Number(params.get("idle")) : 60;
const lang = ["en", "ja", "ko"].includes(params.get("lang")) ? params.get("lang") : "en";
const queues = (params.get("queue") || "").split(",").map((s) => s.trim()).filter(Boolean);
const showOffline = params.get("offline") === "1";
// the worker lists only these queues' agents (a large floor's list is megabytes); "offline" counts every agent
const AGENTS_URL = queues.length ? `/api/agents?queue=${encodeURIComponent(queues.join(","))}` : "/api/agents";
const LONG = { away: 900, after_contact_work: 300, on_contact: 1200 };
for (const pair of (params.get("long") || "").split(",").filter(Boolean)) {
  const [state, seconds] = pair.split(":");
  if (Number(seconds) > 0) LONG[state] = Number(seconds);
}

let labels = {};
let lastDocument = null;
let lastDocumentAt = 0;  // performance.now() when it came
const cards = new Map();

const t = (key) => labels[key] ?? key;

function cardFor(agent) {
  let element = cards.get(agent.agent_id);
  if (!element) {
    element = document.getElementById("agent").content.firstElementChild.cloneNode(true);
    element.dataset.agent = agent.agent_id;
    element.querySelector(".name").textContent = agent.agent_id;
    element.querySelector(".long-word").textContent = t("long");
    cards.set(agent.agent_id, element);
  }
  return element;
}

function setField(element, field, raw, text) {
  const target = element.querySelector(`[data-field="${field}"]`);
  target.dataset.value = JSON.stringify(raw ?? null);
  target.textContent = text;
}

function render() {
  const doc = lastDocument;
  if (!doc) return;
  const now = doc.now + (performance.now() - lastDocumentAt) / 1000;  // the worker's now, ticking on
  const agents = doc.agents.filter((a) => (showOffline || (a.state && a.state !== "offline"))
    && (!queues.length || a.queues.some((q) => queues.includes(q))));
  agents.sort((a, b) => STATE_ORDER.indexOf(a.state) - STATE_ORDER.indexOf(b.state)
    || (a.since ?? 0) - (b.since ?? 0) || a.agent_id.localeCompare(b.agent_id));
  const elements = agents.map((agent) => {
    const element = cardFor(agent);
    const state = agent.state || "offline";
    const inState = agent.since === null ? null : Math.max(0, now - agent.since);
    element.dataset.state = state;
    element.dataset.long = String(inState !== null && LONG[state] !== undefined && inState >= LONG[state]);
    element.querySelector(".mark").textContent = MARKS[state] || "";
    element.querySelector(".word").textContent = labels[`state_${state}`] ?? t(state);  // a shorter word
    setField(element, "in_state", inState, format(inState, "duration"));
    setField(element, "reason", agent.reason, agent.reason || "");
    const contact = agent.contact;
    setField(element, "contact", contact, contact ? `${contact.queue} ${t(contact.channel)} `
      + formatDuration(contact.seconds + (performance.now() - lastDocumentAt) / 1000) : "");
    for (const field of ["today.handled", "today.aht_seconds", "today.occupancy"]) {
      const target = element.querySelector(`[data-field="${field}"]`);
      const raw = agent.today[field.split(".")[1]];
      setField(element, field, raw, format(raw, target.dataset.format));
    }
    return element;
  });
  const main = document.getElementById("agents");
  const columns = elements.length <= 16 ? 1 : elements.length <= 40 ? 2 : 3;
  const rows = Math.max(8, Math.ceil(elements.length / columns) + 1);  // + the headings
  main.style.setProperty("--columns", columns);
  main.style.setProperty("--row", `calc((100vh - 12vh) / ${rows} - 0.4vh)`);
  const headings = Array.from({ length: columns }, () => {
    const heading = document.getElementById("heading").content.firstElementChild.cloneNode(true);
    for (const label of heading.querySelectorAll("[data-label]")) label.textContent = t(label.dataset.label);
    return heading;
  });
  if (!elements.length) {
    const empty = document.createElement("div");
    empty.className = "empty";
    empty.textContent = t("no_agents");
    main.replaceChildren(empty);
  } else {
    main.replaceChildren(...headings, ...elements);
  }
  const offline = doc.offline ?? doc.agents.filter((a) => a.state === "offline").length;
  document.getElementById("summary").textContent = showOffline ? "" : t("offline_count").replace("{n}", offline);
  const clock = new Intl.DateTimeFormat(lang, {
    timeZone: doc.zone || undefined, hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
  document.getElementById("clock").textContent = clock.format(new Date(now * 1000));
}

function checkFreshness() {
  let kind = null, text = "";
  if (!lastDocument || performance.now() - lastDocumentAt > STALE_AFTER_MS) {
    kind = "connection";
    text = t("connection_lost");
  } else if (lastDocument.input_idle_seconds >= IDLE_EVENTS_SECONDS) {
    kind = "events";
    text = t("no_events").replace("{minutes}", Math.floor(lastDocument.input_idle_seconds / 60));
  }
  showBanner(kind, text);
}

async function refresh() {
  try {
    const response = await fetch(AGENTS_URL, { cache: "no-store" });
    if (response.ok) {
      lastDocument = await response.json();
      lastDocumentAt = performance.now();
    }
  } catch (error) { /* stale after STALE_AFTER_MS: the banner says so */ }
  render();
  checkFreshness();
}

async function start() {
  document.documentElement.lang = lang;
  labels = (await (await fetch("/wallboard/labels.json")).json())[lang];
  document.getElementById("title").textContent = t("agents_title");
  document.title = `ccpulse — ${t("agents_title")}`;
  await refresh();
  setInterval(refresh, REFRESH_MS);
  setInterval(() => { render(); checkFreshness(); }, 500);
}

start();
