"""Every channel folder is complete and registered; its sample validates and is shown verbatim
in its README; the webhook README's verification recipe accepts what the channel signs."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from alert_samples import flood_view
from pydantic import TypeAdapter, ValidationError

from alerts.channels.registry import CHANNEL_TYPES, ChannelConfig, build_channels
from alerts.channels.webhook import sign
from alerts.model import AlertView

CHANNELS_DIR = Path(__file__).resolve().parents[2] / "alerts" / "channels"
FOLDERS = sorted(p.name for p in CHANNELS_DIR.iterdir()
                 if p.is_dir() and not p.name.startswith(("_", ".")))
CONFIGS: TypeAdapter[list[Any]] = TypeAdapter(list[ChannelConfig])


def test_every_folder_is_registered_and_complete() -> None:
    assert sorted(CHANNEL_TYPES) == FOLDERS
    for name in FOLDERS:
        for part in ("__init__.py", "README.md", "sample.yaml"):
            assert (CHANNELS_DIR / name / part).is_file(), f"{name}/{part} missing"
        channel = CHANNEL_TYPES[name]
        assert getattr(channel, "type") == name  # noqa: B009 (mypy misreads a ClassVar "type")
        assert get_args(channel.settings_model.model_fields["type"].annotation) == (name,)


@pytest.mark.parametrize("name", FOLDERS)
def test_sample_validates_and_is_in_the_readme(name: str) -> None:
    sample = (CHANNELS_DIR / name / "sample.yaml").read_text(encoding="utf-8")
    entries = yaml.safe_load(sample)["alerts"]["channels"]
    configs = CONFIGS.validate_python(entries)
    assert [config.type for config in configs] == [name]
    readme = (CHANNELS_DIR / name / "README.md").read_text(encoding="utf-8")
    assert sample.strip() in readme, f"{name}/README.md does not show sample.yaml verbatim"


def test_the_union_picks_the_model_by_type_and_names_the_bad_setting() -> None:
    with pytest.raises(ValidationError) as error:
        CONFIGS.validate_python([{"type": "webhook", "name": "x", "url": "https://e.org",
                                  "secret": "0123456789abcdef", "colour": "red"}])
    assert "colour" in str(error.value)
    with pytest.raises(ValidationError) as error:
        CONFIGS.validate_python([{"type": "pager", "name": "x"}])
    assert "'webhook', 'email', 'mqtt'" in str(error.value)


def test_build_channels_refuses_a_duplicate_name() -> None:
    configs = CONFIGS.validate_python([
        {"type": "mqtt", "name": "boards"},
        {"type": "webhook", "name": "boards", "url": "https://e.org", "secret": "0" * 16}])
    with pytest.raises(ValueError, match="the name 'boards' is given to entries 0 and 1"):
        build_channels(configs)
    assert [c.name for c in build_channels(configs[:1])] == ["boards"]


def test_the_readme_recipe_verifies_a_signature() -> None:
    readme = (CHANNELS_DIR / "webhook" / "README.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", readme, re.S)
    assert code is not None
    namespace: dict[str, Any] = {}
    exec(code.group(1), namespace)  # the recipe as a receiver would copy it
    timestamp, body = str(int(time.time())), b'{"id":1}'
    headers = {"X-Kota-Timestamp": timestamp,
               "X-Kota-Signature": sign("0123456789abcdef", timestamp, body)}
    assert namespace["verify"](b"0123456789abcdef", headers, body)
    assert not namespace["verify"](b"another-secret-0", headers, body)
    assert not namespace["verify"](b"0123456789abcdef", headers, body + b" ")
    old = {"X-Kota-Timestamp": "1000000000",
           "X-Kota-Signature": sign("0123456789abcdef", "1000000000", body)}
    assert not namespace["verify"](b"0123456789abcdef", old, body)


def test_the_contract_filters() -> None:
    (channel,) = build_channels(CONFIGS.validate_python(
        [{"type": "mqtt", "name": "b", "audiences": ["public", "operators"],
          "min_severity": "Severe", "hazards": ["flood"]}]))
    view: AlertView = flood_view()
    assert channel.accepts(view)
    assert not channel.accepts(flood_view(severity="Moderate"))
    assert not channel.accepts(flood_view(hazard="air"))
    assert not channel.accepts(flood_view(cap_status="Test"))
