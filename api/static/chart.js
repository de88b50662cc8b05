// Kota Cerdas live page: the history chart of one device.
// Classic script sharing the page's globals (common.js first); no build step.
"use strict";

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
