// Kota Cerdas live page: a map of devices coloured by ISPU (air) and Siaga (water), the latest
// values beside it, kept current by the server-sent events of /api/v1/stream, and the worst
// active alert in a banner above them (polled from /api/v1/alerts). No build step:
// plain ES2017 with the vendored Leaflet and uPlot. URLs are relative so a root_path works.
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

// -- map -------------------------------------------------------------------------------------
let map;

function initMap() {
  map = L.map("map", {zoomSnap: 0.25, preferCanvas: false, attributionControl: true});
  map.attributionControl.setPrefix('<a href="https://leafletjs.com">Leaflet</a>');
  if (state.meta && state.meta.tile_url) {
    L.tileLayer(state.meta.tile_url, {maxZoom: 18, attribution: state.meta.tile_attribution}).addTo(map);
  } else {
    $("#map").classList.add("no-tiles");
    map.attributionControl.addAttribution("tanpa peta dasar / no base map (api.page.tile_url)");
  }
  L.control.scale({metric: true, imperial: false}).addTo(map);
  const legend = L.control({position: "bottomright"});
  legend.onAdd = () => {
    const div = L.DomUtil.create("div", "legend");
    const cats = (state.meta ? state.meta.ispu_categories : []).map(
      (c) => `<div><i style="background:${esc(c.hex)}"></i>${esc(c.name)} <span class="en">(≤ ${c.index_max})</span></div>`).join("");
    const siaga = [4, 3, 2, 1].map((s) => `<div><i class="sq" style="background:${SIAGA_COLOURS[s]}"></i>` +
      `Siaga ${s} ${esc(state.meta ? state.meta.siaga_names[s] : "")} <span class="en">${SIAGA_EN[s]}</span></div>`).join("");
    const other = Object.entries(KIND_COLOURS).map(([kind, colour]) =>
      `<div><i style="background:#fff;border:2.5px solid ${colour}"></i>${{rain: "hujan / rain", noise: "bising / noise", safety: "kejadian / events"}[kind]}</div>`).join("");
    div.innerHTML = `<h4>ISPU (udara / air)</h4>${cats}<div><i style="background:${NO_DATA}"></i>belum cukup data <span class="en">no index yet</span></div>` +
      `<h4>Siaga (air / water)</h4>${siaga}<h4>Lain / other</h4>${other}`;
    return div;
  };
  legend.addTo(map);
}

function markerStyle(device) {
  if (device.kind === "air") {
    const ispu = state.ispu.get(device.device_id);
    return {radius: 10, fillColor: ispu && ispu.hex ? ispu.hex : NO_DATA, color: "#1d2733",
            weight: 1.5, fillOpacity: 0.9};
  }
  if (device.kind === "water") {
    const siaga = state.siaga.get(device.device_id);
    const colour = siaga && siaga.status ? SIAGA_COLOURS[siaga.status] : NO_DATA;
    return {radius: 10, fillColor: colour, color: "#0b3d66", weight: 3, fillOpacity: 0.9};
  }
  // Other kinds: small rings, so they never read as an ISPU or Siaga colour.
  return {radius: 4, fillColor: "#ffffff", color: KIND_COLOURS[device.kind] || NO_DATA, weight: 2.5,
          fillOpacity: 1};
}

function tooltip(device) {
  const reading = state.latest.get(key(device.kind, device.device_id));
  let lines = `<b>${esc(device.name || device.device_id)}</b><br>${esc(device.district)} · ${esc(device.kind)}`;
  if (device.kind === "air") {
    const ispu = state.ispu.get(device.device_id);
    lines += `<br>ISPU ${fmt(ispu && ispu.ispu, 0)} ${esc(ispu && ispu.category || "")}`;
  } else if (device.kind === "water") {
    const siaga = state.siaga.get(device.device_id);
    if (siaga) lines += `<br>${fmt(siaga.level_cm, 0)} cm · ${siaga.status ? "Siaga " + siaga.status + " " + esc(siaga.status_name) : "tanpa ambang / no thresholds"}`;
  }
  if (reading) lines += `<br><span class="muted">${stamp(reading.time)} (${ago(ageS(reading))})</span>`;
  return lines;
}

function drawMarkers() {
  for (const device of state.devices.values()) {
    if (device.kind === "status") continue;  // heartbeats sit on their device's spot
    let marker = state.markers.get(device.device_id);
    if (!marker) {
      marker = L.circleMarker([device.lat, device.lon], markerStyle(device)).addTo(map);
      marker.on("click", () => showChart(device.kind, device.device_id));
      state.markers.set(device.device_id, marker);
    }
    marker.setStyle(markerStyle(device));
    if (device.kind === "air" || device.kind === "water") marker.bringToFront();
    marker.bindTooltip(tooltip(device), {direction: "top"});
    marker.getElement && marker.getElement() && marker.getElement().setAttribute("data-device", device.device_id);
  }
  $("#device-count").textContent = String(state.markers.size);
}

function fitMap() {
  // Fit the city's core: devices within ~25 km of the median position, so an island station or
  // an upstream gauge does not shrink everything else (they stay one zoom-out away).
  const points = [...state.devices.values()].filter((d) => d.kind !== "status");
  if (!points.length) { map.setView([-6.2, 106.85], 11); return; }
  const median = (values) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)];
  const lat = median(points.map((d) => d.lat)), lon = median(points.map((d) => d.lon));
  const core = points.filter((d) => Math.abs(d.lat - lat) < 0.23 && Math.abs(d.lon - lon) < 0.23);
  map.fitBounds(L.latLngBounds((core.length ? core : points).map((d) => [d.lat, d.lon])).pad(0.06));
}

// -- tables ----------------------------------------------------------------------------------
function nameOf(deviceId) {
  const device = state.devices.get(deviceId);
  return device && device.name ? device.name : deviceId;
}

function row(reading, cells, flash) {
  // Stale (silent beyond api.page.stale_after_s) rows are greyed; a device whose heartbeat
  // sent its Last Will is flagged offline.
  const stale = isStale(reading);
  const cls = (flash ? "flash" : "") + (state.selected === key(reading.kind, reading.device) ? " selected" : "") +
    (stale ? " stale" : "") + (reading.offline ? " offline" : "");
  const flag = reading.offline ? ' <span class="flag" data-flag="offline">offline</span>'
    : stale ? ' <span class="flag" data-flag="silent">diam <span class="en">/ silent</span></span>' : "";
  return `<tr data-device="${esc(reading.device)}" data-kind="${esc(reading.kind)}" class="${cls}">` +
    `<td title="${esc(reading.device)}">${esc(nameOf(reading.device))}${flag}</td><td>${esc(reading.district)}</td>${cells}` +
    `<td class="muted" data-field="time" title="${esc(reading.time)}">${stamp(reading.time)}` +
    ` <span class="age">(${ago(ageS(reading))})</span></td></tr>`;
}

function renderTables(flashed) {
  const byKind = {air: [], water: [], other: []};
  for (const reading of state.latest.values()) {
    if (reading.kind === "status") continue;
    (byKind[reading.kind] || byKind.other).push(reading);
  }
  const sort = (list) => list.sort((a, b) => a.district.localeCompare(b.district) || a.device.localeCompare(b.device));
  // Worst first: water by Siaga (1 Awas first), then level; air by ISPU; stale rows last.
  const bySeverity = (list, rank) => sort(list).sort((a, b) =>
    (isStale(a) - isStale(b)) || (rank(b) - rank(a)));
  const siagaRank = (r) => { const s = state.siaga.get(r.device); return s && s.status ? 5 - s.status : 0; };
  const ispuRank = (r) => { const i = state.ispu.get(r.device); return i && i.ispu != null ? i.ispu : -1; };
  const waterRank = (r) => siagaRank(r) * 10000 + (typeof r.fields.level_cm === "number" ? r.fields.level_cm : 0);
  $("#table-air tbody").innerHTML = bySeverity(byKind.air, ispuRank).map((r) => {
    const ispu = state.ispu.get(r.device);
    return row(r, `<td class="num value" data-field="pm25">${fmt(r.fields.pm25)}</td>` +
      `<td class="num" data-field="ispu">${fmt(ispu && ispu.ispu, 0)}</td>` +
      `<td data-field="category">${chip(ispu && ispu.category, ispu && ispu.hex)}</td>`, flashed.has(key(r.kind, r.device)));
  }).join("");
  $("#table-water tbody").innerHTML = bySeverity(byKind.water, waterRank).map((r) => {
    const siaga = state.siaga.get(r.device);
    const status = siaga && siaga.status;
    const label = status ? `Siaga ${status} · ${siaga.status_name}` : (siaga ? "tanpa ambang" : "");
    return row(r, `<td class="num value" data-field="level_cm">${fmt(r.fields.level_cm, 0)}</td>` +
      `<td class="num" data-field="rise">${fmt(siaga && siaga.rise_cm_per_h, 1)}</td>` +
      `<td data-field="status">${status ? chip(label, SIAGA_COLOURS[status]) : `<span class="chip none">${esc(label || "—")}</span>`}</td>`,
      flashed.has(key(r.kind, r.device)));
  }).join("");
  $("#table-other tbody").innerHTML = sort(byKind.other).map((r) => {
    let value;
    if (r.kind === "rain") value = `${fmt(r.fields.rain_mm)} mm`;
    else if (r.kind === "noise") value = `${fmt(r.fields.laeq_db)} dBA`;
    else if (r.kind === "safety") value = `${eventName((r.tags && r.tags.event) || "event")} ×${fmt(r.fields.count, 0)}`;
    else value = Object.entries(r.fields).slice(0, 2).map(([k, v]) => `${esc(k)} ${esc(fmt(v))}`).join(", ");
    return row(r, `<td class="value" data-field="${esc(r.kind)}">${value}</td>`, flashed.has(key(r.kind, r.device)));
  }).join("");
  for (const tr of document.querySelectorAll("table.readings tbody tr")) {
    tr.addEventListener("click", () => showChart(tr.dataset.kind, tr.dataset.device));
  }
  applyFilter();
}

// The search box: rows whose station, district or device id contain every word typed.
function applyFilter() {
  const words = ($("#filter").value || "").toLowerCase().split(/\s+/).filter(Boolean);
  for (const tr of document.querySelectorAll("table.readings tbody tr")) {
    const text = `${tr.textContent} ${tr.dataset.device}`.toLowerCase();
    tr.hidden = !words.every((word) => text.includes(word));
  }
}

// -- applying events -------------------------------------------------------------------------
function applyReadings(readings) {
  const flashed = new Set();
  for (const reading of readings) {
    const k = key(reading.kind, reading.device);
    state.latest.set(k, reading);
    flashed.add(k);
    if (!state.devices.has(reading.device) && reading.lat != null && reading.lon != null) {
      state.devices.set(reading.device, {device_id: reading.device, kind: reading.kind,
        district: reading.district, name: reading.name, lat: reading.lat, lon: reading.lon});
    }
  }
  return flashed;
}

function applyIndicators(data) {
  if (data.ispu) {
    state.ispu = new Map(data.ispu.items.filter((i) => i.device).map((i) => [i.device, i]));
    $("#ispu-source").textContent = sourceLabel(data.ispu.source);
  }
  if (data.siaga) {
    state.siaga = new Map(data.siaga.items.map((i) => [i.device, i]));
    $("#siaga-source").textContent = sourceLabel(data.siaga.source);
  }
  if (data.incidents) {
    // City-wide "all" rows of every city; "—" until kota indicators has written any.
    const rows = data.incidents.items.filter((i) => i.scope === "city" && i.event === "all");
    const open = rows.reduce((sum, i) => sum + i.open_incidents, 0);
    const cell = $("#incident-count");
    cell.textContent = data.incidents.source === "none" ? "—" : String(open);
    cell.className = open > 0 ? "alert" : "";
    renderIncidents(data.incidents);
  }
}

// Safety event categories (kota/kinds/safety/kind.yaml) in Bahasa Indonesia, English after.
const EVENT_NAMES = {panic: ["tombol darurat", "panic"], fire: ["kebakaran", "fire"],
  smoke: ["asap", "smoke"], crowd: ["kerumunan", "crowd"], fight: ["perkelahian", "fight"],
  vandalism: ["vandalisme", "vandalism"], streetlight_out: ["PJU padam", "streetlight out"],
  flood_report: ["laporan banjir", "flood report"], accident: ["kecelakaan", "accident"],
  theft: ["pencurian", "theft"], intrusion: ["penyusupan", "intrusion"], test: ["uji", "test"],
  resolved: ["selesai", "resolved"], all: ["semua", "all"]};
const eventName = (event) => {
  const [id, en] = EVENT_NAMES[event] || [event, ""];
  return en && en !== id ? `${esc(id)} <span class="en">/ ${esc(en)}</span>` : esc(id);
};

// The list behind the header's count: open incidents per district and category, most first
// (counts from kota indicators; details of each incident need an operator key).
function renderIncidents(incidents) {
  const rows = incidents.items.filter((i) => i.scope === "district" && i.event !== "all" &&
    (i.open_incidents > 0 || i.stale_incidents > 0))
    .sort((a, b) => b.open_incidents - a.open_incidents || b.stale_incidents - a.stale_incidents ||
      (a.district || "").localeCompare(b.district || ""));
  $("#incident-list").innerHTML = rows.length ? `<table class="incidents"><thead><tr><th>Kecamatan</th>` +
    `<th>Kategori <span class="en">/ category</span></th><th class="num">Terbuka <span class="en">/ open</span></th>` +
    `<th class="num">Lama <span class="en">/ stale</span></th></tr></thead><tbody>` +
    rows.map((i) => `<tr data-district="${esc(i.district)}" data-event="${esc(i.event)}"><td>${esc(i.district)}</td>` +
      `<td>${eventName(i.event)}</td><td class="num">${i.open_incidents}</td><td class="num">${i.stale_incidents}</td></tr>`).join("") +
    `</tbody></table>` : '<p class="muted">tidak ada insiden terbuka <span class="en">/ no open incidents</span></p>';
}

function sourceLabel(source) {
  return {indicator_service: "dari layanan indikator / from kota indicators",
          computed: "dihitung dari bacaan / computed from readings", none: "belum ada data / no data yet"}[source] || "";
}

function touched(flashed) {
  state.updates += 1;
  document.body.dataset.updates = String(state.updates);
  $("#last-update").textContent = clock(new Date().toISOString()) + " WIB";
  renderTables(flashed);
  drawMarkers();
  freshness();
}

// "Live" only while the stream is open and something reported recently: a connected page
// whose newest reading is old says so, with that reading's age.
function freshness() {
  if (!state.connected) return;
  const ages = [...state.latest.values()].filter((r) => r.kind !== "status").map(ageS);
  const newest = ages.length ? Math.min(...ages) : null;
  if (newest !== null && newest > state.staleAfterS) {
    setConnection("wait", `Tersambung, tanpa data baru ${ago(newest)} <span class="en">/ connected, nothing new for ${ago(newest)}</span>`);
    document.body.dataset.fresh = "false";
  } else {
    setConnection("ok", 'Langsung <span class="en">/ live</span>');
    document.body.dataset.fresh = "true";
  }
}

function setConnection(kind, text) {
  const pill = $("#connection");
  pill.className = `pill pill-${kind}`;
  pill.innerHTML = text;
}

function connect() {
  // Heartbeats (kind status) are not shown here: leave them out of the stream.
  const source = new EventSource("api/v1/stream?kind=air&kind=water&kind=rain&kind=noise&kind=safety");
  source.addEventListener("open", () => { state.connected = true; freshness(); });
  source.addEventListener("snapshot", (event) => {
    const data = JSON.parse(event.data);
    if (typeof data.server_time_ms === "number") state.clockOffsetMs = Date.now() - data.server_time_ms;
    if (typeof data.stale_after_s === "number") state.staleAfterS = data.stale_after_s;
    state.latest.clear();
    applyIndicators(data);
    touched(applyReadings(data.readings));
  });
  source.addEventListener("readings", (event) => touched(applyReadings(JSON.parse(event.data).readings)));
  source.addEventListener("indicators", (event) => { applyIndicators(JSON.parse(event.data)); touched(new Set()); });
  source.addEventListener("problem", () => setConnection("bad", 'Basis data tidak tersedia <span class="en">/ database unavailable</span>'));
  source.addEventListener("end", () => { state.connected = false; setConnection("wait", 'Menyambung ulang… <span class="en">/ reconnecting</span>'); });
  source.onerror = () => { state.connected = false; setConnection("wait", 'Terputus, mencoba lagi… <span class="en">/ disconnected, retrying</span>'); };
}

// -- chart -----------------------------------------------------------------------------------
async function showChart(kind, deviceId) {
  const [field, aggregate] = CHART_FIELD[kind] || [];
  if (!field) return;
  state.selected = key(kind, deviceId);
  const params = new URLSearchParams({kind, device: deviceId, fields: field, interval: "10m", aggregate});
  const panel = $("#chart-panel");
  panel.hidden = false;
  $("#chart-title").textContent = `${nameOf(deviceId)} — ${field} (${aggregate} / 10 menit, 24 jam)`;
  let body;
  try { body = await getJSON(`api/v1/readings/history?${params}`); } catch (err) {
    $("#chart").textContent = String(err); return;
  }
  const series = body.series[0] || {times_ms: [], values: {[field]: []}};
  const data = [series.times_ms.map((t) => t / 1000), series.values[field]];
  const width = $("#chart-panel").clientWidth - 20;
  if (state.chart) state.chart.destroy();
  $("#chart").innerHTML = "";
  state.chart = new uPlot({width, height: 170, tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Asia/Jakarta"),
    series: [{}, {label: field, stroke: "#0b6e69", width: 2, fill: "rgba(11,110,105,.08)"}],
    axes: [{}, {size: 50}], legend: {show: true}}, data, $("#chart"));
  renderTables(new Set());
}

// -- active alerts -----------------------------------------------------------------------------
// The worst active public alert in a banner above everything, polled from /api/v1/alerts (worst
// first). The sound is off until the visitor turns it on (browsers allow audio only after a
// click): then a short WebAudio tone plays when a more severe alert appears. No audio file.
const SEVERITY = {
  Extreme: {rank: 4, id: "Ekstrem", en: "extreme"}, Severe: {rank: 3, id: "Parah", en: "severe"},
  Moderate: {rank: 2, id: "Sedang", en: "moderate"}, Minor: {rank: 1, id: "Ringan", en: "minor"},
  Unknown: {rank: 0, id: "Tidak diketahui", en: "unknown"}};
const ALERT_POLL_S = (() => {
  // ?alert_poll_s=N (1–300) shortens or lengthens the polling; 15 s by default.
  const asked = Number(new URLSearchParams(location.search).get("alert_poll_s"));
  return asked >= 1 && asked <= 300 ? asked : 15;
})();
const alerts = {sound: false, audio: null, worstRank: null, polls: 0, tones: 0};

const when = (iso) => iso ? new Date(iso).toLocaleString("en-GB", {timeZone: "Asia/Jakarta",
  day: "2-digit", month: "short", hour: "2-digit", minute: "2-digit"}) + " WIB" : "—";
const text = (alert, language) => (alert.texts && (alert.texts[language] ||
  Object.values(alert.texts)[0])) || {headline: alert.level, description: "", instruction: ""};
const capHref = (alert) => `api/v1/alerts/cap/${encodeURIComponent(alert.identifier)}`;

function tone() {
  if (!alerts.audio) return;
  const ctx = alerts.audio, start = ctx.currentTime;
  const oscillator = ctx.createOscillator(), gain = ctx.createGain();
  oscillator.type = "sine";
  oscillator.frequency.setValueAtTime(880, start);
  oscillator.frequency.setValueAtTime(660, start + 0.18);
  gain.gain.setValueAtTime(0.0001, start);
  gain.gain.exponentialRampToValueAtTime(0.25, start + 0.02);
  gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.4);
  oscillator.connect(gain).connect(ctx.destination);
  oscillator.start(start);
  oscillator.stop(start + 0.42);
  alerts.tones += 1;
  document.body.dataset.alertTones = String(alerts.tones);
}

function toggleSound() {
  alerts.sound = !alerts.sound;
  if (alerts.sound && !alerts.audio) {
    const Context = window.AudioContext || window.webkitAudioContext;
    alerts.audio = Context ? new Context() : null;
  }
  if (alerts.audio && alerts.sound) alerts.audio.resume().catch((err) => console.warn(err));
  const button = $("#alert-sound");
  button.setAttribute("aria-pressed", String(alerts.sound));
  button.innerHTML = alerts.sound ? 'Suara peringatan: nyala <span class="en">/ alert sound: on</span>'
    : 'Suara peringatan: mati <span class="en">/ alert sound: off</span>';
}

function renderAlerts(list) {
  const banner = $("#alert-banner");
  const worst = list[0];
  if (!worst) {
    banner.hidden = true;
    banner.removeAttribute("data-alert-id");
    document.body.dataset.activeAlerts = "0";
    return;
  }
  const severity = SEVERITY[worst.severity] || SEVERITY.Unknown;
  banner.className = `sev-${worst.severity}`;
  banner.dataset.alertId = String(worst.id);
  banner.dataset.severity = worst.severity;
  $("#alert-level").innerHTML = `${esc(worst.level)} · ${esc(severity.id)} <span class="en">/ ${esc(severity.en)}</span>`;
  $("#alert-headline").textContent = text(worst, "id-ID").headline;
  const english = worst.texts && worst.texts["en-US"];
  $("#alert-headline-en").textContent = english ? `/ ${english.headline}` : "";
  $("#alert-area").textContent = worst.area ? worst.area.description : "";
  $("#alert-time").textContent = when(worst.sent_at);
  $("#alert-cap").setAttribute("href", capHref(worst));
  const others = list.slice(1);
  $("#alert-others").hidden = others.length === 0;
  $("#alert-others-count").innerHTML = `+${others.length} peringatan lain <span class="en">/ other alerts</span>`;
  $("#alert-others-list").innerHTML = others.map((a) => {
    const s = SEVERITY[a.severity] || SEVERITY.Unknown;
    return `<li data-alert-id="${esc(a.id)}"><b>${esc(a.level)}</b> (${esc(s.id)} / ${esc(s.en)}) — ` +
      `<a href="${esc(capHref(a))}">${esc(text(a, "id-ID").headline)}</a> <span class="muted">${esc(when(a.sent_at))}</span></li>`;
  }).join("");
  banner.hidden = false;
  document.body.dataset.activeAlerts = String(list.length);
}

async function pollAlerts() {
  try {
    const body = await getJSON("api/v1/alerts?active=true&limit=50");
    const list = body.alerts;
    const worstRank = list.length ? Math.max(...list.map((a) => (SEVERITY[a.severity] || SEVERITY.Unknown).rank)) : -1;
    // A tone only for something worse than what was already on screen (not at page load).
    if (alerts.sound && alerts.worstRank !== null && worstRank > alerts.worstRank) tone();
    alerts.worstRank = worstRank;
    renderAlerts(list);
  } catch (err) {
    console.warn(err);   // keep showing the last answer; the next poll tries again
  } finally {
    alerts.polls += 1;
    document.body.dataset.alertPolls = String(alerts.polls);
    setTimeout(pollAlerts, ALERT_POLL_S * 1000);
  }
}

// -- start -----------------------------------------------------------------------------------
async function start() {
  $("#alert-sound").addEventListener("click", toggleSound);
  $("#filter").addEventListener("input", applyFilter);
  pollAlerts();
  try {
    state.meta = await getJSON("api/v1/meta");
    if (state.meta.title) document.title = state.meta.title;
  } catch (err) { console.warn(err); }
  initMap();
  try {
    for (const device of await getJSON("api/v1/devices")) state.devices.set(device.device_id, device);
  } catch (err) { console.warn(err); }
  fitMap();
  drawMarkers();
  $("#chart-close").addEventListener("click", () => { $("#chart-panel").hidden = true; state.selected = null; renderTables(new Set()); });
  connect();
  // Ages grow and rows grey while nothing arrives: redraw the tables every 15 s.
  setInterval(() => { renderTables(new Set()); freshness(); }, 15000);
}

start();
