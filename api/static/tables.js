// Kota Cerdas live page: the latest values per kind, their ages, the incident list and the stream that keeps them current.
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
