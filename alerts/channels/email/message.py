"""The email's words and headers: pure functions from an alert version to a message.

Subject: the headline in the first configured language. Body: plain text, one part per language
(Bahasa Indonesia then English by default), each with the description, what to do, the area, the
time in WIB and a link. ``Message-ID`` comes from the idempotency key, so a repeat after a crash
carries the same id; ``In-Reply-To``/``References`` name the alert's first version, so mail
clients thread the updates.
"""

from __future__ import annotations

import re
from email.message import EmailMessage
from email.utils import format_datetime
from zoneinfo import ZoneInfo

from alerts.model import AlertView

__all__ = ["WIB", "build_message", "first_message_id", "message_id"]

# Western Indonesia Time (UTC+7, no daylight saving): how Jakarta reads a clock.
WIB = ZoneInfo("Asia/Jakarta")

_LABELS = {
    "id-ID": {"todo": "Yang harus dilakukan", "area": "Wilayah", "districts": "Kecamatan",
              "time": "Waktu", "level": "Tingkat", "status": "Status", "link": "Tautan",
              "drill": "LATIHAN — bukan kejadian nyata", "drill_tag": "LATIHAN",
              "statuses": {"pending": "menunggu", "firing": "aktif",
                           "acknowledged": "ditangani", "resolved": "selesai"}},
    "en-US": {"todo": "What to do", "area": "Area", "districts": "Districts",
              "time": "Time", "level": "Level", "status": "Status", "link": "Link",
              "drill": "EXERCISE — not a real event", "drill_tag": "EXERCISE",
              "statuses": {"pending": "pending", "firing": "active",
                           "acknowledged": "acknowledged", "resolved": "resolved"}},
}
# RFC 5322 3.2.3 atext minus "@" and "<>": what may stand left of the "@" in a Message-ID.
_NOT_ATEXT = re.compile(r"[^A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.]")


def message_id(idempotency_key: str, domain: str) -> str:
    """``<key@domain>``, the key's characters that a Message-ID cannot hold replaced by "_"."""
    local = _NOT_ATEXT.sub("_", idempotency_key).strip(".") or "alert"
    local = re.sub(r"\.{2,}", ".", local)
    return f"<{local}@{domain}>"


def first_message_id(view: AlertView, channel: str, domain: str) -> str:
    """The Message-ID of the alert's version 1 to this channel (the thread's root), for the key
    ``alerts.outbox.idempotency_key`` makes."""
    return message_id(f"kota-{view.city}-alert-{view.id}-v1-{channel}", domain)


def _clock(view: AlertView) -> str:
    return view.sent_at.astimezone(WIB).strftime("%Y-%m-%d %H:%M WIB")


def _part(view: AlertView, language: str, link: str | None) -> str:
    labels = _LABELS.get(language, _LABELS["en-US"])
    text = view.texts[language]
    lines = []
    if view.cap_status != "Actual":
        lines += [f"*** {labels['drill']} ***", ""]
    lines += [text.headline, "", text.description, ""]
    if text.instruction:
        lines += [f"{labels['todo']}:", text.instruction, ""]
    lines.append(f"{labels['area']}: {view.area.description}")
    if view.area.districts:
        lines.append(f"{labels['districts']}: {', '.join(view.area.districts)}")
    statuses: dict[str, str] = labels["statuses"]  # type: ignore[assignment]
    lines += [f"{labels['level']}: {view.level}",
              f"{labels['status']}: {statuses.get(view.status, view.status)}",
              f"{labels['time']}: {_clock(view)}"]
    if link:
        lines.append(f"{labels['link']}: {link}")
    return "\n".join(lines)


def build_message(view: AlertView, idempotency_key: str, *, channel: str, from_address: str,
                  to: list[str], languages: list[str], domain: str,
                  public_url: str | None) -> EmailMessage:
    """The whole message; ``languages`` in order, those the alert has no text for left out."""
    present = [language for language in languages if language in view.texts] or list(view.texts)
    first = view.texts[present[0]]
    message = EmailMessage()
    tag = ""
    if view.cap_status != "Actual":
        tag = f"[{_LABELS.get(present[0], _LABELS['en-US'])['drill_tag']}] "
    message["Subject"] = f"{tag}{first.headline}"
    message["From"] = from_address
    message["To"] = ", ".join(to)
    message["Date"] = format_datetime(view.sent_at.astimezone(WIB))
    message["Message-ID"] = message_id(idempotency_key, domain)
    if view.version > 1:
        root = first_message_id(view, channel, domain)
        message["In-Reply-To"] = root
        message["References"] = root
    # RFC 3834: machines (autoresponders, vacation mail) must not answer it.
    message["Auto-Submitted"] = "auto-generated"
    message["X-Kota-Alert"] = view.identifier
    link = f"{public_url.rstrip('/')}/api/v1/alerts/{view.id}" if public_url else None
    message.set_content("\n\n----\n\n".join(_part(view, language, link) for language in present)
                        + "\n")
    return message
