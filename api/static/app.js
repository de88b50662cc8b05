// Kota Cerdas live page: start-up: metadata, devices, map, stream and the alert poll.
// Classic script sharing the page's globals (common.js first); no build step.
"use strict";

async function start() {
  $("#alert-sound").addEventListener("click", toggleSound);
  $("#filter").addEventListener("input", applyFilter);
  pollAlerts();
  try {
    state.meta = await getJSON("api/v1/meta");
    if (state.meta.title) document.title = state.meta.title;
  } catch (err) { console.warn(err); }
  initMap();
  const districts = loadDistricts();  // in parallel with the devices
  try {
    for (const device of await getJSON("api/v1/devices")) state.devices.set(device.device_id, device);
  } catch (err) { console.warn(err); }
  await districts;
  fitMap();
  drawMarkers();
  $("#chart-close").addEventListener("click", () => { $("#chart-panel").hidden = true; state.selected = null; renderTables(new Set()); });
  connect();
  // Ages grow and rows grey while nothing arrives: redraw the tables every 15 s.
  setInterval(() => { renderTables(new Set()); freshness(); }, 15000);
}

start();
