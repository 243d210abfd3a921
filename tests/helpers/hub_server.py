"""A loopback HTTP server speaking enough of the Hugging Face hub's file API for the real ``huggingface_hub`` client.

Served: ``GET /api/models/{repo}[/revision/{rev}]`` (model info with ``sha`` and ``siblings``), ``GET
/api/models/{repo}/tree/{rev}[/{path}]`` (file listing), and ``HEAD``/``GET /{repo}/resolve/{rev}/{path}`` with
``ETag``, ``X-Repo-Commit``, ``Content-Length`` and ``Range`` requests (206), so downloads can be resumed. Unknown
repos and files answer 404 with the hub's ``X-Error-Code``. ``interrupt`` makes the next download of one file stop
after some bytes (the connection drops), to test resumption. Every request is logged in ``requests``.

Use as a context manager: ``with HubServer() as hub: hub.add_repo("owner/name", {"file": b"..."})`` and point
``HF_ENDPOINT`` at ``hub.url``.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse


class HubRepo:
    def __init__(self, files: dict[str, bytes | Path], sha: str):
        self.files, self.sha = files, sha
        self.etags: dict[str, str] = {}

    def content(self, path: str) -> bytes:
        value = self.files[path]
        return value if isinstance(value, bytes) else Path(value).read_bytes()

    def size(self, path: str) -> int:
        value = self.files[path]
        return len(value) if isinstance(value, bytes) else Path(value).stat().st_size


class HubServer:
    def __init__(self):
        self.repos: dict[str, HubRepo] = {}
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self.interrupts: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_HEAD(self):
                server._handle(self, body=False)

            def do_GET(self):
                server._handle(self, body=True)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    # ------------------------------------------------------------------ setup

    def add_repo(self, repo_id: str, files: dict[str, bytes | Path]) -> str:
        """Publish ``files`` (name -> bytes or a local file) as ``repo_id``; returns its commit sha."""
        digest = hashlib.sha1(repo_id.encode())
        for name in sorted(files):
            digest.update(name.encode())
            digest.update(str(HubRepo(files, "").size(name)).encode())
        self.repos[repo_id] = HubRepo(dict(files), digest.hexdigest())
        return self.repos[repo_id].sha

    def interrupt(self, filename: str, after_bytes: int) -> None:
        """The next GET of ``filename`` sends ``after_bytes`` bytes and then drops the connection."""
        self.interrupts[filename] = after_bytes

    def __enter__(self) -> HubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()

    # ------------------------------------------------------------------ protocol

    def _handle(self, h: BaseHTTPRequestHandler, body: bool):
        path = unquote(urlparse(h.path).path)
        self.requests.append((h.command, path, h.headers.get("Range")))
        if m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([^/]+)(?:/(.*))?", path):
            return self._tree(h, m[1], m[3] or "", body)
        if m := re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?", path):
            return self._info(h, m[1], body)
        if m := re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path):
            return self._resolve(h, m[1], m[3], body)
        self._send(h, 404, b"not found", body, {"X-Error-Code": "EntryNotFound"})

    def _repo(self, h, repo_id, body) -> HubRepo | None:
        repo = self.repos.get(repo_id)
        if repo is None:
            self._send(
                h,
                404,
                json.dumps({"error": "Repository not found"}).encode(),
                body,
                {"X-Error-Code": "RepoNotFound", "Content-Type": "application/json"},
            )
        return repo

    def _info(self, h, repo_id, body):
        if (repo := self._repo(h, repo_id, body)) is None:
            return
        siblings = [
            {"rfilename": name, "size": repo.size(name), "blobId": self._etag(repo, name)}
            for name in sorted(repo.files)
        ]
        data = {"id": repo_id, "modelId": repo_id, "sha": repo.sha, "private": False, "siblings": siblings}
        self._send(h, 200, json.dumps(data).encode(), body, {"Content-Type": "application/json"})

    def _tree(self, h, repo_id, prefix, body):
        if (repo := self._repo(h, repo_id, body)) is None:
            return
        entries = [
            {"type": "file", "path": name, "size": repo.size(name), "oid": self._etag(repo, name)}
            for name in sorted(repo.files)
            if name.startswith(prefix)
        ]
        self._send(h, 200, json.dumps(entries).encode(), body, {"Content-Type": "application/json"})

    def _resolve(self, h, repo_id, filename, body):
        if (repo := self._repo(h, repo_id, body)) is None:
            return
        if filename not in repo.files:
            return self._send(
                h, 404, b"entry not found", body, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": repo.sha}
            )
        data = repo.content(filename)
        headers = {
            "ETag": f'"{self._etag(repo, filename)}"',
            "X-Repo-Commit": repo.sha,
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        start, status = 0, 200
        if body and (m := re.fullmatch(r"bytes=(\d+)-", h.headers.get("Range") or "")):
            start, status = int(m[1]), 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        chunk = data[start:]
        cut = self.interrupts.pop(filename, None) if body else None
        h.send_response(status)
        for key, value in headers.items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(chunk)))
        h.end_headers()
        if body:
            h.wfile.write(chunk if cut is None else chunk[:cut])
            if cut is not None:
                h.wfile.flush()
                h.close_connection = True
                h.connection.shutdown(2)

    @staticmethod
    def _etag(repo: HubRepo, name: str) -> str:
        if name not in repo.etags:
            repo.etags[name] = hashlib.sha256(repo.content(name)).hexdigest()
        return repo.etags[name]

    @staticmethod
    def _send(h, status, payload: bytes, body: bool, headers: dict):
        h.send_response(status)
        for key, value in headers.items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        if body:
            h.wfile.write(payload)
