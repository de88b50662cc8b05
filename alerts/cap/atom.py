"""An Atom 1.0 feed (RFC 4287) of current alerts, each entry linking to its CAP message.

The convention of public alert hubs (alerting authorities registered with WMO, Google Public
Alerts): one entry per current CAP message, ``<link type="application/cap+xml">`` to the message,
updated = its sent time, title = headline, summary = description, author = the CAP sender.
The caller chooses the entries: the public feed passes only cap_status Actual, audience public.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from urllib.parse import quote

from alerts.cap._message import CAP_MEDIA_TYPE, JAKARTA, _clean
from alerts.model import AlertText, AlertView

__all__ = ["ATOM_MEDIA_TYPE", "ATOM_NAMESPACE", "atom_feed", "cap_message_url"]

ATOM_NAMESPACE = "http://www.w3.org/2005/Atom"
ATOM_MEDIA_TYPE = "application/atom+xml"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


def _sub(parent: ET.Element, tag: str, text: str | None = None,
         **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attributes)
    if text is not None:
        element.text = _clean(text)
    return element


def _atom_time(moment: datetime, zone: tzinfo) -> str:
    # RFC 3339 allows "+00:00"; unlike CAP, Atom has no "-00:00" rule.
    if moment.tzinfo is None:
        raise ValueError(f"time {moment.isoformat()} has no time zone")
    return moment.astimezone(zone).replace(microsecond=0).isoformat()


def cap_message_url(base_url: str, view: AlertView) -> str:
    """Where the API serves this version's CAP message: ``<base_url>/<CAP identifier>``."""
    return f"{base_url.rstrip('/')}/{quote(view.identifier, safe='')}"


def _text(view: AlertView, language: str) -> AlertText:
    if language in view.texts:
        return view.texts[language]
    return next(iter(view.texts.values()))


def atom_feed(views: Sequence[AlertView], *, base_url: str, sender: str,
              feed_url: str | None = None, title: str = "Kota Cerdas alerts",
              language: str = "id-ID", updated: datetime | None = None,
              zone: tzinfo = JAKARTA) -> bytes:
    """The feed of ``views`` (newest first) as UTF-8 XML.

    ``base_url``: where CAP messages are served (:func:`cap_message_url`); ``feed_url``: this
    feed's own URL (its id and rel="self" link; default ``<base_url>/feed.atom``); ``language``:
    which text gives titles and summaries (the other one when a view lacks it); ``updated``: the
    feed's time when it has no entries (default now). Entry ids are the message URLs: Atom
    requires an IRI, and each URL names one CAP identifier.
    """
    feed_url = feed_url or f"{base_url.rstrip('/')}/feed.atom"
    ordered = sorted(views, key=lambda view: (view.sent_at, view.id, view.version), reverse=True)
    # Plain tag names under a literal xmlns: ElementTree's default_namespace refuses the
    # unqualified attributes (rel, href) Atom uses.
    feed = ET.Element("feed", {"xmlns": ATOM_NAMESPACE, _XML_LANG: language})
    _sub(feed, "id", feed_url)
    _sub(feed, "title", title)
    newest = ordered[0].sent_at if ordered else (updated or datetime.now(UTC))
    _sub(feed, "updated", _atom_time(newest, zone))
    _sub(feed, "link", rel="self", href=feed_url, type=ATOM_MEDIA_TYPE)
    author = _sub(feed, "author")
    _sub(author, "name", sender)
    for view in ordered:
        text = _text(view, language)
        url = cap_message_url(base_url, view)
        entry = _sub(feed, "entry")
        _sub(entry, "id", url)
        _sub(entry, "title", text.headline)
        _sub(entry, "updated", _atom_time(view.sent_at, zone))
        entry_author = _sub(entry, "author")
        _sub(entry_author, "name", sender)
        _sub(entry, "link", rel="alternate", type=CAP_MEDIA_TYPE, href=url)
        _sub(entry, "summary", text.description)
    ET.indent(feed)
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True) + b"\n"
