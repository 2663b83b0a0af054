"""A minimal W3C WebDriver client (urllib + chromedriver): enough for a test to drive headless
Chromium through a page the way a person would, without selenium."""
from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--no-first-run", "--disable-dev-shm-usage", "--window-size=1400,1000"]
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C key of an element reference


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    def __init__(self, driver_url: str, session_id: str, failure_shot: Path | None = None):
        self.base = f"{driver_url}/session/{session_id}"
        self.failure_shot = failure_shot

    def _call(self, method: str, path: str, body: dict | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as reply:
            return json.loads(reply.read())["value"]

    def open(self, url: str) -> None:
        self._call("POST", "/url", {"url": url})

    def find(self, xpath: str) -> str:
        """The first element matching `xpath`, waiting up to the implicit timeout for it."""
        try:
            return self._call("POST", "/element", {"using": "xpath", "value": xpath})[ELEMENT]
        except urllib.error.HTTPError as error:
            if error.code != 404:  # 404: no such element
                raise
        url = self._call("GET", "/url")
        seen = f"; the page: {self.screenshot(self.failure_shot)}" if self.failure_shot else ""
        raise AssertionError(f"no element {xpath} on {url}{seen}") from None

    def click(self, xpath: str) -> None:
        self._call("POST", f"/element/{self.find(xpath)}/click", {})

    def source(self) -> str:
        return self._call("GET", "/source")

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self._call("GET", "/screenshot")))
        return path


@contextmanager
def chromium(implicit_wait_s: float = 30.0, failure_shot: Path | None = None) -> Iterator[Browser]:
    """Headless Chromium driven by a chromedriver started (and stopped) here; a failed `find`
    saves a screenshot to `failure_shot`."""
    port = free_port()
    driver = subprocess.Popen(["chromedriver", f"--port={port}"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": shutil.which("chromium"), "args": CHROMIUM_ARGS}}}}
        session = _retry(lambda: _post(f"{url}/session", caps))["sessionId"]
        browser = Browser(url, session, failure_shot)
        browser._call("POST", "/timeouts", {"implicit": int(implicit_wait_s * 1000)})
        try:
            yield browser
        finally:
            browser._call("DELETE", "")
    finally:
        driver.terminate()
        driver.wait(timeout=10)


def _post(url: str, body: dict) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as reply:
        return json.loads(reply.read())["value"]


def _retry(action: Any, timeout_s: float = 20.0) -> Any:
    """chromedriver takes a moment to listen."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return action()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
