// Kota Cerdas live page: the map: devices coloured by ISPU (air) and Siaga (water), kecamatan
// boundaries (if the city provides them) by their worst station's ISPU, and the legend.
// Classic script sharing the page's globals (common.js first); no build step.
"use strict";

let map;
let districtLayer = null;   // kecamatan polygons (api.page.districts_geojson), if any
let districtLabels = null;  // their names, shown from DISTRICT_LABEL_MIN_ZOOM on
const DISTRICT_LABEL_MIN_ZOOM = 12.5;
const LEGEND_KEY = "kota.legend.open";
const PHONE = "(max-width: 700px)";

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
  // Kecamatan under the markers: a pane below Leaflet's overlay pane (400).
  map.createPane("districts").style.zIndex = "350";
  map.on("zoomend", districtLabelsByZoom);
  const legend = L.control({position: "bottomright"});
  legend.onAdd = legendControl;
  legend.addTo(map);
}

// -- the legend: collapsible, collapsed by default on a phone, the choice kept ---------------
function legendOpen() {
  let kept = null;
  try { kept = localStorage.getItem(LEGEND_KEY); } catch (err) { /* storage off: default */ }
  if (kept === "1" || kept === "0") return kept === "1";
  return !window.matchMedia(PHONE).matches;
}

function setLegendOpen(div, open, keep) {
  div.dataset.open = String(open);
  div.querySelector(".legend-toggle").setAttribute("aria-expanded", String(open));
  div.querySelector(".legend-body").hidden = !open;
  if (keep) { try { localStorage.setItem(LEGEND_KEY, open ? "1" : "0"); } catch (err) { /* not kept */ } }
}

function legendControl() {
  const div = L.DomUtil.create("div", "legend");
  div.id = "legend";
  const entry = (swatch, text) => `<div>${swatch}${text}</div>`;
  const cats = (state.meta ? state.meta.ispu_categories : []).map((c) =>
    entry(`<i style="background:${esc(c.hex)}"></i>`, `${esc(c.name)} <span class="en">≤ ${c.index_max}</span>`)).join("");
  const siaga = [4, 3, 2, 1].map((s) => entry(`<i class="sq" style="background:${SIAGA_COLOURS[s]}"></i>`,
    `${s} ${esc(state.meta ? state.meta.siaga_names[s] : "")} <span class="en">${SIAGA_EN[s]}</span>`)).join("");
  const other = Object.entries(KIND_COLOURS).map(([kind, colour]) =>
    entry(`<i style="background:#fff;border:2.5px solid ${colour}"></i>`,
      {rain: "hujan", noise: "bising", safety: "kejadian"}[kind])).join("");
  div.innerHTML = `<button type="button" class="legend-toggle" aria-controls="legend-body">` +
    `Legenda <span class="en">/ legend</span></button>` +
    `<div id="legend-body" class="legend-body">` +
    `<div class="legend-col"><h4>ISPU <span class="en">udara / air</span></h4>${cats}` +
    entry(`<i style="background:${NO_DATA}"></i>`, `belum cukup data`) + `</div>` +
    `<div class="legend-col"><h4>Siaga <span class="en">air / water</span></h4>${siaga}</div>` +
    `<div class="legend-row">${other}</div>` +
    `<p class="legend-note" data-when="districts" hidden>Kecamatan: ISPU stasiun terburuk <span class="en">/ worst station</span></p></div>`;
  div.querySelector(".legend-toggle").addEventListener("click", () =>
    setLegendOpen(div, div.dataset.open !== "true", true));
  setLegendOpen(div, legendOpen(), false);
  L.DomEvent.disableClickPropagation(div);
  L.DomEvent.disableScrollPropagation(div);
  return div;
}

// -- kecamatan boundaries ------------------------------------------------------------------
// Names as the registry and the boundary file may spell them: "Kec. Tebet", "TEBET", "Tebet".
const districtKey = (name) => String(name || "").toLowerCase()
  .replace(/^(kecamatan|kec\.?)\s+/, "").replace(/[\s_-]+/g, " ").trim();

// A kecamatan's ISPU is its worst complete station's, as the indicator service computes it.
function districtIspu(name) {
  const wanted = districtKey(name);
  let worst = null;
  for (const item of state.ispu.values()) {
    if (item.ispu == null || item.complete === false || districtKey(item.district) !== wanted) continue;
    if (!worst || item.ispu > worst.ispu) worst = item;
  }
  return worst;
}

function districtStyle(feature) {
  const ispu = districtIspu(feature.properties.name);
  return {fillColor: ispu && ispu.hex ? ispu.hex : NO_DATA, fillOpacity: ispu ? 0.32 : 0.12,
          color: "#3b4550", weight: 1.2, opacity: 0.8};
}

function districtTooltip(name) {
  const ispu = districtIspu(name);
  return `<b>Kecamatan ${esc(name)}</b><br>` + (ispu
    ? `ISPU ${fmt(ispu.ispu, 0)} · ${esc(ispu.category || "")} <span class="muted">(${esc(nameOf(ispu.device))})</span>`
    : `ISPU: belum cukup data <span class="en">/ no index yet</span>`);
}

async function loadDistricts() {
  let collection;
  try { collection = await getJSON("api/v1/meta/districts"); } catch (err) { console.warn(err); return; }
  if (!collection.features || !collection.features.length) return;
  if (collection.attribution) map.attributionControl.addAttribution(esc(collection.attribution));
  districtLayer = L.geoJSON(collection, {pane: "districts", style: districtStyle,
    onEachFeature: (feature, layer) => layer.bindTooltip(() => districtTooltip(feature.properties.name),
      {sticky: true, className: "district-tip"})}).addTo(map);
  // Paths and centres exist once the map has a view (fitMap): label then.
  map.whenReady(labelDistricts);
  for (const note of document.querySelectorAll('.legend-note[data-when="districts"]')) note.hidden = false;
  document.body.dataset.districts = String(collection.features.length);
}

function labelDistricts() {
  districtLabels = L.layerGroup().addTo(map);
  districtLayer.eachLayer((layer) => {
    const name = layer.feature.properties.name;
    const path = layer.getElement && layer.getElement();
    if (path) { path.classList.add("district"); path.setAttribute("data-district", name); }
    L.tooltip({permanent: true, direction: "center", className: "district-label", interactive: false})
      .setLatLng(layer.getCenter()).setContent(esc(name)).addTo(districtLabels);
  });
  districtLabelsByZoom();
}

function styleDistricts() {
  if (districtLayer) districtLayer.setStyle(districtStyle);
}

function districtLabelsByZoom() {
  $("#map").classList.toggle("labels-off", map.getZoom() < DISTRICT_LABEL_MIN_ZOOM);
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
  styleDistricts();
}

function fitMap() {
  // Fit the city's core: devices within ~25 km of the median position, so an island station or
  // an upstream gauge does not shrink everything else (they stay one zoom-out away).
  const points = [...state.devices.values()].filter((d) => d.kind !== "status");
  if (!points.length && districtLayer) { map.fitBounds(districtLayer.getBounds()); return; }
  if (!points.length) { map.setView([-6.2, 106.85], 11); return; }
  const median = (values) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)];
  const lat = median(points.map((d) => d.lat)), lon = median(points.map((d) => d.lon));
  const core = points.filter((d) => Math.abs(d.lat - lat) < 0.23 && Math.abs(d.lon - lon) < 0.23);
  map.fitBounds(L.latLngBounds((core.length ? core : points).map((d) => [d.lat, d.lon])).pad(0.06));
}
