// Kota Cerdas live page: the shared state, formatting helpers and colours. The page is a few
// classic scripts loaded in order (common, map, tables, chart, alerts, app) sharing these globals:
// plain ES2017 with the vendored Leaflet and uPlot, no build step. URLs are relative so a
// root_path works.
"use strict";

const SIAGA_COLOURS = {4: "#2e9d4f", 3: "#f2c200", 2: "#f07d00", 1: "#d7261e"};
const SIAGA_EN = {4: "normal", 3: "alert", 2: "warning", 1: "danger"};
const KIND_COLOURS = {rain: "#3a7bd5", noise: "#8e5cc4", safety: "#3b3f45"};
const CHART_FIELD = {air: ["pm25", "mean"], water: ["level_cm", "max"], rain: ["rain_mm", "sum"],
                     noise: ["laeq_db", "mean"], safety: ["count", "sum"]};
const NO_DATA = "#aab4be";

const state = {devices: new Map(), latest: new Map(), ispu: new Map(), siaga: new Map(),
               markers: new Map(), meta: null, updates: 0, chart: null, selected: null,
               staleAfterS: 900, clockOffsetMs: 0, connected: false};

const $ = (sel) => document.querySelector(sel);
const esc = (text) => String(text ?? "").replace(/[&<>"']/g,
  (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const fmt = (value, digits = 1) => (typeof value === "number" && isFinite(value))
  ? value.toLocaleString("id-ID", {maximumFractionDigits: digits, minimumFractionDigits: 0}) : "—";
const clock = (iso) => iso ? new Date(iso).toLocaleTimeString("en-GB",
  {timeZone: "Asia/Jakarta", hour: "2-digit", minute: "2-digit", second: "2-digit"}) : "—";
// A reading's time in WIB: the time alone today, with its date on any other day, so an event
// from yesterday never looks current (issue 14).
const jakartaDay = (date) => date.toLocaleDateString("en-CA", {timeZone: "Asia/Jakarta"});
const stamp = (iso) => {
  if (!iso) return "—";
  const date = new Date(iso);
  if (jakartaDay(date) === jakartaDay(new Date(serverNow()))) return clock(iso);
  return date.toLocaleString("id-ID", {timeZone: "Asia/Jakarta", day: "numeric", month: "short",
    hour: "2-digit", minute: "2-digit", hour12: false});
};
// Now on the server's clock (the stream's snapshot says what time it is there).
const serverNow = () => Date.now() - state.clockOffsetMs;
const ageS = (reading) => Math.max(0, (serverNow() - reading.time_ms) / 1000);
const isStale = (reading) => ageS(reading) > state.staleAfterS;
const ago = (seconds) => seconds < 90 ? `${Math.round(seconds)} dtk` : seconds < 5400
  ? `${Math.round(seconds / 60)} mnt` : seconds < 172800 ? `${Math.round(seconds / 3600)} jam`
  : `${Math.round(seconds / 86400)} hari`;
const light = (hex) => {
  const n = parseInt((hex || "#888888").slice(1), 16);
  return ((n >> 16) * 299 + ((n >> 8) & 255) * 587 + (n & 255) * 114) / 1000 > 150;
};
const chip = (label, colour) => label
  ? `<span class="chip${light(colour) ? " light" : ""}" style="background:${esc(colour)}">${esc(label)}</span>`
  : `<span class="chip none">tidak cukup data</span>`;
const key = (kind, device) => `${kind}/${device}`;

async function getJSON(path) {
  const response = await fetch(path, {headers: {Accept: "application/json"}});
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}
