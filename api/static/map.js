// Kota Cerdas live page: the map of devices coloured by ISPU (air) and Siaga (water).
// Classic script sharing the page's globals (common.js first); no build step.
"use strict";

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
