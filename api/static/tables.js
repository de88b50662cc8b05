// Kota Cerdas live page: the latest values per kind, their ages, the incident counts (public),
// each open incident with its alert (an operator's key), and the stream that keeps them current.
// Classic script sharing the page's globals (common.js first); no build step.
"use strict";

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
  // Events: a safety device whose district has open incidents first (most first), then the
  // most recent; its last event alone can be "resolved" while others are open there.
  const openHere = (r) => r.kind === "safety" ? districtOpen(r.district).open : 0;
  const others = sort(byKind.other).sort((a, b) => (isStale(a) - isStale(b)) ||
    (openHere(b) - openHere(a)) || (b.time_ms - a.time_ms));
  $("#table-other tbody").innerHTML = others.map((r) => {
    let value;
    if (r.kind === "rain") value = `${fmt(r.fields.rain_mm)} mm`;
    else if (r.kind === "noise") value = `${fmt(r.fields.laeq_db)} dBA`;
    else if (r.kind === "safety") value = `${eventName((r.tags && r.tags.event) || "event")} ×${fmt(r.fields.count, 0)}` +
      openNote(r.district);
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

// Open incidents per district from kota indicators' counts: {open, stale, byEvent}.
let incidentCounts = new Map();
const districtOpen = (district) => incidentCounts.get(district) || {open: 0, stale: 0, byEvent: []};
function openNote(district) {
  const here = districtOpen(district);
  if (!here.open && !here.stale) return "";
  const words = here.byEvent.map(([event, open]) => `${esc((EVENT_NAMES[event] || [event])[0])} ${open}`).join(", ");
  return `<span class="open-note" data-open="${here.open}" data-stale="${here.stale}"` +
    ` title="insiden terbuka di kecamatan ini / incidents open in this district">` +
    `${here.open} insiden terbuka di ${esc(district)}${words ? `: ${words}` : ""}` +
    `${here.stale ? ` (+${here.stale} lama)` : ""}</span>`;
}

// The list behind the header's count: open incidents per district and category, most first
// (counts from kota indicators; each incident, with its alert, for an operator's key below).
function renderIncidents(incidents) {
  const rows = incidents.items.filter((i) => i.scope === "district" && i.event !== "all" &&
    (i.open_incidents > 0 || i.stale_incidents > 0))
    .sort((a, b) => b.open_incidents - a.open_incidents || b.stale_incidents - a.stale_incidents ||
      (a.district || "").localeCompare(b.district || ""));
  incidentCounts = new Map();
  for (const i of incidents.items.filter((item) => item.scope === "district")) {
    const here = incidentCounts.get(i.district) || {open: 0, stale: 0, byEvent: []};
    if (i.event === "all") { here.open = i.open_incidents; here.stale = i.stale_incidents; }
    else if (i.open_incidents > 0) here.byEvent.push([i.event, i.open_incidents]);
    incidentCounts.set(i.district, here);
  }
  for (const here of incidentCounts.values()) here.byEvent.sort((a, b) => b[1] - a[1]);
  incidentPanels();
  $("#incident-counts").innerHTML = rows.length ? `<table class="incidents"><thead><tr><th>Kecamatan</th>` +
    `<th>Kategori <span class="en">/ category</span></th><th class="num">Terbuka <span class="en">/ open</span></th>` +
    `<th class="num">Lama <span class="en">/ stale</span></th></tr></thead><tbody>` +
    rows.map((i) => `<tr data-district="${esc(i.district)}" data-event="${esc(i.event)}"><td>${esc(i.district)}</td>` +
      `<td>${eventName(i.event)}</td><td class="num">${i.open_incidents}</td><td class="num">${i.stale_incidents}</td></tr>`).join("") +
    `</tbody></table>` : '<p class="muted">tidak ada insiden terbuka <span class="en">/ no open incidents</span></p>';
}

// -- the operators' list ----------------------------------------------------------------------
// Each open incident with its alert, for an operator's API key typed here: kept in this tab's
// sessionStorage only (gone when the tab closes), sent only to this API; the page stays public.
const OPERATOR_KEY = "kota.operatorKey";
const OPERATOR_REFRESH_MS = 30000;
const operator = {timer: null};
const operatorKey = () => { try { return sessionStorage.getItem(OPERATOR_KEY); } catch (err) { return null; } };
const fullStamp = (iso) => iso ? new Date(iso).toLocaleString("id-ID", {timeZone: "Asia/Jakarta",
  day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit", hour12: false}) + " WIB" : "—";

function incidentPanels() {
  if ($("#incident-counts")) return;
  const list = $("#incident-list");
  const before = list.innerHTML;  // "no data yet" until the first counts
  list.innerHTML = '<div id="incident-counts"></div><div id="incident-operator"></div>';
  $("#incident-counts").innerHTML = before;
  renderOperator();
}

function renderOperator(message) {
  const panel = $("#incident-operator");
  if (!panel) return;
  if (!operatorKey()) {
    panel.innerHTML = `<form class="operator-key" autocomplete="off"><label>Kunci operator <span class="en">/ operator key</span>` +
      ` <input id="operator-key" type="password" placeholder="kota_…"></label>` +
      `<button type="submit">Tampilkan insiden <span class="en">/ show incidents</span></button>` +
      (message ? `<span class="flag" role="alert">${esc(message)}</span>` : "") + `</form>`;
    panel.querySelector("form").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("#operator-key").value.trim();
      if (!value) return;
      try { sessionStorage.setItem(OPERATOR_KEY, value); } catch (err) { console.warn(err); }
      loadOperatorIncidents();
    });
    return;
  }
  if (!panel.querySelector("#operator-incidents")) {
    panel.innerHTML = `<div class="operator-key"><b>Insiden per kejadian <span class="en">/ each incident</span></b>` +
      ` <button type="button" id="operator-forget">Lupakan kunci <span class="en">/ forget key</span></button></div>` +
      `<div id="operator-incidents"><p class="muted">memuat… <span class="en">/ loading</span></p></div>`;
    $("#operator-forget").addEventListener("click", () => {
      try { sessionStorage.removeItem(OPERATOR_KEY); } catch (err) { console.warn(err); }
      clearTimeout(operator.timer);
      renderOperator();
    });
  }
}

async function loadOperatorIncidents() {
  clearTimeout(operator.timer);
  const token = operatorKey();
  if (!token) return;
  incidentPanels();
  renderOperator();
  let response;
  try {
    response = await fetch("api/v1/indicators/incidents/open", {headers: {Accept: "application/json",
      Authorization: `Bearer ${token}`}});
  } catch (err) {
    $("#operator-incidents").textContent = String(err);
    operator.timer = setTimeout(loadOperatorIncidents, OPERATOR_REFRESH_MS);
    return;
  }
  if (response.status === 401 || response.status === 403) {
    try { sessionStorage.removeItem(OPERATOR_KEY); } catch (err) { console.warn(err); }
    renderOperator(response.status === 401 ? "kunci tidak dikenal / unknown key"
      : "kunci ini bukan kunci operator / not an operator key");
    return;
  }
  if (!response.ok) {
    $("#operator-incidents").textContent = `HTTP ${response.status}`;
  } else {
    renderOperatorIncidents(await response.json());
  }
  operator.timer = setTimeout(loadOperatorIncidents, OPERATOR_REFRESH_MS);
}

function renderOperatorIncidents(body) {
  const target = $("#operator-incidents");
  if (!target) return;
  const note = body.alerts === "unavailable"
    ? '<p class="muted">status peringatan tidak terbaca <span class="en">/ alert state unavailable</span></p>' : "";
  if (!body.items.length) {
    target.innerHTML = note + '<p class="muted">tidak ada insiden terbuka <span class="en">/ no open incidents</span></p>';
    return;
  }
  target.innerHTML = note + `<table class="incident-list"><thead><tr><th>Kategori</th><th>Perangkat <span class="en">/ device</span></th>` +
    `<th>Kecamatan</th><th>Dibuka <span class="en">/ opened</span></th><th>Umur <span class="en">/ age</span></th>` +
    `<th>Status</th><th>Peringatan <span class="en">/ alert</span></th></tr></thead><tbody>` +
    body.items.map((i) => `<tr data-incident="${esc(i.incident_id || "")}" data-device="${esc(i.device)}" data-state="${esc(i.state)}"` +
      ` data-event="${esc(i.event)}" data-alert="${i.alert ? i.alert.id : ""}">` +
      `<td>${eventName(i.event)}${i.last_event !== i.event ? `<br><span class="muted">terakhir: ${eventName(i.last_event)}</span>` : ""}</td>` +
      `<td title="${esc(i.device)}${i.incident_id ? ` · ${esc(i.incident_id)}` : ""}">${esc(i.device_name)}</td>` +
      `<td>${esc(i.district)}</td><td data-field="opened" title="${esc(i.opened_at)}">${fullStamp(i.opened_at)}</td>` +
      `<td data-field="age">${ago(i.age_s)}</td>` +
      `<td class="state">${i.state === "open" ? 'terbuka <span class="en">/ open</span>' : 'lama <span class="en">/ stale</span>'}</td>` +
      `<td>${i.alert ? `<a href="${esc(i.alert.url)}" data-alert-link="${i.alert.id}">#${i.alert.id} ${esc(i.alert.level)}` +
        ` · ${esc(i.alert.status)}</a>` : "—"}</td></tr>`).join("") + `</tbody></table>`;
  // The alert is for operators: fetched with the key (a plain link would go without it).
  for (const link of target.querySelectorAll("a[data-alert-link]")) {
    link.addEventListener("click", async (event) => {
      event.preventDefault();
      const cell = link.parentElement;
      try {
        const response = await fetch(link.getAttribute("href"), {headers: {Accept: "application/json",
          Authorization: `Bearer ${operatorKey() || ""}`}});
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        const alert = (await response.json()).alert;
        const text = (alert.texts && alert.texts["id-ID"]) || {};
        cell.innerHTML = `<b>${esc(text.headline || alert.level)}</b><br><span class="muted">${esc(alert.severity)} · ` +
          `${esc(alert.status)} · ${fullStamp(alert.sent_at)}</span>`;
      } catch (err) { cell.textContent = String(err); }
    });
  }
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

// The key form (or, with a key kept from earlier in this tab, the list) from the start.
incidentPanels();
if (operatorKey()) loadOperatorIncidents();
