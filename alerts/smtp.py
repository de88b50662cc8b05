"""Opening an SMTP session, one way for every sender of mail: the operators' email channel,
the subscribers' pooled sender and the API's confirmation mail."""

from __future__ import annotations

import smtplib
import ssl
from pathlib import Path
from typing import Literal

__all__ = ["open_smtp"]


def open_smtp(host: str, port: int, *, security: Literal["none", "starttls", "ssl"],
              timeout_s: float, username: str | None = None, password: str | None = None,
              ca_file: Path | str | None = None) -> smtplib.SMTP:
    """A logged-in session (blocking: call it in a thread). Closed again if any step fails."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    smtp: smtplib.SMTP
    if security == "ssl":
        smtp = smtplib.SMTP_SSL(host, port, timeout=timeout_s, context=context)
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout_s)
    try:
        smtp.ehlo()
        if security == "starttls":
            smtp.starttls(context=context)
            smtp.ehlo()
        if username is not None and password:
            smtp.login(username, password)
    except BaseException:
        smtp.close()
        raise
    return smtp
