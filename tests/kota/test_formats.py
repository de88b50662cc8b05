"""Device formats (kota/formats/<format>/): each folder's sample decodes, its README shows the
sample, every folder is registered, and a new format is a new folder: a test-only format
registered in ``FORMATS`` is parsed by an unchanged ``MessageParser``.
"""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import pytest

from kota.formats import FORMATS, FORMATS_DIR, REASONS, Decoded, DeviceFormat, Refusal
from kota.payload import MessageParser, ParseRules

RECEIVED_MS = 1_768_446_000_000  # 2026-01-15T03:00:00Z


def _sample(name: str) -> tuple[str, bytes]:
    folder = FORMATS_DIR / name
    return ((folder / "sample.topic").read_text(encoding="utf-8").strip(),
            (folder / "sample.json").read_bytes())


def test_every_format_folder_is_registered() -> None:
    folders = {path.name for path in FORMATS_DIR.iterdir()
               if path.is_dir() and not path.name.startswith(("_", "."))}
    assert folders == set(FORMATS)
    for name, format_class in FORMATS.items():
        assert format_class.name == name


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_sample_decodes(name: str) -> None:
    topic, payload = _sample(name)
    decoded = FORMATS[name](ParseRules()).decode(topic, payload)
    assert isinstance(decoded, Decoded), decoded
    assert decoded.readings
    assert not any(isinstance(reading, Refusal) for reading in decoded.readings)
    parsed = MessageParser(device_format=name).parse(topic, payload, RECEIVED_MS)
    assert parsed.rejections == []
    assert len(parsed.lines) == len(decoded.readings)


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_readme_shows_the_sample(name: str) -> None:
    topic, payload = _sample(name)
    readme = (FORMATS_DIR / name / "README.md").read_text(encoding="utf-8")
    assert f"```\n{topic}\n```" in readme
    assert f"```json\n{payload.decode().strip()}\n```" in readme


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_refusals_use_known_reasons(name: str) -> None:
    device_format = FORMATS[name](ParseRules())
    for topic in ("", "a/b", "kota/jakarta/weather/dev-1", "kota/Jakarta/air/dev-1"):
        refusal = device_format.source(topic)
        assert isinstance(refusal, Refusal) and refusal.reason in REASONS
    for payload in (b"", b"\xff", b"[]", b"42", b'[1, {"ts": true}]'):
        readings = device_format.readings(payload)
        refusals = [readings] if isinstance(readings, Refusal) else readings
        assert all(isinstance(r, Refusal) and r.reason in REASONS for r in refusals), refusals


# A device format that is not Kota JSON: ``csv/{city}/{kind}/{device_id}`` topics and
# ``key=value;key=value`` payloads, one reading per message, no timestamps.
FAKE_FORMAT = '''
from kota.formats._contract import DeviceFormat, Reading, Refusal, Source


class SemicolonPairs(DeviceFormat):
    name = "fake_pairs"

    def source(self, topic: str) -> Source | Refusal:
        parts = topic.split("/")
        if len(parts) != 4 or parts[0] != "csv":
            return Refusal("bad_topic", f"topic {topic!r} is not csv/{{city}}/{{kind}}/{{device}}")
        return Source(parts[1], parts[2], parts[3])

    def readings(self, payload: bytes) -> list[Reading | Refusal] | Refusal:
        try:
            pairs = [item.split("=") for item in payload.decode().split(";")]
            fields: dict[str, object] = {key: float(value) for key, value in pairs}
        except ValueError:
            return Refusal("not_object", "expected key=value;key=value")
        return [(fields, None, None, None)]
'''


def test_a_new_format_is_a_new_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "fake_pairs"
    folder.mkdir()
    (folder / "__init__.py").write_text(textwrap.dedent(FAKE_FORMAT), encoding="utf-8")
    spec = importlib.util.spec_from_file_location("fake_pairs", folder / "__init__.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    format_class = module.SemicolonPairs
    assert issubclass(format_class, DeviceFormat)
    monkeypatch.setitem(FORMATS, "fake_pairs", format_class)

    parser = MessageParser(device_format="fake_pairs")
    parsed = parser.parse("csv/jakarta/air/dev-1", b"pm25=35.5;pm10=58", RECEIVED_MS)
    assert parsed.rejections == []
    assert parsed.lines == ["air,city=jakarta,device=dev-1,district=unregistered,kind=air "
                            f"pm25=35.5,pm10=58.0,ts_from_receive=true {RECEIVED_MS}"]
    # The kinds still validate what the new format decodes, and its refusals are recorded.
    refused = parser.parse("csv/jakarta/air/dev-1", b"pm25=-5", RECEIVED_MS)
    assert [r.reason for r in refused.rejections] == ["out_of_range"]
    assert [r.reason for r in parser.parse("kota/jakarta/air/dev-1", b"pm25=1",
                                           RECEIVED_MS).rejections] == ["bad_topic"]
    assert [r.reason for r in parser.parse("csv/jakarta/air/dev-1", b"pm25",
                                           RECEIVED_MS).rejections] == ["not_object"]
    assert [r.reason for r in parser.parse("csv/jakarta/weather/dev-1", b"pm25=1",
                                           RECEIVED_MS).rejections] == ["unknown_kind"]
