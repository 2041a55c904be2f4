"""A local stand-in for the few Hugging Face Hub endpoints ``push_to_hub`` calls.

It speaks the hub's HTTP API as huggingface_hub's ``HfApi`` uses it
(``create_repo``, ``create_branch``, ``preupload``, ``commit``), records every
request, and writes each committed file under ``root/<repo>/<revision>/``, so a
test can load what was pushed with ``from_pretrained``. Every file is answered
as a "regular" (non-LFS) upload, so the contents travel inside the commit
request itself and no storage backend (LFS/Xet) has to be emulated.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse


@dataclass
class Request:
    """One request the server saw."""

    method: str
    path: str
    query: dict[str, list[str]]
    authorization: str | None
    body: object = None


@dataclass
class FakeHub:
    """The server's state: the requests seen and the folder committed files land in."""

    root: Path
    url: str = ""
    requests: list[Request] = field(default_factory=list)
    pull_requests: int = 0

    def folder(self, repo_id: str, revision: str = "main") -> Path:
        """Where the files committed to ``repo_id`` at ``revision`` were written."""
        return self.root / repo_id / revision


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep the test output clean
            pass

        def _reply(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            url = urlparse(self.path)
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            ndjson = self.headers.get("Content-Type", "").startswith("application/x-ndjson")
            body = [json.loads(line) for line in raw.splitlines() if line] if ndjson else json.loads(raw or b"null")
            request = Request("POST", unquote(url.path), parse_qs(url.query), self.headers.get("Authorization"), body)
            hub.requests.append(request)
            parts = request.path.strip("/").split("/")
            if request.path == "/api/repos/create":
                repo_id = f"{body.get('organization') or 'tester'}/{body['name']}"
                return self._reply(200, {"url": f"{hub.url}/{repo_id}"})
            # /api/models/<ns>/<name>/<action>/<revision...>
            if len(parts) >= 6 and parts[:2] == ["api", "models"]:
                repo_id, action, revision = "/".join(parts[2:4]), parts[4], "/".join(parts[5:])
                if action == "branch":
                    return self._reply(200, {})
                if action == "preupload":
                    files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in body["files"]]
                    return self._reply(200, {"files": files})
                if action == "commit":
                    return self._commit(repo_id, revision, "create_pr" in request.query, body)
            return self._reply(404, {"error": f"unexpected request {request.path}"})

        def _commit(self, repo_id: str, revision: str, create_pr: bool, lines: list[dict]) -> None:
            if create_pr:
                hub.pull_requests += 1
                revision = f"refs/pr/{hub.pull_requests}"
            folder = hub.folder(repo_id, revision)
            for line in lines:
                if line["key"] == "file":
                    value = line["value"]
                    assert value["encoding"] == "base64", value
                    target = folder / value["path"]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(base64.b64decode(value["content"]))
            payload = {"commitUrl": f"{hub.url}/{repo_id}/commit/{'0' * 40}", "commitOid": "0" * 40}
            if create_pr:
                payload["pullRequestUrl"] = f"{hub.url}/{repo_id}/discussions/{hub.pull_requests}"
            self._reply(200, payload)

    return Handler


def serve(root: Path):
    """Start the server on a free local port; returns ``(hub, stop)``."""
    hub = FakeHub(root)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join()

    return hub, stop
