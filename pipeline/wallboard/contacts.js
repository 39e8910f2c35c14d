// The contacts behind a tile (/api/contacts, docs/wallboard-api.md), refreshed every 5 s. A URL a
// supervisor can bookmark: /wallboard/contacts?queue=billing&channel=voice&state=waiting&lang=ja
// (state: waiting, answered_late, abandoned). Customer ids as stored: pseudonymised.
"use strict";

const REFRESH_MS = 5000;
const STALE_AFTER_MS = 12000;
const params = new URLSearchParams(location.search);
const lang = ["en", "ja", "ko"].includes(params.get("lang")) ? params.get("lang") : "en";
const queue = params.get("queue") || "";
const channel = params.get("channel") || "";
const state = ["waiting", "answered_late", "abandoned"].includes(params.get("state")) ? params.get("state") : "waiting";
const COLUMNS = {
  waiting: ["contact_id", "offered_at", "wait_seconds", "reason", "customer_id"],
  answered_late: ["contact_id", "offered_at", "answered_at", "wait_seconds", "agent_id", "reason", "customer_id"],
  abandoned: ["contact_id", "offered_at", "abandoned_at", "wait_seconds", "short_abandoned", "reason", "customer_id"],
};

let labels = {};
let lastDocument = null;
let lastDocumentAt = 0;
let problem = "";
const t = (key) => labels[key] ?? key;

function cell(name, value, doc) {
  if (value === null || value === undefined) return "–";
  if (name.endsWith("_at")) {
    return new Intl.DateTimeFormat(lang, { timeZone: doc.zone || undefined, hour: "2-digit", minute: "2-digit",
      second: "2-digit" }).format(new Date(value * 1000));
  }
  if (name === "wait_seconds") {
    const ticking = state === "waiting" ? (performance.now() - lastDocumentAt) / 1000 : 0;
    return formatDuration(value + ticking);
  }
  if (name === "short_abandoned") return value ? t("short") : "";
  return String(value);
}

function render() {
  const doc = lastDocument;
  if (!doc) return;
  const columns = COLUMNS[state];
  document.getElementById("heading").replaceChildren(...columns.map((name) => {
    const th = document.createElement("th");
    th.textContent = t(`col_${name}`);
    return th;
  }));
  document.getElementById("rows").replaceChildren(...doc.contacts.map((contact) => {
    const tr = document.createElement("tr");
    tr.dataset.contact = contact.contact_id;
    for (const name of columns) {
      const td = document.createElement("td");
      td.dataset.field = name;
      td.dataset.value = JSON.stringify(contact[name] ?? null);
      td.textContent = cell(name, contact[name], doc);
      tr.append(td);
    }
    return tr;
  }));
  const note = document.getElementById("note");
  note.textContent = doc.contacts.length ? (doc.truncated ? t("truncated") : "") : t("no_contacts");
  document.getElementById("clock").textContent = new Intl.DateTimeFormat(lang, { timeZone: doc.zone || undefined,
    hour: "2-digit", minute: "2-digit", second: "2-digit" }).format(new Date(doc.now * 1000));
}

function checkFreshness() {
  const stale = problem || !lastDocument || performance.now() - lastDocumentAt > STALE_AFTER_MS;
  showBanner(stale ? "connection" : null, problem || t("connection_lost"));
}

async function refresh() {
  try {
    const response = await fetch(`/api/contacts?${new URLSearchParams({ queue, channel, state })}`,
      { cache: "no-store" });
    if (response.ok) {
      lastDocument = await response.json();
      lastDocumentAt = performance.now();
      problem = "";
    } else {
      problem = (await response.text()).trim();  // drill-down off, bad parameters, ClickHouse down: say so
    }
  } catch (error) { /* stale after STALE_AFTER_MS */ }
  render();
  checkFreshness();
}

async function start() {
  document.documentElement.lang = lang;
  labels = (await (await fetch("/wallboard/labels.json")).json())[lang];
  const title = `${queue} ${t(channel)} — ${t(state === "abandoned" ? "abandoned_today" : state)}`;
  document.getElementById("title").textContent = title;
  document.title = `ccpulse — ${title}`;
  document.getElementById("back").href = `/wallboard?lang=${lang}`;
  for (const link of document.querySelectorAll("#states a")) {
    link.textContent = t(link.dataset.label);
    link.href = `/wallboard/contacts?${new URLSearchParams({ queue, channel, state: link.dataset.state, lang })}`;
    link.classList.toggle("current", link.dataset.state === state);
  }
  await refresh();
  setInterval(refresh, REFRESH_MS);
  setInterval(() => { render(); checkFreshness(); }, 1000);
}

start();
