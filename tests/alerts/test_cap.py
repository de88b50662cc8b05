"""CAP 1.2 messages and the Atom feed (alerts/cap/): every message valid against the OASIS XSD,
and the fields each kind of alert must carry."""

from __future__ import annotations

import csv
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cap_schema import assert_valid_cap, cap_errors

from alerts.cap import (
    CAP_MEDIA_TYPE,
    GEOCODE_VALUE_NAME,
    KecamatanCodeError,
    atom_feed,
    cap_message,
    cap_message_url,
    cap_time,
    load_kecamatan_codes,
)
from alerts.cap.codes import CODES_FILE
from alerts.model import AlertText, AlertView, Area

ROOT = Path(__file__).resolve().parents[2]
NS = {"cap": "urn:oasis:names:tc:emergency:cap:1.2", "atom": "http://www.w3.org/2005/Atom"}
SENDER = "kota-cerdas@jakarta.go.id"
T0 = datetime(2026, 1, 15, 3, 0, 0, 250_000, tzinfo=UTC)   # 10:00:00 WIB
TEXTS = {"id-ID": AlertText("Banjir Siaga 3 di Manggarai", "Tinggi muka air 760 cm.",
                            "Siapkan dokumen penting."),
         "en-US": AlertText("Flood alert level 3 at Manggarai", "Water level 760 cm.",
                            "Prepare important documents.")}


def view(**changes: Any) -> AlertView:
    base = AlertView(
        id=42, version=1, rule_id="flood-siaga", scope="manggarai", city="jakarta",
        hazard="flood", audience="public", status="firing", msg_type="Alert",
        cap_status="Actual", level="Siaga 3 (Waspada)", grade=2, severity="Moderate",
        urgency="Expected", certainty="Observed", sent_at=T0, fired_at=T0, texts=TEXTS,
        area=Area("Manggarai dan sekitarnya", districts=("Tebet", "Setiabudi"),
                  circle_km=(-6.2088, 106.8456, 3.5)),
        details={"level_cm": 760.0, "rise_cm_per_h": 12.5})
    return replace(base, **changes)


def text(element: ET.Element, path: str) -> str | None:
    found = element.find(path, NS)
    return None if found is None else found.text


def texts(element: ET.Element, path: str) -> list[str | None]:
    return [found.text for found in element.findall(path, NS)]


@dataclass
class Case:
    view: AlertView
    references: tuple[Any, ...] = ()
    expect: dict[str, Any] = field(default_factory=dict)       # alert-level paths -> text
    info: dict[str, Any] = field(default_factory=dict)         # per-info paths -> text or list
    geocodes: list[str] = field(default_factory=list)
    language_texts: dict[str, AlertText] = field(default_factory=lambda: TEXTS)


V1 = view()
V2 = view(version=2, msg_type="Update", level="Siaga 2 (Siaga)", grade=3, severity="Severe",
          sent_at=T0 + timedelta(hours=1))
SPECIAL = {"id-ID": AlertText("Air naik <50 cm> & \"cepat\" 🌊", "a < b && c > d\x07 'kutip'",
                              "Hubungi 112 & ikuti <petugas>"),
           "en-US": AlertText("Water <rising> & fast", "x&y", "")}

CASES = {
    "flood-first-version-public-circle-codes": Case(
        V1,
        expect={"cap:identifier": "kota-jakarta-alert-42-v1", "cap:sender": SENDER,
                "cap:sent": "2026-01-15T10:00:00+07:00", "cap:status": "Actual",
                "cap:msgType": "Alert", "cap:scope": "Public", "cap:restriction": None,
                "cap:references": None, "cap:note": None,
                "cap:incidents": "kota-jakarta-alert-42"},
        info={"cap:category": ["Met"], "cap:responseType": ["Monitor"],
              "cap:urgency": "Expected", "cap:severity": "Moderate",
              "cap:certainty": "Observed", "cap:effective": "2026-01-15T10:00:00+07:00",
              "cap:onset": "2026-01-15T10:00:00+07:00", "cap:expires": None,
              "cap:senderName": "Kota Cerdas Jakarta",
              "cap:area/cap:areaDesc": "Manggarai dan sekitarnya",
              "cap:area/cap:circle": "-6.2088,106.8456 3.5", "cap:area/cap:polygon": None},
        geocodes=["31.74.01", "31.74.02"]),
    "flood-escalation-update-references-v1": Case(
        V2, references=(V1,),
        expect={"cap:identifier": "kota-jakarta-alert-42-v2", "cap:msgType": "Update",
                "cap:sent": "2026-01-15T11:00:00+07:00",
                "cap:references": f"{SENDER},kota-jakarta-alert-42-v1,"
                                  "2026-01-15T10:00:00+07:00"},
        info={"cap:responseType": ["Prepare"], "cap:severity": "Severe",
              "cap:parameter[cap:valueName='level']/cap:value": "Siaga 2 (Siaga)",
              "cap:parameter[cap:valueName='grade']/cap:value": "3"},
        geocodes=["31.74.01", "31.74.02"]),
    "flood-all-clear-cancel-references-every-version": Case(
        view(version=3, msg_type="Cancel", status="resolved", level="Normal", grade=0,
             severity="Minor", urgency="Past", sent_at=T0 + timedelta(hours=5),
             expires_at=T0 + timedelta(hours=11)),
        references=(V1, ("kota-jakarta-alert-42-v2", T0 + timedelta(hours=1))),
        expect={"cap:msgType": "Cancel", "cap:status": "Actual",
                "cap:references": f"{SENDER},kota-jakarta-alert-42-v1,2026-01-15T10:00:00+07:00"
                                  f" {SENDER},kota-jakarta-alert-42-v2,"
                                  "2026-01-15T11:00:00+07:00"},
        info={"cap:responseType": ["AllClear"], "cap:urgency": "Past",
              "cap:expires": "2026-01-15T21:00:00+07:00",
              "cap:parameter[cap:valueName='alert_status']/cap:value": "resolved"},
        geocodes=["31.74.01", "31.74.02"]),
    "flood-awas-evacuate": Case(
        view(level="Siaga 1 (Awas)", grade=4, severity="Extreme", urgency="Immediate"),
        info={"cap:responseType": ["Evacuate"], "cap:urgency": "Immediate"},
        geocodes=["31.74.01", "31.74.02"]),
    "air-drill-exercise-polygon": Case(
        view(hazard="air", rule_id="ispu-tidak-sehat", scope="Gambir", cap_status="Exercise",
             level="Tidak Sehat", severity="Severe",
             area=Area("Kecamatan Gambir", districts=("Gambir",),
                       polygon=((-6.17, 106.81), (-6.16, 106.83), (-6.18, 106.83)))),
        expect={"cap:status": "Exercise",
                "cap:note": "LATIHAN / EXERCISE: a drill; no real event. Take no action."},
        info={"cap:category": ["Env"], "cap:responseType": ["Avoid"],
              "cap:area/cap:polygon": "-6.17,106.81 -6.16,106.83 -6.18,106.83 -6.17,106.81",
              "cap:area/cap:circle": None},
        geocodes=["31.71.01"]),
    "rain-test-message-utc": Case(
        view(hazard="rain", cap_status="Test", severity="Severe", fired_at=None,
             area=Area("Jakarta Utara", districts=("Penjaringan", "Pademangan"))),
        expect={"cap:status": "Test",
                "cap:note": "UJI / TEST: a technical test; no real event. Ignore."},
        info={"cap:category": ["Met"], "cap:responseType": ["Prepare"], "cap:onset": None,
              "cap:area/cap:circle": None},
        geocodes=["31.72.01", "31.72.05"]),
    "safety-operators-restricted": Case(
        view(hazard="safety", audience="operators", rule_id="panic-button", scope="pb-017",
             level="Panic", severity="Severe", urgency="Immediate",
             area=Area("Halte Harmoni", districts=("Gambir",),
                       circle_km=(-6.1659, 106.8203, 0.2))),
        expect={"cap:scope": "Restricted",
                "cap:restriction": "City operations centre operators only; not for public "
                                   "release"},
        info={"cap:category": ["Safety"], "cap:responseType": ["Assess"],
              "cap:circle": None, "cap:area/cap:circle": "-6.1659,106.8203 0.2"},
        geocodes=["31.71.01"]),
    "device-field-no-geometry": Case(
        view(hazard="device", audience="field", rule_id="device-offline", scope="aq-007",
             level="Offline", severity="Minor", urgency="Expected",
             area=Area("Sensor aq-007")),
        expect={"cap:scope": "Restricted",
                "cap:restriction": "Device maintenance field teams only; not for public "
                                   "release"},
        info={"cap:category": ["Infra"], "cap:responseType": ["Assess"],
              "cap:area/cap:areaDesc": "Sensor aq-007", "cap:area/cap:circle": None},
        geocodes=[]),
    "special-characters-and-a-kecamatan-without-code": Case(
        view(texts=SPECIAL, area=Area("Hulu Ciliwung", districts=("Tebet", "Beji")),
             details={"note": "<b>&amp;</b>", "affected": ["Tebet", "Beji"], "ok": True}),
        info={"cap:area/cap:areaDesc": "Hulu Ciliwung (Beji)",
              "cap:parameter[cap:valueName='note']/cap:value": "<b>&amp;</b>",
              "cap:parameter[cap:valueName='affected']/cap:value": '["Tebet", "Beji"]',
              "cap:parameter[cap:valueName='ok']/cap:value": "true"},
        geocodes=["31.74.01"],
        language_texts={"id-ID": AlertText("Air naik <50 cm> & \"cepat\" 🌊",
                                           "a < b && c > d 'kutip'",
                                           "Hubungi 112 & ikuti <petugas>"),
                        "en-US": AlertText("Water <rising> & fast", "x&y", "")}),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_message_is_valid_cap_with_the_expected_fields(case: Case) -> None:
    message = cap_message(case.view, sender=SENDER, references=case.references)
    assert_valid_cap(message)
    root = ET.fromstring(message)
    assert root.tag == "{urn:oasis:names:tc:emergency:cap:1.2}alert"
    for path, expected in case.expect.items():
        assert text(root, path) == expected, path
    infos = root.findall("cap:info", NS)
    assert [text(info, "cap:language") for info in infos] == ["id-ID", "en-US"]
    for info in infos:
        language = text(info, "cap:language")
        assert language is not None
        words = case.language_texts[language]
        assert text(info, "cap:headline") == words.headline
        assert text(info, "cap:description") == words.description
        assert text(info, "cap:instruction") == (words.instruction or None)
        for path, expected in case.info.items():
            actual = texts(info, path) if isinstance(expected, list) else text(info, path)
            assert actual == expected, f"{language} {path}"
        assert [text(geocode, "cap:valueName") for geocode in
                info.findall("cap:area/cap:geocode", NS)] == \
            [GEOCODE_VALUE_NAME] * len(case.geocodes)
        assert texts(info, "cap:area/cap:geocode/cap:value") == case.geocodes


def test_events_and_audience_are_written_in_each_language() -> None:
    root = ET.fromstring(cap_message(view(), sender=SENDER))
    infos = root.findall("cap:info", NS)
    assert [(text(info, "cap:event"), text(info, "cap:audience")) for info in infos] == \
        [("Banjir", "Masyarakat umum"), ("Flood", "General public")]


def test_parameters_carry_the_level_grade_rule_and_figures_in_order() -> None:
    info = ET.fromstring(cap_message(view(), sender=SENDER)).find("cap:info", NS)
    assert info is not None
    pairs = [(text(p, "cap:valueName"), text(p, "cap:value"))
             for p in info.findall("cap:parameter", NS)]
    assert pairs == [("level", "Siaga 3 (Waspada)"), ("grade", "2"), ("alert_status", "firing"),
                     ("rule", "flood-siaga"), ("scope", "manggarai"),
                     ("level_cm", "760.0"), ("rise_cm_per_h", "12.5")]


def test_a_view_with_one_language_gives_one_info() -> None:
    only = view(texts={"en-US": TEXTS["en-US"]})
    message = cap_message(only, sender=SENDER)
    assert_valid_cap(message)
    assert texts(ET.fromstring(message), "cap:info/cap:language") == ["en-US"]


def test_the_schema_check_can_fail() -> None:
    good = cap_message(view(), sender=SENDER)
    assert cap_errors(good) == []
    for bad in (good.replace(b"<status>Actual</status>", b"<status>Real</status>"),
                good.replace(b"+07:00</sent>", b"Z</sent>"),
                good.replace(b"<urgency>Expected</urgency>", b"")):
        assert cap_errors(bad), bad[:80]


def test_times_are_whole_seconds_with_an_offset_and_utc_is_minus_zero() -> None:
    assert cap_time(T0) == "2026-01-15T10:00:00+07:00"
    assert cap_time(T0, UTC) == "2026-01-15T03:00:00-00:00"
    message = cap_message(view(), sender=SENDER, zone=UTC)
    assert_valid_cap(message)
    assert text(ET.fromstring(message), "cap:sent") == "2026-01-15T03:00:00-00:00"
    with pytest.raises(ValueError, match="no time zone"):
        cap_time(datetime(2026, 1, 15, 3, 0))


@pytest.mark.parametrize("sender", ["kota cerdas@jakarta.go.id", "a,b", "a<b", "a&b"])
def test_a_sender_cap_forbids_is_refused(sender: str) -> None:
    with pytest.raises(ValueError, match="sender"):
        cap_message(view(), sender=sender)


def test_a_polygon_needs_three_points() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        cap_message(view(area=Area("x", polygon=((-6.1, 106.8), (-6.2, 106.8)))), sender=SENDER)


def test_options_sender_name_and_web() -> None:
    message = cap_message(view(), sender=SENDER, sender_name="BPBD DKI Jakarta",
                          web="https://kota.example.go.id/alerts/42")
    assert_valid_cap(message)
    info = ET.fromstring(message).find("cap:info", NS)
    assert info is not None
    assert text(info, "cap:senderName") == "BPBD DKI Jakarta"
    assert text(info, "cap:web") == "https://kota.example.go.id/alerts/42"


# --- the kecamatan codes -------------------------------------------------------------------

KOTA_PREFIX = {"Kepulauan Seribu": "31.01", "Jakarta Pusat": "31.71", "Jakarta Utara": "31.72",
               "Jakarta Barat": "31.73", "Jakarta Selatan": "31.74", "Jakarta Timur": "31.75"}


def test_every_jakarta_kecamatan_has_a_code_under_its_kota() -> None:
    codes = load_kecamatan_codes()
    with (ROOT / "indicators" / "data" / "jakarta" / "districts.csv").open(newline="") as f:
        districts = list(csv.DictReader(f))
    assert len(districts) == 44 and len(codes) == 44
    for row in districts:
        found = codes.get(row["city"], row["kecamatan"])
        assert found is not None, row["kecamatan"]
        assert found.code is not None and found.confidence == "secondary"
        assert found.code.rsplit(".", 1)[0] == KOTA_PREFIX[row["kota_administrasi"]], found
    assert codes.code("jakarta", "gambir ") == "31.71.01"
    assert codes.code("jakarta", "Beji") is None


HEADER = "city,kecamatan,code,source,confidence\n"


@pytest.mark.parametrize(("body", "message"), [
    ("city,kecamatan,code\n", r":1: missing column\(s\) source, confidence"),
    (HEADER + "Jakarta,Gambir,31.71.01,K1,secondary\n", r":2: city 'Jakarta' is not a city"),
    (HEADER + "jakarta,,31.71.01,K1,secondary\n", r":2: kecamatan is empty"),
    (HEADER + "jakarta,Gambir,3171010,K1,secondary\n", r":2: code '3171010' is not a "
                                                       "Kemendagri kecamatan code"),
    (HEADER + "jakarta,Gambir,31.71.01,K1,sure\n", r":2: confidence 'sure' is not one of"),
    (HEADER + "jakarta,Gambir,,,secondary\n", r":2: no code for Gambir, so its confidence "
                                              "must be 'unverified'"),
    (HEADER + "jakarta,Gambir,31.71.01,K1,unverified\n", r":2: code 31.71.01 is marked "
                                                         "unverified"),
    (HEADER + "jakarta,Gambir,31.71.01,,secondary\n", r":2: code 31.71.01 has no source"),
    (HEADER + "jakarta,Gambir,31.71.01,K1,secondary\njakarta,Menteng,31.71.01,K1,secondary\n",
     r":3: code 31.71.01 already given on line 2"),
    (HEADER + "jakarta,Gambir,31.71.01,K1,secondary\njakarta,gambir,,,unverified\n",
     r":3: gambir \(jakarta\) already on line 2"),
])
def test_a_bad_codes_file_names_file_and_line(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "codes.csv"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(KecamatanCodeError, match=message) as caught:
        load_kecamatan_codes(path)
    assert str(caught.value).startswith(str(path)) and "\n" not in str(caught.value)


def test_a_kecamatan_without_code_is_named_only(tmp_path: Path) -> None:
    path = tmp_path / "codes.csv"
    path.write_text(HEADER + "jakarta,Gambir,,,unverified\njakarta,Tebet,31.74.01,K1,secondary\n",
                    encoding="utf-8")
    codes = load_kecamatan_codes(path)
    message = cap_message(view(area=Area("Pusat kota", districts=("Gambir", "Tebet"))),
                          sender=SENDER, codes=codes)
    assert_valid_cap(message)
    info = ET.fromstring(message).find("cap:info", NS)
    assert info is not None
    assert text(info, "cap:area/cap:areaDesc") == "Pusat kota (Gambir)"
    assert texts(info, "cap:area/cap:geocode/cap:value") == ["31.74.01"]


def test_a_missing_codes_file_is_one_line() -> None:
    with pytest.raises(KecamatanCodeError, match="cannot read the kecamatan codes"):
        load_kecamatan_codes(CODES_FILE.with_name("absent.csv"))


# --- the Atom feed -------------------------------------------------------------------------

BASE = "https://kota.example.go.id/api/v1/alerts/cap"


def test_feed_lists_entries_newest_first_each_linking_to_its_message() -> None:
    air = view(id=43, hazard="air", level="Tidak Sehat", sent_at=T0 + timedelta(minutes=30),
               texts={"id-ID": AlertText("Udara Tidak Sehat di Gambir", "ISPU 160 & naik", ""),
                      "en-US": AlertText("Unhealthy air in Gambir", "ISPU 160", "")})
    feed = atom_feed([V1, air, V2], base_url=BASE + "/", sender=SENDER,
                     feed_url="https://kota.example.go.id/api/v1/alerts/feed.atom")
    root = ET.fromstring(feed)
    assert root.tag == "{http://www.w3.org/2005/Atom}feed"
    assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == "id-ID"
    assert text(root, "atom:id") == "https://kota.example.go.id/api/v1/alerts/feed.atom"
    assert text(root, "atom:updated") == "2026-01-15T11:00:00+07:00"
    assert text(root, "atom:author/atom:name") == SENDER
    self_link = root.find("atom:link[@rel='self']", NS)
    assert self_link is not None
    assert self_link.get("href") == "https://kota.example.go.id/api/v1/alerts/feed.atom"
    entries = root.findall("atom:entry", NS)
    expected = [(V2, "2026-01-15T11:00:00+07:00", TEXTS["id-ID"]),
                (air, "2026-01-15T10:30:00+07:00", air.texts["id-ID"]),
                (V1, "2026-01-15T10:00:00+07:00", TEXTS["id-ID"])]
    assert len(entries) == len(expected)
    for entry, (item, updated, words) in zip(entries, expected, strict=True):
        url = f"{BASE}/{item.identifier}"
        assert cap_message_url(BASE, item) == url
        assert text(entry, "atom:id") == url
        assert text(entry, "atom:title") == words.headline
        assert text(entry, "atom:summary") == words.description
        assert text(entry, "atom:updated") == updated
        assert text(entry, "atom:author/atom:name") == SENDER
        links = entry.findall("atom:link", NS)
        assert [(link.get("rel"), link.get("type"), link.get("href")) for link in links] == \
            [("alternate", CAP_MEDIA_TYPE, url)]
        # The message at that URL is this version's (its identifier is the URL's last part).
        message = ET.fromstring(cap_message(item, sender=SENDER))
        assert text(message, "cap:identifier") == url.rsplit("/", 1)[1]


def test_feed_in_english_and_empty_feed() -> None:
    root = ET.fromstring(atom_feed([V1], base_url=BASE, sender=SENDER, language="en-US"))
    assert text(root, "atom:entry/atom:title") == TEXTS["en-US"].headline
    assert text(root, "atom:id") == f"{BASE}/feed.atom"
    empty = ET.fromstring(atom_feed([], base_url=BASE, sender=SENDER, updated=T0))
    assert empty.findall("atom:entry", NS) == []
    assert text(empty, "atom:updated") == "2026-01-15T10:00:00+07:00"


# --- the sample in alerts/cap/ (README.md validates it by hand) ----------------------------

SAMPLE_FILE = ROOT / "alerts" / "cap" / "sample.xml"


def sample_view() -> AlertView:
    return view(
        id=7, version=2, msg_type="Update", level="Siaga 2 (Siaga)", grade=3,
        severity="Severe", urgency="Expected", certainty="Likely",
        sent_at=datetime(2026, 1, 15, 4, 0, tzinfo=UTC),
        fired_at=datetime(2026, 1, 15, 2, 30, tzinfo=UTC),
        expires_at=datetime(2026, 1, 15, 10, 0, tzinfo=UTC),
        texts={"id-ID": AlertText(
                   "Pintu Air Manggarai Siaga 2: banjir mungkin terjadi di Tebet dan Jatinegara",
                   "Tinggi muka air di Pintu Air Manggarai 860 cm dan naik 15 cm per jam. "
                   "Air dari Katulampa diperkirakan tiba dalam 6-9 jam.",
                   "Siapkan dokumen penting dan obat-obatan, pindahkan barang ke tempat tinggi, "
                   "ikuti arahan BPBD dan petugas kelurahan."),
               "en-US": AlertText(
                   "Manggarai floodgate at alert level 2: flooding possible in Tebet and "
                   "Jatinegara",
                   "Water level at the Manggarai floodgate is 860 cm and rising 15 cm per hour. "
                   "Water from Katulampa is expected in 6-9 hours.",
                   "Prepare documents and medicines, move belongings higher, follow BPBD and "
                   "kelurahan officers.")},
        area=Area("Bantaran Ciliwung hilir Pintu Air Manggarai",
                  districts=("Tebet", "Jatinegara", "Matraman"),
                  circle_km=(-6.2097, 106.8498, 4.0)),
        details={"level_cm": 860.0, "rise_cm_per_h": 15.0, "gauge": "manggarai"})


def sample_message() -> bytes:
    earlier = ("kota-jakarta-alert-7-v1", datetime(2026, 1, 15, 2, 30, tzinfo=UTC))
    return cap_message(sample_view(), sender=SENDER, references=[earlier],
                       sender_name="Kota Cerdas Jakarta (Pusat Operasi)")


def test_the_shipped_sample_is_what_the_writer_produces() -> None:
    message = sample_message()
    assert_valid_cap(message)
    if os.environ.get("KOTA_CAP_SAMPLE_WRITE") == "1":
        SAMPLE_FILE.write_bytes(message)
    assert SAMPLE_FILE.read_bytes() == message, (
        "alerts/cap/sample.xml differs from the writer's output; if the change is intended: "
        "KOTA_CAP_SAMPLE_WRITE=1 .venv/bin/pytest tests/alerts/test_cap.py -k sample")
