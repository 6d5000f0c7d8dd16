"""A local stand-in for the Hugging Face Hub's file endpoint, for the hub tests.

It serves ``/{repo_id}/resolve/{revision}/{filename}`` the way both hf-hub 0.5 (GET with
``Range: bytes=0-0`` for metadata, then GET) and Python ``huggingface_hub`` (HEAD, then GET)
use it: branches resolve to commits (``X-Repo-Commit``), ``ETag`` is the sha256 of the file,
ranges are honoured (206 + ``Content-Range``), renamed repos answer with a relative redirect,
missing files are 404 and private repos 401 without the right ``Authorization: Bearer``.
Every request is recorded. The server runs on 127.0.0.1 on a free port, in a daemon thread,
and shuts itself down after ``lifetime`` seconds at the latest.
"""

from __future__ import annotations

import hashlib
import re
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional, Set, Tuple
from urllib.parse import unquote

_RESOLVE = re.compile(r"^/(?P<repo>[^/]+(?:/[^/]+)?)/resolve/(?P<revision>[^/]+)/(?P<filename>.+)$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """Clients dropping keep-alive connections (and the server closing them on stop) are
        normal here; anything else is reported."""
        if not isinstance(sys.exc_info()[1], (OSError, ValueError)):
            super().handle_error(request, client_address)


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: Dict[str, str]


@dataclass
class FakeRepo:
    commits: Dict[str, Dict[str, bytes]] = field(default_factory=dict)
    branches: Dict[str, str] = field(default_factory=dict)
    token: Optional[str] = None  # set: the repo is private and needs this token

    def commit(self, files: Dict[str, bytes], branch: str = "main") -> str:
        """Adds a commit holding `files` at the tip of `branch`; returns its 40-hex hash."""
        digest = hashlib.sha1(repr((len(self.commits), sorted(files.items()))).encode()).hexdigest()
        self.commits[digest] = dict(files)
        self.branches[branch] = digest
        return digest


class FakeHub:
    """The server's state; `url` is the endpoint to give HF_ENDPOINT."""

    def __init__(self, lifetime: float = 300.0) -> None:
        self.repos: Dict[str, FakeRepo] = {}
        self.renamed: Dict[str, str] = {}
        self.requests: List[RecordedRequest] = []
        self.cut_once: Set[Tuple[str, str]] = set()  # (repo_id, filename): break the next body
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True
        self._stopped = False

    def start(self) -> "FakeHub":
        self._thread.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._timer.cancel()
        self._server.shutdown()
        self._server.server_close()

    def repo(self, repo_id: str, token: Optional[str] = None) -> FakeRepo:
        return self.repos.setdefault(repo_id, FakeRepo(token=token))

    def served(self, filename: str) -> List[RecordedRequest]:
        """The requests that asked for `filename` (any repo, any revision)."""
        return [r for r in self.requests if r.path.endswith("/" + filename)]

    def body_requests(self, filename: str) -> List[RecordedRequest]:
        """The requests for `filename` that transfer more than the first byte."""
        return [r for r in self.served(filename) if r.method == "GET" and r.headers.get("range") != "bytes=0-0"]

    def record(self, handler: BaseHTTPRequestHandler) -> None:
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self._lock:
            self.requests.append(RecordedRequest(handler.command, handler.path, headers))


def _handler_for(hub: FakeHub) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 30

        def do_HEAD(self) -> None:
            self._answer(send_body=False)

        def do_GET(self) -> None:
            self._answer(send_body=True)

        def log_message(self, *args) -> None:  # keep pytest output clean
            pass

        def _answer(self, send_body: bool) -> None:
            hub.record(self)
            match = _RESOLVE.match(self.path.split("?")[0])
            if not match:
                return self._status(404, "not a resolve URL")
            repo_id, revision = match["repo"], unquote(match["revision"])
            filename = unquote(match["filename"])
            if repo_id in hub.renamed:
                new = f"/{hub.renamed[repo_id]}/resolve/{match['revision']}/{match['filename']}"
                return self._status(307, "moved", {"Location": new})
            repo = hub.repos.get(repo_id)
            if repo is None:
                return self._status(404, "repository not found", {"X-Error-Code": "RepositoryNotFound"})
            if repo.token is not None and self.headers.get("Authorization") != f"Bearer {repo.token}":
                return self._status(401, "invalid credentials", {"X-Error-Code": "RepositoryNotFound"})
            commit = repo.branches.get(revision, revision)
            if commit not in repo.commits:
                return self._status(404, "revision not found", {"X-Error-Code": "RevisionNotFound"})
            content = repo.commits[commit].get(filename)
            if content is None:
                return self._status(404, "entry not found", {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit})
            self._send_file(repo_id, filename, content, commit, send_body)

        def _send_file(self, repo_id: str, filename: str, content: bytes, commit: str, send_body: bool) -> None:
            start, end = 0, len(content) - 1
            requested = _RANGE.match(self.headers.get("Range", ""))
            if requested:
                start = int(requested[1])
                end = min(int(requested[2]), end) if requested[2] else end
            part = content[start : end + 1]
            self.send_response(206 if requested else 200)
            self.send_header("X-Repo-Commit", commit)
            self.send_header("ETag", f'"{hashlib.sha256(content).hexdigest()}"')
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(len(part)))
            if requested:
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(content)}")
            self.end_headers()
            if not send_body:
                return
            cut = (repo_id, filename) in hub.cut_once and len(part) > 1
            if cut:
                hub.cut_once.discard((repo_id, filename))
                self.wfile.write(part[: len(part) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)  # the client sees the body end early
                return
            self.wfile.write(part)

        def _status(self, status: int, message: str, headers: Optional[Dict[str, str]] = None) -> None:
            body = message.encode()
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

    return Handler
