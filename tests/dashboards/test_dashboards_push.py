"""`kota dashboards push` through grafana-client against a small stand-in for Grafana's HTTP API
on a real loopback socket. No real Grafana ran here: the stand-in answers /api/folders and
/api/dashboards/db the way Grafana 11 documents them, and records what the client sent."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from click.testing import CliRunner

from dashboards.build import DASHBOARDS, JSON_DIR
from dashboards.cli import dashboards as dashboards_cli
from dashboards.push import FOLDER_UID

TOKEN = "glsa_test-token-0123456789"


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeGrafana:
    port: int
    requests: list[Request] = field(default_factory=list)
    folders: set[str] = field(default_factory=set)
    versions: dict[str, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _handler(state: FakeGrafana) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _record(self) -> Request:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            request = Request(self.command, self.path, dict(self.headers),
                              json.loads(raw) if raw else None)
            state.requests.append(request)
            return request

        def _route(self) -> None:
            request = self._record()
            if request.headers.get("Authorization") != f"Bearer {TOKEN}":
                self._answer(401, {"message": "Unauthorized"})
            elif request.method == "GET" and request.path.startswith("/api/folders/"):
                uid = request.path.rsplit("/", 1)[1]
                if uid in state.folders:
                    self._answer(200, {"uid": uid, "title": "Kota Cerdas"})
                else:
                    self._answer(404, {"message": "folder not found"})
            elif request.method == "POST" and request.path == "/api/folders":
                state.folders.add(request.body["uid"])
                self._answer(200, {"uid": request.body["uid"], "title": request.body["title"]})
            elif request.method == "POST" and request.path == "/api/dashboards/db":
                dashboard = request.body["dashboard"]
                uid = dashboard["uid"]
                state.versions[uid] = state.versions.get(uid, 0) + 1
                self._answer(200, {"id": len(state.versions), "uid": uid, "status": "success",
                                   "url": f"/d/{uid}/x", "version": state.versions[uid]})
            else:
                self._answer(404, {"message": "not found"})

        do_GET = _route
        do_POST = _route

    return Handler


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(FakeGrafana(0)))
    state = FakeGrafana(server.server_address[1])
    server.RequestHandlerClass = _handler(state)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_push_uploads_every_dashboard_into_the_folder(grafana: FakeGrafana) -> None:
    result = CliRunner().invoke(dashboards_cli, ["push", "--grafana", grafana.url,
                                                 "--token", TOKEN])
    assert result.exit_code == 0, result.output
    posts = [r for r in grafana.requests if r.path == "/api/dashboards/db"]
    assert len(posts) == len(DASHBOARDS)
    for post, name in zip(posts, DASHBOARDS, strict=True):
        committed = json.loads((JSON_DIR / name).read_text(encoding="utf-8"))
        assert post.body["dashboard"] == committed
        assert post.body["overwrite"] is True
        assert post.body["folderUid"] == FOLDER_UID
        assert post.headers["Content-Type"].startswith("application/json")
    assert FOLDER_UID in grafana.folders
    assert [r.method for r in grafana.requests if r.path.startswith("/api/folders")] == [
        "GET", "POST"]
    assert f"pushed {posts[0].body['dashboard']['uid']} (version 1)" in result.output


def test_push_again_overwrites_and_reuses_the_folder(grafana: FakeGrafana) -> None:
    runner = CliRunner()
    for _ in range(2):
        result = runner.invoke(dashboards_cli, ["push", "--grafana", grafana.url,
                                                "--token", TOKEN, "--only", "flood.json"])
        assert result.exit_code == 0, result.output
    assert grafana.versions == {"kota-flood": 2}
    assert [r.method for r in grafana.requests if r.path.startswith("/api/folders")] == [
        "GET", "POST", "GET"]
    assert "version 2" in result.output


def test_push_reports_a_refusal(grafana: FakeGrafana) -> None:
    result = CliRunner().invoke(dashboards_cli, ["push", "--grafana", grafana.url,
                                                 "--token", "wrong"])
    assert result.exit_code == 1
    assert "Grafana refused (HTTP 401)" in result.output
    assert not [r for r in grafana.requests if r.path == "/api/dashboards/db"]


def test_push_reports_an_unreachable_grafana() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = server.server_address[1]
    server.server_close()  # nothing listens on this port now
    result = CliRunner().invoke(dashboards_cli, ["push", "--grafana", f"http://127.0.0.1:{port}",
                                                 "--token", TOKEN])
    assert result.exit_code == 1
    assert f"cannot reach Grafana at http://127.0.0.1:{port}" in result.output


def test_push_refuses_an_unknown_dashboard_name(grafana: FakeGrafana) -> None:
    result = CliRunner().invoke(dashboards_cli, ["push", "--grafana", grafana.url,
                                                 "--token", TOKEN, "--only", "nope.json"])
    assert result.exit_code == 2
    assert "unknown dashboard" in result.output
    assert grafana.requests == []
