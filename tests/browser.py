"""Render a page in headless Chromium and read back its DOM and its JavaScript errors.

Only the command line is used: ``--dump-dom`` prints the DOM after the page's scripts ran
(``--virtual-time-budget`` lets timers and the React app settle), and with
``--enable-logging=stderr`` every console message and uncaught exception is a
``CONSOLE`` line on stderr, which is where the errors are read from.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# A console line that reports a JavaScript error (uncaught exceptions, console.error of an Error).
_JS_ERROR = re.compile(r"Uncaught|\b(?:Type|Reference|Syntax|Range)Error\b|\bError:")
_CONSOLE = re.compile(r":CONSOLE[:(\]]")


def find_browser() -> str | None:
    """The Chromium executable: $CHROMIUM if set, else the first of CANDIDATES on PATH."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    return next((path for name in CANDIDATES if (path := shutil.which(name))), None)


def require_browser() -> str:
    browser = find_browser()
    if browser is None:
        pytest.skip("no Chromium found (apt-get install chromium, or set $CHROMIUM): the page was not rendered")
    return browser


@dataclass(frozen=True)
class Rendered:
    dom: str
    console: list[str]

    @property
    def js_errors(self) -> list[str]:
        return [line for line in self.console if _JS_ERROR.search(line)]


def render(page: Path | str, profile: Path, *, budget_ms: int = 5000, timeout: int = 120) -> Rendered:
    """Load ``page`` (a local file, or a URL) in headless Chromium with a fresh profile under ``profile``."""
    browser = require_browser()
    url = page if isinstance(page, str) else page.resolve().as_uri()
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
           "--no-proxy-server", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
           f"--virtual-time-budget={budget_ms}", "--dump-dom", url]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise AssertionError(f"{browser} failed ({proc.returncode}) on {page}:\n{proc.stderr[-3000:]}")
    return Rendered(proc.stdout, [line for line in proc.stderr.splitlines() if _CONSOLE.search(line)])


@contextmanager
def serve(root: Path) -> Iterator[str]:
    """Serve the folder ``root`` over HTTP on 127.0.0.1 (an ephemeral port); yield its base URL.

    A built MkDocs site needs HTTP: its search loads its index with a request that
    browsers refuse for file:// pages.
    """
    handler = functools.partial(_QuietHandler, directory=str(root))
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{httpd.server_address[1]}/"
        finally:
            httpd.shutdown()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class Tables(HTMLParser):
    """The rendered tables of a DOM (outside <script>, where the report also keeps its source
    as JSON): for each, its class attribute and its rows' cell texts."""

    def __init__(self, html: str):
        super().__init__()
        self.tables: list[tuple[str, list[list[str]]]] = []
        self._stack: list[list[list[str]]] = []
        self._script = 0
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self._script += 1
        elif self._script:
            return
        elif tag == "table":
            self.tables.append((dict(attrs).get("class") or "", []))
            self._stack.append(self.tables[-1][1])
        elif tag == "tr" and self._stack:
            self._stack[-1].append([])
        elif tag in ("td", "th") and self._stack and self._stack[-1]:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "script":
            self._script -= 1
        elif self._script:
            return
        elif tag == "table" and self._stack:
            self._stack.pop()
        elif tag in ("td", "th") and self._cell is not None and self._stack:
            self._stack[-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None and not self._script:
            self._cell.append(data)
