// The bridge's status page: polls the API's JSON routes once a second and draws them.
// Every value from the bridge is written with textContent or as an SVG attribute, never as HTML:
// journal rows carry whatever Josev or the MCU sent.
"use strict";

const TOKEN_KEY = "josev-bridge-token";
const FAST_MS = 1000;   // status, timeline, journal
const SLOW_MS = 5000;   // device model, alerts (they change when a person changes something)
const SVG = "http://www.w3.org/2000/svg";
const CONDITIONS = ["EVConnected", "Authorized", "ParkingBayOccupancy", "PowerPathClosed", "EnergyTransfer", "DataSigned"];

let windowS = 86400;
let lastSlow = 0;
let timer = null;
let loop = 0;  // a restart (new token, new zoom) starts a new loop; an older one in flight ends

const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function svg(tag, attrs, parent) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (parent) parent.appendChild(node);
  return node;
}

class AuthError extends Error {}

async function api(path) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) throw new AuthError("no token yet");
  const response = await fetch(path, { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
  if (response.status === 401) throw new AuthError("wrong token");
  if (response.status === 404) return null;  // a route this bridge does not serve (alerts off)
  const body = await response.json();
  if (!response.ok) throw new Error(path + ": " + response.status + " " + (body.error || ""));
  return body;
}

function askToken(message) {
  $("main").hidden = true;
  $("token-form").hidden = false;
  $("auth-message").textContent = message || "";
  $("token-input").focus();
}

// -- formatting ---------------------------------------------------------------------------------
function ago(iso) {
  if (!iso) return "never";
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 90) return s.toFixed(s < 10 ? 1 : 0) + " s ago";
  if (s < 5400) return Math.round(s / 60) + " min ago";
  if (s < 172800) return (s / 3600).toFixed(1) + " h ago";
  return Math.round(s / 86400) + " d ago";
}

function utcTime(ms, withSeconds) {
  const iso = new Date(ms).toISOString();
  return withSeconds ? iso.slice(11, 19) : iso.slice(11, 16);
}

function short(value, max) {
  if (value === null || value === undefined) return "";
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > max ? text.slice(0, max - 1) + "…" : text;
}

// -- sections -----------------------------------------------------------------------------------
function renderVerdict(doc) {
  const box = $("verdict");
  const state = doc.verdict.state;
  box.className = "verdict " + state.replace(" ", "-");
  box.dataset.state = state;
  $("verdict-state").textContent = state;
  const list = $("verdict-reasons");
  list.replaceChildren(...doc.verdict.reasons.map((r) => el("li", r)));
  if (!doc.verdict.reasons.length) list.appendChild(el("li", "get_event_timestamp is answered with the hardware's times"));
}

function renderUnreachable(message) {
  const box = $("verdict");
  box.className = "verdict unreachable";
  box.dataset.state = "unreachable";
  $("verdict-state").textContent = "API not reachable";
  $("verdict-reasons").replaceChildren(el("li", message));
}

function renderLink(doc) {
  const status = doc.status || {};
  const link = status.mcu_link || {};
  const faults = Object.entries(link.fault_counters || {}).filter(([, n]) => n);
  const gets = status.get_event_timestamp || {};
  const rows = [
    ["State", link.state ? link.state + (link.port ? " (" + link.port + ")" : "") : "unknown"],
    ["Firmware", link.firmware || "not reported yet"],
    ["MCU boot", link.boot_id ? link.boot_id + ", last record seq " + link.last_seq : "no HELLO yet"],
    ["Last record", link.last_record_at ? link.last_record_at + " (" + ago(link.last_record_at) + ")" : "none yet"],
    ["Clock", doc.clock || "unknown"],
    ["Fault counters", faults.length ? faults.map(([k, n]) => k + " " + n).join(", ") : "all zero"],
    ["Broker", (status.mqtt ? (status.mqtt.connected ? "connected to " : "NOT connected to ") + status.mqtt.broker : "unknown")],
    ["get_event_timestamp", (gets.enabled === false ? "turned off; " : "") +
      (gets.answered !== undefined ? gets.answered + " answered, " + gets.silent + " without an answer" : "")],
  ];
  const host = status.host_clock;  // issue 14 (wt-clock): shown when the daemon reports it
  if (host && typeof host.synchronised === "boolean") {
    rows.splice(5, 0, ["Board clock", host.synchronised ? "synchronised" :
      "NOT synchronised" + (host.while_unsynchronised ? "; get_event_timestamp " + host.while_unsynchronised : "")]);
  }
  $("link").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", k), el("dd", v)]));
  $("identity").textContent = (doc.identity || "") + (status.pid ? " (pid " + status.pid + ")" : "");
  document.title = doc.verdict.state + " · josev-bridge " + (doc.identity || "");
}

function ticksFor(spanMs) {
  for (const step of [60e3, 120e3, 300e3, 600e3, 900e3, 1800e3, 3600e3, 7200e3, 10800e3, 21600e3]) {
    if (spanMs / step <= 12) return step;
  }
  return 43200e3;
}

function renderTimeline(doc) {
  const since = Date.parse(doc.since), until = Date.parse(doc.until);
  const width = 1000, left = 150, right = 10, rowH = 22, top = 18;
  const x = (ms) => left + (Math.min(Math.max(ms, since), until) - since) / (until - since) * (width - left - right);
  const out = [];
  for (const evse of doc.evses) {
    out.push(el("div", "EVSE " + evse.evse, "evse-title"));
    const height = top + rowH * CONDITIONS.length + 4;
    const root = svg("svg", { class: "timeline", viewBox: `0 0 ${width} ${height}`, "data-evse": evse.evse,
      role: "img", "aria-label": "conditions of EVSE " + evse.evse });
    const step = ticksFor(until - since);
    for (let t = Math.ceil(since / step) * step; t <= until; t += step) {
      svg("line", { class: "tick", x1: x(t), x2: x(t), y1: top - 4, y2: height }, root);
      svg("text", { class: "tick-label", x: x(t) + 2, y: 11 }, root).textContent = utcTime(t, step < 60e3);
    }
    evse.conditions.forEach((c, i) => {
      const y = top + i * rowH;
      svg("text", { class: "row-label", x: 0, y: y + 15 }, root).textContent = c.condition;
      svg("rect", { class: "row-bg", x: left, y: y + 3, width: width - left - right, height: rowH - 6 }, root);
      for (const iv of c.intervals) {
        const a = iv.from ? Date.parse(iv.from) : since, b = iv.to ? Date.parse(iv.to) : until;
        const bar = svg("rect", { class: "bar", x: x(a), y: y + 5, width: Math.max(2, x(b) - x(a)), height: rowH - 10,
          "data-condition": c.condition, "data-from": iv.from || "", "data-to": iv.to || "" }, root);
        svg("title", {}, bar).textContent = c.condition + ": " + (iv.from || "before the window") + " → " + (iv.to || "now");
      }
      for (const e of c.edges) {
        const ex = x(Date.parse(e.at)), start = e.eventType === "TxEventStart";
        const mark = svg("path", { class: start ? "edge-start" : "edge-stop", "data-condition": c.condition,
          "data-event-type": e.eventType, "data-at": e.at,
          d: start ? `M${ex} ${y + 2} l-4 -5 h8 z` : `M${ex} ${y + rowH - 2} l-4 5 h8 z` }, root);
        svg("title", {}, mark).textContent = e.eventType + " " + c.condition + " at " + e.at;
      }
      for (const [type, at] of Object.entries(c.answers)) {
        if (!at || Date.parse(at) < since) continue;
        const ring = svg("circle", { class: "answer", cx: x(Date.parse(at)), cy: y + rowH / 2, r: 6,
          "data-condition": c.condition, "data-event-type": type, "data-at": at }, root);
        svg("title", {}, ring).textContent = "get_event_timestamp " + type + " " + c.condition + " answers " + at;
      }
    });
    svg("line", { class: "now", x1: x(until), x2: x(until), y1: top - 4, y2: height }, root);
    out.push(root);
  }
  $("timeline").replaceChildren(...out);
  $("window-label").textContent = "(" + doc.since + " to " + doc.until + (doc.truncated ? "; too many edges, the oldest left out" : "") + ")";
}

function renderJournal(doc) {
  const rows = doc.data.map((r) => {
    const tr = el("tr");
    const answer = r.messageResponse ?? r.note;
    for (const [text, cls] of [[r.id], [r.createdAt.slice(0, 23).replace("T", " ")], [r.direction], [r.messageType],
      [r.correlationId || r.topic || ""], [short(r.messagePayload, 120), "wrap"], [short(answer, 120), "wrap"],
      [r.latencyMs ?? ""]]) {
      tr.appendChild(el("td", text, cls));
    }
    return tr;
  });
  $("journal").tBodies[0].replaceChildren(...rows);
}

function renderDeviceModel(doc) {
  const rows = doc.data.map((v) => {
    const tr = el("tr");
    const change = v.lastChange;
    tr.append(el("td", v.component + "." + v.variable + (v.attribute !== "Actual" ? " (" + v.attribute + ")" : "")),
      el("td", v.value), el("td", v.source),
      el("td", change ? (change.oldValue ?? "∅") + " → " + change.newValue + " by " + change.user + " (" + change.source + "), " + change.at : v.updatedAt));
    return tr;
  });
  $("device-model").tBodies[0].replaceChildren(...rows);
}

function renderAlerts(doc) {
  const list = $("alerts");
  if (doc === null) return list.replaceChildren(el("li", "alerts are turned off ([alerts] enabled = false)", "muted"));
  const open = doc.data.filter((a) => !a.endTimestamp);
  if (!open.length) return list.replaceChildren(el("li", "none", "muted"));
  list.replaceChildren(...open.map((a) => el("li", a.type + (a.evseId ? " on EVSE " + a.evseId : "") +
    " since " + a.startTimestamp + " (" + ago(a.startTimestamp) + ")" + (a.muted ? ", muted" : ""))));
}

// -- the loop -----------------------------------------------------------------------------------
async function refresh(id) {
  const slow = Date.now() - lastSlow >= SLOW_MS;
  try {
    const since = new Date(Date.now() - windowS * 1000).toISOString();
    const [status, timeline, journal, dm, alerts] = await Promise.all([
      api("/api/status"), api("/api/timeline?since=" + encodeURIComponent(since)), api("/api/journal-tail?limit=50"),
      slow ? api("/api/device-model") : undefined, slow ? api("/api/alerts?limit=100&includeMuted=true") : undefined]);
    if (id !== loop) return;
    $("main").hidden = false;
    $("token-form").hidden = true;
    if (status) { renderVerdict(status); renderLink(status); }
    if (timeline) renderTimeline(timeline);
    if (journal) renderJournal(journal);
    if (slow) { lastSlow = Date.now(); if (dm) renderDeviceModel(dm); renderAlerts(alerts); }
    $("updated").textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC, every second";
  } catch (err) {
    if (id !== loop) return;
    if (err instanceof AuthError) {
      if (err.message === "wrong token") {
        sessionStorage.removeItem(TOKEN_KEY);
        askToken("Wrong token: the bridge refused it (401). Copy it again from the token file and paste it here.");
      } else {
        askToken("");
      }
      return;  // no polling until a token is entered
    }
    renderUnreachable(String(err.message || err));
    $("updated").textContent = "last attempt " + new Date().toISOString().slice(11, 19) + " UTC failed";
  }
  timer = setTimeout(() => refresh(id), FAST_MS);
}

function restart() {
  clearTimeout(timer);
  lastSlow = 0;
  refresh(++loop);
}

document.addEventListener("DOMContentLoaded", () => {
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token-input").value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    $("token-input").value = "";
    $("auth-message").textContent = "";
    restart();
  });
  for (const button of document.querySelectorAll(".zoom button")) {
    button.classList.toggle("active", Number(button.dataset.window) === windowS);
    button.addEventListener("click", () => {
      windowS = Number(button.dataset.window);
      for (const b of document.querySelectorAll(".zoom button")) b.classList.toggle("active", b === button);
      restart();
    });
  }
  restart();
});
