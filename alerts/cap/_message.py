"""One alert version as an OASIS CAP 1.2 message (XML bytes). Pure: no I/O but the codes table.

The choices (categories, response types, scope) are explained in README.md beside this file.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from alerts.cap.codes import KecamatanCodes, default_codes
from alerts.model import LANGUAGES, AlertView, Area, Hazard

__all__ = ["CAP_MEDIA_TYPE", "CAP_NAMESPACE", "CATEGORIES", "EVENTS", "GEOCODE_VALUE_NAME",
           "JAKARTA", "Reference", "cap_message", "cap_time", "response_types"]

CAP_NAMESPACE = "urn:oasis:names:tc:emergency:cap:1.2"
CAP_MEDIA_TYPE = "application/cap+xml"
# WIB: the time Jakarta's recipients read; CAP requires an explicit offset on every time.
JAKARTA = ZoneInfo("Asia/Jakarta")
GEOCODE_VALUE_NAME = "kemendagri_kecamatan"

# CAP 1.2 section 3.2.2 <category>: "Met - Meteorological (inc. flood)", "Env - Pollution and
# other environmental", "Safety - General emergency and public safety", "Infra - Utility,
# telecommunication, other non-transport infrastructure".
CATEGORIES: dict[Hazard, tuple[str, ...]] = {
    "flood": ("Met",),
    "rain": ("Met",),
    "air": ("Env",),
    "safety": ("Safety",),
    "device": ("Infra",),
}
# CAP <event>: the kind of event, in each language (the level goes in the headline and the
# "level" parameter).
EVENTS: dict[Hazard, dict[str, str]] = {
    "flood": {"id-ID": "Banjir", "en-US": "Flood"},
    "rain": {"id-ID": "Hujan lebat", "en-US": "Heavy rain"},
    "air": {"id-ID": "Kualitas udara tidak sehat", "en-US": "Unhealthy air quality"},
    "safety": {"id-ID": "Kejadian keselamatan", "en-US": "Safety incident"},
    "device": {"id-ID": "Gangguan perangkat", "en-US": "Device fault"},
}
# CAP <audience> and, for scope Restricted, <restriction>: who may see the message.
AUDIENCE_TEXT: dict[str, dict[str, str]] = {
    "public": {"id-ID": "Masyarakat umum", "en-US": "General public"},
    "operators": {"id-ID": "Operator pusat operasi kota", "en-US": "City operations centre "
                  "operators"},
    "field": {"id-ID": "Tim lapangan pemeliharaan perangkat", "en-US": "Device maintenance "
              "field teams"},
}
RESTRICTIONS: dict[str, str] = {
    "operators": "City operations centre operators only; not for public release",
    "field": "Device maintenance field teams only; not for public release",
}
NOTES: dict[str, str] = {
    "Exercise": "LATIHAN / EXERCISE: a drill; no real event. Take no action.",
    "Test": "UJI / TEST: a technical test; no real event. Ignore.",
}
# XML 1.0 forbids most control characters even escaped; a text carrying one would make the
# whole message unreadable, so they are dropped.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# CAP 1.2 3.2.1: sender and identifier MUST NOT include spaces, commas or restricted characters.
_CAP_TOKEN = re.compile(r"^[^\s,<&]+$")

Reference = AlertView | tuple[str, datetime]


def _q(tag: str) -> str:
    return f"{{{CAP_NAMESPACE}}}{tag}"


def _clean(text: str) -> str:
    return _NOT_XML_CHAR.sub("", text)


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, _q(tag))
    if text is not None:
        element.text = _clean(text)
    return element


def cap_time(moment: datetime, zone: tzinfo = JAKARTA) -> str:
    """CAP's dateTime: whole seconds, an explicit offset, UTC written ``-00:00`` (CAP 1.2
    3.3.2: "Z" MUST NOT be used)."""
    if moment.tzinfo is None:
        raise ValueError(f"time {moment.isoformat()} has no time zone; CAP needs an offset")
    text = moment.astimezone(zone).replace(microsecond=0).isoformat()
    return text[:-6] + "-00:00" if text.endswith("+00:00") else text


def response_types(view: AlertView) -> tuple[str, ...]:
    """CAP <responseType>: what the recipient should do (README.md: the mapping)."""
    if view.msg_type == "Cancel":
        return ("AllClear",)
    if view.hazard in ("safety", "device"):
        # Operators and field teams evaluate; CAP: "Assess ... SHOULD NOT be used in public
        # warning applications", and these never are public.
        return ("Assess",)
    if view.hazard == "flood":
        return {"Extreme": ("Evacuate",), "Severe": ("Prepare",)}.get(view.severity,
                                                                      ("Monitor",))
    if view.hazard == "rain":
        return ("Prepare",) if view.severity in ("Extreme", "Severe") else ("Monitor",)
    # air: limit exposure from Tidak Sehat on; below that, watch the next readings.
    return ("Monitor",) if view.severity in ("Minor", "Unknown") else ("Avoid",)


def _reference_text(sender: str, reference: Reference, zone: tzinfo) -> str:
    if isinstance(reference, AlertView):
        identifier, sent = reference.identifier, reference.sent_at
    else:
        identifier, sent = reference
    if not _CAP_TOKEN.match(identifier):
        raise ValueError(f"reference identifier {identifier!r} has a space, comma, '<' or '&'")
    return f"{sender},{identifier},{cap_time(sent, zone)}"


def _number(value: float) -> str:
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _polygon_text(points: Sequence[tuple[float, float]]) -> str:
    ring = list(points)
    if ring and ring[0] != ring[-1]:
        ring.append(ring[0])   # CAP: the first and last pairs MUST be the same
    if len(ring) < 4:
        raise ValueError(f"polygon has {len(points)} point(s); CAP needs at least 3 distinct "
                         "(lat, lon) points")
    return " ".join(f"{_number(lat)},{_number(lon)}" for lat, lon in ring)


def _parameter_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, datetime):
        return cap_time(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _parameters(view: AlertView) -> list[tuple[str, str]]:
    fixed = [("level", view.level), ("grade", str(view.grade)), ("alert_status", view.status),
             ("rule", view.rule_id), ("scope", view.scope)]
    return fixed + [(str(key), _parameter_value(view.details[key]))
                    for key in sorted(view.details, key=str)]


def _area(info: ET.Element, area: Area, city: str, codes: KecamatanCodes) -> None:
    element = _sub(info, "area")
    coded = [(name, codes.code(city, name)) for name in area.districts]
    uncoded = [name for name, code in coded if code is None and name not in area.description]
    description = area.description
    if uncoded:
        # No code to give: the kecamatan is named in the description instead.
        description = f"{description} ({', '.join(uncoded)})" if description else \
            ", ".join(uncoded)
    _sub(element, "areaDesc", description or city)
    if area.polygon:
        _sub(element, "polygon", _polygon_text(area.polygon))
    if area.circle_km is not None:
        lat, lon, radius_km = area.circle_km
        if radius_km < 0:
            raise ValueError(f"circle radius {radius_km} km is negative")
        _sub(element, "circle", f"{_number(lat)},{_number(lon)} {_number(radius_km)}")
    for _name, code in coded:
        if code is not None:
            geocode = _sub(element, "geocode")
            _sub(geocode, "valueName", GEOCODE_VALUE_NAME)
            _sub(geocode, "value", code)


def cap_message(view: AlertView, *, sender: str, references: Iterable[Reference] = (),
                sender_name: str | None = None, web: str | None = None,
                zone: tzinfo = JAKARTA, codes: KecamatanCodes | None = None) -> bytes:
    """The CAP 1.2 message of ``view`` (UTF-8 XML with its declaration).

    ``sender``: CAP's sender, e.g. ``kota-cerdas@jakarta.go.id`` (no spaces or commas).
    ``references``: earlier versions of the same alert (views, or (identifier, sent) pairs),
    written as CAP's "sender,identifier,sent" list; an Update or the all-clear (Cancel) should
    reference every version sent before it. ``sender_name``: CAP senderName (default
    "Kota Cerdas <city>"); ``web``: a link to more information; ``zone``: the offset times are
    written in; ``codes``: the kecamatan codes table (default: the shipped one).
    """
    if not _CAP_TOKEN.match(sender):
        raise ValueError(f"sender {sender!r} has a space, comma, '<' or '&' (CAP 1.2 3.2.1)")
    if not view.texts:
        raise ValueError(f"alert {view.identifier} has no texts")
    codes = codes if codes is not None else default_codes()
    alert = ET.Element(_q("alert"))
    _sub(alert, "identifier", view.identifier)
    _sub(alert, "sender", sender)
    _sub(alert, "sent", cap_time(view.sent_at, zone))
    _sub(alert, "status", view.cap_status)
    _sub(alert, "msgType", view.msg_type)
    if view.audience == "public":
        _sub(alert, "scope", "Public")
    else:
        _sub(alert, "scope", "Restricted")
        _sub(alert, "restriction", RESTRICTIONS[view.audience])
    if view.cap_status in NOTES:
        _sub(alert, "note", NOTES[view.cap_status])
    reference_texts = list(dict.fromkeys(_reference_text(sender, reference, zone)
                                         for reference in references))
    if reference_texts:
        _sub(alert, "references", " ".join(reference_texts))
    # Every version of one alert shares the incident, so a reader can group them.
    _sub(alert, "incidents", f"kota-{view.city}-alert-{view.id}")
    parameters = _parameters(view)
    for language in [lang for lang in LANGUAGES if lang in view.texts] + \
            sorted(lang for lang in view.texts if lang not in LANGUAGES):
        text = view.texts[language]
        info = _sub(alert, "info")
        _sub(info, "language", language)
        for category in CATEGORIES[view.hazard]:
            _sub(info, "category", category)
        events = EVENTS[view.hazard]
        _sub(info, "event", events.get(language, events["en-US"]))
        for response in response_types(view):
            _sub(info, "responseType", response)
        _sub(info, "urgency", view.urgency)
        _sub(info, "severity", view.severity)
        _sub(info, "certainty", view.certainty)
        audiences = AUDIENCE_TEXT[view.audience]
        _sub(info, "audience", audiences.get(language, audiences["en-US"]))
        _sub(info, "effective", cap_time(view.sent_at, zone))
        if view.fired_at is not None:
            _sub(info, "onset", cap_time(view.fired_at, zone))
        if view.expires_at is not None:
            _sub(info, "expires", cap_time(view.expires_at, zone))
        _sub(info, "senderName", sender_name or f"Kota Cerdas {view.city.title()}")
        for tag, value in (("headline", text.headline), ("description", text.description),
                           ("instruction", text.instruction)):
            if value:
                _sub(info, tag, value)
        if web:
            _sub(info, "web", web)
        for name, value in parameters:
            parameter = _sub(info, "parameter")
            _sub(parameter, "valueName", name)
            _sub(parameter, "value", value)
        _area(info, view.area, view.city, codes)
    ET.indent(alert)
    return ET.tostring(alert, encoding="utf-8", xml_declaration=True,
                       default_namespace=CAP_NAMESPACE) + b"\n"

