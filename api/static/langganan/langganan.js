// The sign-up page (/langganan): Bahasa Indonesia first, English on a toggle. Plain script, no
// eval and no inline handlers (the API's Content-Security-Policy forbids both). The API is
// reached relative to this page, so it works under a root path too.
"use strict";

const API = "../api/v1/subscriptions";
const $ = (id) => document.getElementById(id);
let english = false;
let languageTouched = false;

// ---- language --------------------------------------------------------------------------------
const WORDS = {
  loadFailed: ["Daftar wilayah tidak dapat dimuat; coba muat ulang halaman.",
               "The list of areas could not be loaded; try reloading the page."],
  needArea: ["Pilih minimal satu kecamatan atau kelurahan.", "Choose at least one kecamatan or kelurahan."],
  needPoint: ["Isi lintang dan bujur, atau tekan \u201cGunakan lokasi saya\u201d.",
              "Fill in latitude and longitude, or press \u201cUse my location\u201d."],
  needHazard: ["Pilih minimal satu bahaya.", "Choose at least one hazard."],
  needAddress: ["Isi alamat surel atau URL webhook.", "Fill in an email address or webhook URL."],
  tooMany: ["Terlalu banyak pendaftaran dari jaringan ini; coba lagi nanti.",
            "Too many sign-ups from this network; try again later."],
  refused: ["Pendaftaran ditolak: ", "Sign-up refused: "],
  off: ["Pendaftaran sedang tidak tersedia.", "Sign-up is not available right now."],
  network: ["Tidak dapat menghubungi server; periksa koneksi Anda.", "Cannot reach the server; check your connection."],
  locating: ["Mencari lokasi…", "Finding your location…"],
  located: ["Lokasi ditemukan.", "Location found."],
  noLocation: ["Lokasi tidak tersedia; isi lintang dan bujur sendiri.",
               "Location not available; fill in latitude and longitude yourself."],
  emailLabel: ["Alamat surel", "Email address"],
  webhookLabel: ["URL webhook (https://…)", "Webhook URL (https://…)"],
  loadingData: ["Memuat data Anda…", "Loading your data…"],
  badLink: ["Tautan ini tidak berlaku lagi. Setiap pesan peringatan berisi tautan baru.",
            "This link is no longer valid. Every warning message carries a fresh one."],
  gone: ["Tidak ada data tersimpan untuk tautan ini (sudah dihapus).",
         "Nothing is stored for this link (already deleted)."],
  sure: ["Yakin? Tekan sekali lagi untuk menghapus semuanya.", "Sure? Press once more to delete everything."],
  deleted: ["Semua data Anda sudah dihapus. Anda tidak akan menerima apa pun lagi.",
            "All your data is deleted. You will receive nothing more."],
  kelurahan: ["Kelurahan", "Kelurahan"],
  otherAreas: ["Lainnya", "Other"],
};
const say = (key) => WORDS[key][english ? 1 : 0];

const FIELD_NAMES = {
  address: ["Alamat", "Address"], channel: ["Saluran", "Channel"], status: ["Status", "Status"],
  language: ["Bahasa", "Language"], districts: ["Kecamatan", "Kecamatan"],
  kelurahan: ["Kelurahan", "Kelurahan"], point: ["Titik dan radius", "Point and radius"],
  hazards: ["Bahaya", "Hazards"], min_severity: ["Mulai tingkat", "From level"],
  quiet: ["Jam tenang", "Quiet hours"], created_at: ["Mendaftar", "Signed up"],
  confirmed_at: ["Dikonfirmasi", "Confirmed"], last_sent_at: ["Terakhir dikirim", "Last sent"],
  notifications: ["Peringatan tercatat", "Warnings on record"],
  stored_also: ["Juga disimpan", "Also stored"],
};

function applyLanguage() {
  document.documentElement.lang = english ? "en" : "id";
  for (const element of document.querySelectorAll("[data-en]")) {
    if (element.dataset.id === undefined) element.dataset.id = element.textContent;
    element.textContent = english ? element.dataset.en : element.dataset.id;
  }
  for (const element of document.querySelectorAll("[data-en-placeholder]")) {
    if (element.dataset.idPlaceholder === undefined) element.dataset.idPlaceholder = element.placeholder;
    element.placeholder = english ? element.dataset.enPlaceholder : element.dataset.idPlaceholder;
  }
  $("lang-toggle").textContent = english ? "Bahasa Indonesia" : "English";
  $("lang-toggle").lang = english ? "id" : "en";
  if (!languageTouched) {
    document.querySelector(`input[name=language][value="${english ? "en-US" : "id-ID"}"]`).checked = true;
  }
  channelChanged();
  for (const summary of document.querySelectorAll("summary[data-kelurahan]")) {
    summary.firstChild.textContent = say("kelurahan");
  }
}

// ---- areas -----------------------------------------------------------------------------------
function checkbox(name, value, text) {
  const label = document.createElement("label");
  label.className = "check area";
  const input = document.createElement("input");
  input.type = "checkbox";
  input.name = name;
  input.value = value;
  input.addEventListener("change", countAreas);
  label.append(input, " ", text);
  label.dataset.search = text.toLowerCase();
  return label;
}

function group(title, labels, isKelurahan) {
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  summary.append(title, " ");
  const count = document.createElement("span");
  count.className = "muted";
  count.textContent = `(${labels.length})`;
  summary.append(count);
  if (isKelurahan) summary.dataset.kelurahan = "1";
  details.append(summary, ...labels);
  return details;
}

async function loadAreas() {
  try {
    const answer = await fetch(`${API}/areas`, {headers: {Accept: "application/json"}});
    if (!answer.ok) throw new Error(String(answer.status));
    const areas = await answer.json();
    const byKota = new Map();
    for (const district of areas.districts) {
      const kota = district.kota || say("otherAreas");
      if (!byKota.has(kota)) byKota.set(kota, []);
      byKota.get(kota).push(checkbox("district", district.name, district.name));
    }
    const groups = $("area-groups");
    for (const [kota, labels] of byKota) groups.append(group(kota, labels, false));
    if (areas.kelurahan.length) {
      groups.append(group(say("kelurahan"), areas.kelurahan.map(
        (k) => checkbox("kelurahan", k.name, `${k.name} (${k.district})`)), true));
    }
    $("radius").max = String(areas.max_radius_km);
    $("areas-loading").hidden = true;
  } catch (error) {
    $("areas-loading").textContent = say("loadFailed");
  }
}

function countAreas() {
  $("area-count").textContent = String(
    document.querySelectorAll("#area-groups input:checked").length);
}

function filterAreas() {
  const words = $("area-filter").value.trim().toLowerCase();
  for (const label of document.querySelectorAll("#area-groups label.area")) {
    label.hidden = words !== "" && !label.dataset.search.includes(words);
  }
  for (const details of document.querySelectorAll("#area-groups details")) {
    const shown = details.querySelectorAll("label.area:not([hidden])").length;
    details.hidden = shown === 0;
    details.open = words !== "" && shown > 0;
  }
}

function whereChanged() {
  const point = document.querySelector("input[name=where]:checked").value === "point";
  $("where-areas").hidden = point;
  $("where-point").hidden = !point;
}

function locate() {
  if (!navigator.geolocation) {
    $("locate-status").textContent = say("noLocation");
    return;
  }
  $("locate-status").textContent = say("locating");
  navigator.geolocation.getCurrentPosition((position) => {
    $("lat").value = position.coords.latitude.toFixed(5);
    $("lon").value = position.coords.longitude.toFixed(5);
    $("locate-status").textContent = say("located");
  }, () => {
    $("locate-status").textContent = say("noLocation");
  }, {timeout: 15000, maximumAge: 60000});
}

// ---- sign-up ---------------------------------------------------------------------------------
function channelChanged() {
  const webhook = document.querySelector("input[name=channel]:checked").value === "webhook";
  $("address").type = webhook ? "url" : "email";
  $("address").autocomplete = webhook ? "off" : "email";
  $("address").placeholder = webhook ? "https://…" : "nama@contoh.id";
  $("address-label").textContent = say(webhook ? "webhookLabel" : "emailLabel");
  $("webhook-note").hidden = !webhook;
}

function showError(text) {
  $("form-error").textContent = text;
  $("form-error").hidden = !text;
}

function body() {
  const checked = (name) => [...document.querySelectorAll(`input[name=${name}]:checked`)]
    .map((input) => input.value);
  const request = {
    channel: checked("channel")[0], address: $("address").value.trim(),
    hazards: checked("hazard"), min_severity: checked("severity")[0],
    language: checked("language")[0],
  };
  if (checked("where")[0] === "point") {
    if ($("lat").value === "" || $("lon").value === "") return [null, "needPoint"];
    Object.assign(request, {lat: Number($("lat").value), lon: Number($("lon").value),
                            radius_km: Number($("radius").value)});
  } else {
    Object.assign(request, {districts: checked("district"), kelurahan: checked("kelurahan")});
    if (!request.districts.length && !request.kelurahan.length) return [null, "needArea"];
  }
  if (!request.hazards.length) return [null, "needHazard"];
  if (!request.address) return [null, "needAddress"];
  return [request, null];
}

async function submit(event) {
  event.preventDefault();
  const [request, problem] = body();
  if (problem) {
    showError(say(problem));
    return;
  }
  showError("");
  $("submit").disabled = true;
  try {
    const answer = await fetch(API, {
      method: "POST", body: JSON.stringify(request),
      headers: {"Content-Type": "application/json", Accept: "application/json"}});
    if (answer.status === 202) {
      $("signup").hidden = true;
      $("check-webhook").hidden = request.channel !== "webhook";
      $("check-mail").hidden = false;
      $("check-mail").scrollIntoView({block: "start"});
      return;
    }
    const details = await answer.json().catch(() => ({}));
    if (answer.status === 429) showError(say("tooMany"));
    else if (answer.status === 503) showError(say("off"));
    else showError(say("refused") + (details.detail || answer.status));
  } catch (error) {
    showError(say("network"));
  } finally {
    $("submit").disabled = false;
  }
}

function again() {
  $("check-mail").hidden = true;
  $("signup").hidden = false;
  $("address").value = "";
}

// ---- my data (the manage link: /langganan/#kelola=<token>) ------------------------------------
function manageToken() {
  const found = /^#kelola=(.+)$/.exec(window.location.hash);
  return found ? decodeURIComponent(found[1]) : null;
}

function row(list, key, value) {
  const term = document.createElement("dt");
  term.textContent = FIELD_NAMES[key][english ? 1 : 0];
  const detail = document.createElement("dd");
  detail.textContent = value === null || value === undefined || value === "" ? "—" : String(value);
  list.append(term, detail);
}

function showData(data) {
  const list = $("manage-data");
  list.replaceChildren();
  row(list, "address", data.address);
  row(list, "channel", data.channel);
  row(list, "status", data.status);
  row(list, "language", data.language);
  row(list, "districts", data.districts.join(", "));
  row(list, "kelurahan", data.kelurahan.join(", "));
  row(list, "point", data.lat === null ? "" : `${data.lat}, ${data.lon} · ${data.radius_km} km`);
  row(list, "hazards", data.hazards.join(", "));
  row(list, "min_severity", data.min_severity);
  row(list, "quiet", data.quiet_start_h === null ? "" : `${data.quiet_start_h}:00–${data.quiet_end_h}:00`);
  row(list, "created_at", data.created_at);
  row(list, "confirmed_at", data.confirmed_at);
  row(list, "last_sent_at", data.last_sent_at);
  row(list, "notifications", data.notifications.length);
  row(list, "stored_also", data.stored_also.join("; "));
}

async function manage(token) {
  $("signup").hidden = true;
  $("manage").hidden = false;
  $("manage-status").textContent = say("loadingData");
  const url = `${API}/me?token=${encodeURIComponent(token)}`;
  try {
    const answer = await fetch(url, {headers: {Accept: "application/json"}});
    if (answer.status === 404) {
      $("manage-status").textContent = say("gone");
      return;
    }
    if (!answer.ok) {
      $("manage-status").textContent = say("badLink");
      return;
    }
    showData(await answer.json());
    $("manage-status").textContent = "";
    $("delete-me").hidden = false;
  } catch (error) {
    $("manage-status").textContent = say("network");
  }
  let armed = false;
  $("delete-me").addEventListener("click", async () => {
    if (!armed) {
      armed = true;
      $("manage-status").textContent = say("sure");
      return;
    }
    const answer = await fetch(url, {method: "DELETE"}).catch(() => null);
    if (answer && (answer.status === 204 || answer.status === 404)) {
      $("manage-data").replaceChildren();
      $("delete-me").hidden = true;
      $("manage-status").textContent = say("deleted");
    } else {
      $("manage-status").textContent = say("network");
    }
  });
}

// ---- start -----------------------------------------------------------------------------------
document.addEventListener("DOMContentLoaded", () => {
  english = new URLSearchParams(window.location.search).get("lang") === "en";
  $("lang-toggle").addEventListener("click", () => {
    english = !english;
    applyLanguage();
  });
  for (const input of document.querySelectorAll("input[name=language]")) {
    input.addEventListener("change", () => { languageTouched = true; });
  }
  for (const input of document.querySelectorAll("input[name=where]")) {
    input.addEventListener("change", whereChanged);
  }
  for (const input of document.querySelectorAll("input[name=channel]")) {
    input.addEventListener("change", channelChanged);
  }
  $("area-filter").addEventListener("input", filterAreas);
  $("radius").addEventListener("input", () => { $("radius-value").textContent = $("radius").value; });
  $("locate").addEventListener("click", locate);
  $("signup").addEventListener("submit", submit);
  $("again").addEventListener("click", again);
  applyLanguage();
  const token = manageToken();
  if (token) manage(token);
  loadAreas();
});
