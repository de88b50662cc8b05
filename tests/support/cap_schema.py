"""Validation of CAP messages against the OASIS CAP 1.2 XML schema vendored in alerts/cap/schema/.

    from cap_schema import assert_valid_cap
    assert_valid_cap(cap_message(view, sender=...))
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import xmlschema

CAP_XSD = Path(__file__).resolve().parents[2] / "alerts" / "cap" / "schema" / "CAP-v1.2.xsd"


@lru_cache(maxsize=1)
def cap_schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(CAP_XSD))


def cap_errors(message: bytes) -> list[str]:
    """Every schema violation in ``message`` (empty: valid)."""
    return [f"{error.path}: {error.reason}"
            for error in cap_schema().iter_errors(message.decode("utf-8"))]


def assert_valid_cap(message: bytes) -> None:
    errors = cap_errors(message)
    assert not errors, "CAP 1.2 schema violations:\n" + "\n".join(errors)
