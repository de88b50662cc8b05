"""Upload the generated dashboards to a running Grafana through grafana-client.

Provisioning from files (dashboards/provisioning/) is the normal path; ``push`` is for a
Grafana that is already running and not provisioned by us (e.g. a city's existing instance).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grafana_client import GrafanaApi
from grafana_client.client import GrafanaClientError

__all__ = ["FOLDER_TITLE", "FOLDER_UID", "PushResult", "push"]

FOLDER_TITLE = "Kota Cerdas"
FOLDER_UID = "kota-cerdas"


@dataclass
class PushResult:
    uid: str
    url: str
    version: int | None


def _ensure_folder(api: GrafanaApi, title: str, uid: str) -> str:
    try:
        api.folder.get_folder(uid)
    except GrafanaClientError as exc:
        if exc.status_code != 404:
            raise
        api.folder.create_folder(title, uid=uid)
    return uid


def push(grafana_url: str, token: str, files: list[Path], folder_title: str = FOLDER_TITLE,
         folder_uid: str = FOLDER_UID, message: str = "kota dashboards push",
         timeout_s: float = 30.0) -> list[PushResult]:
    """Create or overwrite each dashboard (by its uid) in the folder; returns what Grafana said.

    Raises grafana_client's GrafanaException subclasses when Grafana refuses (401, 412, …).
    """
    api = GrafanaApi.from_url(grafana_url, credential=token, timeout=timeout_s)
    folder = _ensure_folder(api, folder_title, folder_uid)
    results = []
    for path in files:
        dashboard: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        dashboard.pop("id", None)  # Grafana matches on uid; a stale numeric id would clash
        answer = api.dashboard.update_dashboard(
            {"dashboard": dashboard, "folderUid": folder, "overwrite": True,
             "message": message})
        results.append(PushResult(uid=str(answer.get("uid", dashboard.get("uid", ""))),
                                  url=str(answer.get("url", "")),
                                  version=answer.get("version")))
    return results
