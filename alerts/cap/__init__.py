"""CAP 1.2: every alert version as an OASIS Common Alerting Protocol message, and the Atom feed
of current alerts (README.md beside this file: the choices and how to validate by hand).

    from alerts.cap import cap_message, atom_feed
    xml = cap_message(view, sender="kota-cerdas@jakarta.go.id", references=earlier_versions)
"""

from __future__ import annotations

from alerts.cap._message import (
    CAP_MEDIA_TYPE,
    CAP_NAMESPACE,
    CATEGORIES,
    EVENTS,
    GEOCODE_VALUE_NAME,
    JAKARTA,
    Reference,
    cap_message,
    cap_time,
    response_types,
)
from alerts.cap.atom import ATOM_MEDIA_TYPE, ATOM_NAMESPACE, atom_feed, cap_message_url
from alerts.cap.codes import KecamatanCodeError, KecamatanCodes, load_kecamatan_codes

__all__ = ["ATOM_MEDIA_TYPE", "ATOM_NAMESPACE", "CAP_MEDIA_TYPE", "CAP_NAMESPACE", "CATEGORIES",
           "EVENTS", "GEOCODE_VALUE_NAME", "JAKARTA", "KecamatanCodeError", "KecamatanCodes",
           "Reference", "atom_feed", "cap_message", "cap_message_url", "cap_time",
           "load_kecamatan_codes", "response_types"]
