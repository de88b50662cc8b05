// Kota Cerdas live page: the worst active public alert in a banner above everything.
// Classic script sharing the page's globals (common.js first); no build step.
"use strict";

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
