// The wallboard: reads /api/snapshot once, then the live stream /api/stream (server-sent events).
// URL: ?lang=en|ja|ko  &queue=billing,sales  &channel=voice,chat  &idle=60 (seconds without input
// before "no new events" shows)
"use strict";

const STALE_AFTER_MS = 5000;        // no document for this long: the connection is considered lost

const params = new URLSearchParams(location.search);
const IDLE_EVENTS_SECONDS = Number(params.get("idle")) > 0 ? Number(params.get("idle")) : 60;
const lang = ["en", "ja", "ko"].includes(params.get("lang")) ? params.get("lang") : "en";
const wanted = (name) => (params.get(name) || "").split(",").map((s) => s.trim()).filter(Boolean);
const queues = wanted("queue");
const channels = wanted("channel");

let labels = {};
let lastDocumentAt = 0;   // performance.now() of the last document received
let lastDocument = null;
let connected = false;
const tiles = new Map();  // "queue\u001fchannel" -> element

const t = (key) => labels[key] ?? key;

function pick(tile, path) {
  return path.split(".").reduce((v, k) => (v === null || v === undefined ? v : v[k]), tile);
}

const ARROWS = { on_target: "▲", near: "▶", breached: "▼" };

function showStatus(element, status) {
  element.dataset.status = status || "none";
  element.querySelector(".arrow").textContent = ARROWS[status] || "";
  element.querySelector(".word").textContent = status ? t(status) : t("no_data");
}

function tileFor(queue, channel) {
  const key = `${queue}\u001f${channel}`;
  let element = tiles.get(key);
  if (!element) {
    element = document.getElementById("tile").content.firstElementChild.cloneNode(true);
    element.dataset.queue = queue;
    element.dataset.channel = channel;
    element.dataset.written = String(["email", "social", "sms"].includes(channel));  // backlog, not agents
    element.addEventListener("click", () => {  // the contacts behind its figures, when the worker allows it
      if (element.dataset.drilldown === "true") {
        location.href = `/wallboard/contacts?${new URLSearchParams({ queue, channel, state: "waiting", lang })}`;
      }
    });
    element.querySelector(".queue").textContent = queue;
    element.querySelector(".channel").textContent = t(channel);
    for (const label of element.querySelectorAll("[data-label]")) label.textContent = t(label.dataset.label);
    tiles.set(key, element);
  }
  return element;
}

function render(doc) {
  const main = document.getElementById("tiles");
  const shown = doc.queues.filter(
    (q) => (!queues.length || queues.includes(q.queue)) && (!channels.length || channels.includes(q.channel)),
  );
  const elements = shown.map((q) => {
    const element = tileFor(q.queue, q.channel);
    element.dataset.drilldown = String(Boolean(doc.drilldown));
    for (const value of element.querySelectorAll("[data-field]")) {
      const raw = pick(q, value.dataset.field);
      value.dataset.value = JSON.stringify(raw ?? null);
      value.textContent = format(raw, value.dataset.format);
    }
    // The tile's colour follows the last 15 minutes (today's when there is nothing in 15 minutes).
    showStatus(element.querySelector(".head").parentElement, q.status["15m"] || q.status.today);
    element.querySelector(".badge").dataset.status = element.dataset.status;
    for (const level of element.querySelectorAll(".level")) showStatus(level, q.status[level.dataset.window]);
    return element;
  });
  const columns = elements.length <= 1 ? 1 : elements.length <= 4 ? 2 : elements.length <= 9 ? 3
    : elements.length <= 12 ? 4 : elements.length <= 20 ? 5 : 6;
  main.style.setProperty("--columns", columns);
  if (!elements.length) {
    const empty = document.createElement("div");
    empty.className = "empty";
    empty.textContent = t("no_queues");
    main.replaceChildren(empty);
  } else {
    main.replaceChildren(...elements);
  }
  if (doc.now) {
    const when = new Date(doc.now * 1000);
    const clock = new Intl.DateTimeFormat(lang, {
      timeZone: doc.zone || undefined, hour: "2-digit", minute: "2-digit", second: "2-digit",
      year: "numeric", month: "short", day: "numeric",
    });
    document.getElementById("clock").textContent = clock.format(when);
  }
}

function receive(doc) {
  lastDocument = doc;
  lastDocumentAt = performance.now();
  render(doc);
  checkFreshness();
}

function checkFreshness() {
  let kind = null, text = "";
  if (!connected || performance.now() - lastDocumentAt > STALE_AFTER_MS) {
    kind = "connection";
    text = t("connection_lost");
  } else if (lastDocument && lastDocument.input_idle_seconds !== null
             && lastDocument.input_idle_seconds >= IDLE_EVENTS_SECONDS) {
    kind = "events";
    text = t("no_events").replace("{minutes}", Math.floor(lastDocument.input_idle_seconds / 60));
  }
  showBanner(kind, text);
}

function connect() {
  // EventSource reconnects by itself after a drop (the server asks for a 1 s retry).
  const source = new EventSource("/api/stream");
  source.onopen = () => { connected = true; };
  source.onmessage = (message) => { connected = true; receive(JSON.parse(message.data)); };
  source.onerror = () => {
    connected = false;
    checkFreshness();
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, 1000);
  };
}

async function start() {
  document.documentElement.lang = lang;
  labels = (await (await fetch("/wallboard/labels.json")).json())[lang];
  document.getElementById("title").textContent = t("title");
  document.title = `ccpulse — ${t("title")}`;
  try {
    const response = await fetch("/api/snapshot");
    if (response.ok) { connected = true; receive(await response.json()); }
  } catch (error) { /* the stream below retries */ }
  connect();
  setInterval(checkFreshness, 500);
}

start();
