// Kota Cerdas live page: the history chart of one device, with the bands of its standard (Siaga
// thresholds of a gauge, ISPU categories of a pollutant: both from api/v1/readings/fields, so no
// breakpoint is written here), dates as Jakarta reads them (id-ID, WIB: "3 Des 14.00"), a range
// choice and a CSV download of exactly what is drawn.
// Classic script sharing the page's globals (common.js first); no build step.
"use strict";

// Longer ranges use coarser buckets so a chart stays a few hundred points (the API's history
// limits: api.limits.max_points per series).
const CHART_RANGES = [
  {id: "6h", label: "6 jam", en: "6 h", hours: 6, interval: "5m", bucket: "5 menit"},
  {id: "24h", label: "24 jam", en: "24 h", hours: 24, interval: "10m", bucket: "10 menit"},
  {id: "7d", label: "7 hari", en: "7 d", hours: 168, interval: "1h", bucket: "1 jam"},
  {id: "30d", label: "30 hari", en: "30 d", hours: 720, interval: "6h", bucket: "6 jam"},
];
const AGGREGATE_WORDS = {mean: "rata-rata", max: "maksimum", min: "minimum", sum: "jumlah"};
const UNIT_WORDS = {"ug/m3": "µg/m³", "m3/s": "m³/s", count: "kejadian", degC: "°C"};
const WIB = "Asia/Jakarta";
const dayMonth = new Intl.DateTimeFormat("id-ID", {timeZone: WIB, day: "numeric", month: "short"});
const hourMinute = new Intl.DateTimeFormat("id-ID", {timeZone: WIB, hour: "2-digit", minute: "2-digit",
  hour12: false});
const fullDate = new Intl.DateTimeFormat("id-ID", {timeZone: WIB, day: "numeric", month: "short",
  year: "numeric", hour: "2-digit", minute: "2-digit", hour12: false});
const chartState = {range: "24h", scales: new Map(), kind: null, device: null, request: 0};

// An x tick in WIB, day before month: the time alone within a day or two (with the day where it
// changes), the day alone (or day and hour) beyond.
function chartTicks(splits, spanS) {
  let previousDay = null;
  return splits.map((ts) => {
    const date = new Date(ts * 1000);
    const day = dayMonth.format(date);
    const time = hourMinute.format(date);
    const newDay = day !== previousDay;
    previousDay = day;
    if (spanS <= 2 * 86400) return newDay ? `${day}\n${time}` : time;
    return time === "00.00" ? day : `${day}\n${time}`;
  });
}

const unitWords = (unit) => UNIT_WORDS[unit] || unit;
const bandColour = (band) => band.status ? SIAGA_COLOURS[band.status] : (band.hex || NO_DATA);
const withAlpha = (hex, alpha) => {
  const n = parseInt((hex || "#888888").slice(1), 16);
  return `rgba(${n >> 16},${(n >> 8) & 255},${n & 255},${alpha})`;
};

async function fieldScale(kind, deviceId, field) {
  const cacheKey = `${kind}/${kind === "water" ? deviceId : ""}`;
  if (!chartState.scales.has(cacheKey)) {
    const params = new URLSearchParams({kind});
    if (kind === "water") params.set("device", deviceId);
    chartState.scales.set(cacheKey, getJSON(`api/v1/readings/fields?${params}`));
  }
  let scales;
  try { scales = await chartState.scales.get(cacheKey); } catch (err) {
    chartState.scales.delete(cacheKey);
    console.warn(err);
    return {title: kind, field: {field, unit: "", description: "", bands: []}};
  }
  return {title: scales.title, field: scales.fields.find((f) => f.field === field) ||
    {field, unit: "", description: "", bands: []}};
}

// The panel's controls, made once: range buttons, the CSV link, the bands' legend.
function chartTools() {
  if ($("#chart-tools")) return;
  const tools = document.createElement("div");
  tools.id = "chart-tools";
  tools.innerHTML = `<span class="chart-ranges" role="group" aria-label="Rentang / range">` +
    CHART_RANGES.map((r) => `<button type="button" data-range="${r.id}" title="${r.en}">${r.label}</button>`).join("") +
    `</span><a id="chart-csv" download href="#">Unduh CSV <span class="en">/ download</span></a>`;
  $("#chart-panel .chart-head").after(tools);
  const bands = document.createElement("ul");
  bands.id = "chart-bands";
  $("#chart").after(bands);
  for (const button of tools.querySelectorAll("button[data-range]")) {
    button.addEventListener("click", () => {
      chartState.range = button.dataset.range;
      if (chartState.kind) showChart(chartState.kind, chartState.device);
    });
  }
}

function chartTitle(deviceId, scale, aggregate, range) {
  const words = scale.title.split(" / ")[0];
  const what = scale.field.description && chartState.kind === "air" ? ` ${scale.field.field === "pm25"
    ? "PM2.5" : scale.field.field.toUpperCase()}` : "";
  const unit = scale.field.unit ? ` (${unitWords(scale.field.unit)})` : "";
  return `${nameOf(deviceId)} — ${words}${what}${unit} · ${AGGREGATE_WORDS[aggregate] || aggregate} ` +
    `per ${range.bucket}, ${range.label} terakhir`;
}

// The y range: the data, the band edge it last crossed below it and the next one above it (how
// far the next Siaga is); from 0 for amounts and concentrations.
function chartRange(values, bands, kind) {
  const numbers = values.filter((v) => typeof v === "number");
  if (!numbers.length) return [0, 1];
  let low = Math.min(...numbers);
  let high = Math.max(...numbers);
  const edges = bands.map((b) => b.lower).filter((v) => typeof v === "number").sort((a, b) => a - b);
  const above = edges.find((edge) => edge > high);
  const below = edges.filter((edge) => edge <= low).pop();
  if (above !== undefined) high = above;
  if (below !== undefined) low = below;
  if (kind === "air" || kind === "rain" || kind === "safety") low = Math.min(0, low);
  const pad = Math.max((high - low) * 0.08, 1);
  return [low - (low === 0 ? 0 : pad), high + pad];
}

// Drawn before the series (uPlot's drawAxes hook): each band as a light fill, each threshold
// (a band's lower edge) as a dashed line in its colour.
function drawBands(u, bands) {
  const ctx = u.ctx;
  const {left, top, width, height} = u.bbox;
  const [min, max] = [u.scales.y.min, u.scales.y.max];
  ctx.save();
  ctx.beginPath();
  ctx.rect(left, top, width, height);
  ctx.clip();
  bands.forEach((band, index) => {
    const lower = band.lower == null ? min : Math.max(band.lower, min);
    const upper = band.upper == null ? max : Math.min(band.upper, max);
    if (upper <= lower) return;
    const y0 = u.valToPos(upper, "y", true);
    const y1 = u.valToPos(lower, "y", true);
    ctx.fillStyle = withAlpha(bandColour(band), band.status ? 0.10 : 0.16);
    ctx.fillRect(left, y0, width, y1 - y0);
    // a threshold is where a band starts above another: not the scale's own 0
    if (index > 0 && band.lower != null && band.lower >= min && band.lower <= max) {
      ctx.strokeStyle = bandColour(band);
      ctx.lineWidth = 2 * devicePixelRatio;
      ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
      ctx.beginPath();
      ctx.moveTo(left, Math.round(y1));
      ctx.lineTo(left + width, Math.round(y1));
      ctx.stroke();
    }
  });
  ctx.restore();
}

function renderBandLegend(scale) {
  const unit = unitWords(scale.field.unit);
  const list = $("#chart-bands");
  const bands = scale.field.bands;
  list.hidden = !bands.length;
  list.dataset.field = scale.field.field;
  list.innerHTML = bands.map((band) => {
    const range = band.lower == null ? `< ${fmt(band.upper)}` : band.upper == null ? `≥ ${fmt(band.lower)}`
      : `${fmt(band.lower)}–${fmt(band.upper)}`;
    return `<li data-lower="${band.lower ?? ""}" data-upper="${band.upper ?? ""}" data-status="${band.status ?? ""}"` +
      ` title="${esc(band.source)}"><span class="swatch" style="background:${esc(bandColour(band))}"></span>` +
      `${esc(band.label)} <span class="muted">${esc(range)} ${esc(unit)}</span></li>`;
  }).join("");
}

async function showChart(kind, deviceId) {
  const [field, aggregate] = CHART_FIELD[kind] || [];
  if (!field) return;
  chartTools();
  const request = ++chartState.request;
  chartState.kind = kind;
  chartState.device = deviceId;
  state.selected = key(kind, deviceId);
  const range = CHART_RANGES.find((r) => r.id === chartState.range) || CHART_RANGES[1];
  for (const button of document.querySelectorAll("#chart-tools button[data-range]")) {
    button.setAttribute("aria-pressed", String(button.dataset.range === range.id));
  }
  // One window for the chart and its CSV: the same start and end, to the minute.
  const end = new Date(Math.ceil(serverNow() / 60000) * 60000);
  const start = new Date(end.getTime() - range.hours * 3600000);
  const params = new URLSearchParams({kind, device: deviceId, fields: field, interval: range.interval,
    aggregate, start: start.toISOString(), end: end.toISOString()});
  const panel = $("#chart-panel");
  panel.hidden = false;
  panel.dataset.kind = kind;
  panel.dataset.range = range.id;
  $("#chart-csv").href = `api/v1/readings/history?${params}&format=csv`;
  let body;
  let scale;
  try {
    [body, scale] = await Promise.all([getJSON(`api/v1/readings/history?${params}`),
      fieldScale(kind, deviceId, field)]);
  } catch (err) {
    $("#chart").textContent = String(err); return;
  }
  if (request !== chartState.request) return;  // a newer choice is on its way
  $("#chart-title").textContent = chartTitle(deviceId, scale, aggregate, range);
  renderBandLegend(scale);
  const series = body.series[0] || {times_ms: [], values: {[field]: []}};
  const data = [series.times_ms.map((t) => t / 1000), series.values[field]];
  const spanS = range.hours * 3600;
  const bands = scale.field.bands;
  const unit = unitWords(scale.field.unit);
  const chartEl = $("#chart");
  if (state.chart) state.chart.destroy();
  state.chart = null;
  chartEl.innerHTML = "";
  chartEl.dataset.points = String(data[0].length);
  if (!data[0].length) {
    chartEl.innerHTML = '<p class="muted">tidak ada data dalam rentang ini <span class="en">/ no data in this range</span></p>';
    renderTables(new Set());
    return;
  }
  const width = Math.max(200, panel.clientWidth - 20);
  state.chart = new uPlot({
    width, height: 170,
    // splits at whole hours and days of Jakarta's clock
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), WIB),
    scales: {x: {time: true, range: () => [start.getTime() / 1000, end.getTime() / 1000]},
             y: {range: () => chartRange(data[1], bands, kind)}},
    series: [
      {label: "Waktu", value: (u, ts) => ts == null ? "—" : `${fullDate.format(new Date(ts * 1000))} WIB`},
      {label: scale.title.split(" / ")[0], stroke: "#0b6e69", width: 2, fill: "rgba(11,110,105,.08)",
       value: (u, v) => v == null ? "—" : `${fmt(v)} ${unit}`}],
    axes: [
      {values: (u, splits) => {
        const ticks = chartTicks(splits, spanS);
        chartEl.dataset.ticks = JSON.stringify(ticks);
        return ticks;
      }, size: 44},
      {size: 56, label: unit, labelSize: 16, values: (u, splits) => splits.map((v) => fmt(v, 1))}],
    hooks: {drawAxes: [(u) => drawBands(u, bands)]},
    legend: {show: true}}, data, chartEl);
  renderTables(new Set());
}
