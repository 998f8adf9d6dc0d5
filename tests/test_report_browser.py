"""Open a generated report in real headless Chromium and check what a reader would see.

The browser is driven over the Chrome DevTools Protocol (``--remote-debugging-port``)
with the tiny standard-library websocket client below. The test records every network
request (``Network.requestWillBeSent``), console call (``Runtime.consoleAPICalled``),
log entry (``Log.entryAdded``, which includes CSP violations and failed loads), uncaught
exception and JavaScript dialog, then asserts:

* the only request is the report file itself (no CDN, font, image or any http(s) fetch);
* no console error or warning, no exception, no dialog (an injected ``alert`` would open one);
* all 13 sections are laid out, the figures have a size, the page has no script element,
  the hostile algorithm name shows as literal text, and nothing overflows a 1366-px laptop
  viewport horizontally.

Screenshots go to ``test-artifacts/report/`` (gitignored) for a human to look at.
Chromium comes from Debian's ``chromium`` package (``scripts/install_browser.sh``); when
it is absent the test skips, except under CI (``CI`` set), where it fails.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "report"
HOSTILE = "<script>alert(1)</script>"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--hide-scrollbars", "--mute-audio",
]


# --------------------------------------------------------------------------- websocket client


class WebSocket:
    """Minimal RFC 6455 client: text frames, masking, fragmentation, ping/pong, close."""

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        parsed = urlparse(url)
        self.sock = socket.create_connection((parsed.hostname, parsed.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET {parsed.path} HTTP/1.1\r\nHost: {parsed.hostname}:{parsed.port}\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(request.encode())
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("websocket handshake: connection closed")
            response += chunk
        head, self._buffer = response.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"websocket handshake refused: {head[:200]!r}")

    def _read(self, n: int) -> bytes:
        while len(self._buffer) < n:
            chunk = self.sock.recv(max(65536, n - len(self._buffer)))
            if not chunk:
                raise ConnectionError("websocket closed")
            self._buffer += chunk
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        header = bytes([0x80 | opcode])
        length = len(payload)
        if length < 126:
            header += bytes([0x80 | length])
        elif length < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack("!H", length)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", length)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send(self, text: str) -> None:
        self._send_frame(0x1, text.encode())

    def recv(self) -> str:
        message = b""
        while True:
            first, second = self._read(2)
            fin, opcode = first & 0x80, first & 0x0F
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", self._read(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", self._read(8))
            payload = self._read(length)  # server frames are not masked
            if opcode == 0x8:
                raise ConnectionError("websocket closed by the browser")
            if opcode == 0x9:
                self._send_frame(0xA, payload)
                continue
            if opcode in (0x0, 0x1, 0x2):
                message += payload
                if fin:
                    return message.decode()

    def close(self) -> None:
        try:
            self._send_frame(0x8, b"")
        finally:
            self.sock.close()


# --------------------------------------------------------------------------- CDP session


class Browser:
    """Headless Chromium with one page target, attached in flat session mode."""

    def __init__(self, binary: str, profile: Path) -> None:
        self.process = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        url = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            if not line and self.process.poll() is not None:
                break
            match = re.search(r"DevTools listening on (ws://\S+)", line)
            if match:
                url = match.group(1)
                break
        if url is None:
            self.process.kill()
            raise RuntimeError("chromium did not print its DevTools address")
        self.ws = WebSocket(url)
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]

    def call(self, method: str, params: dict[str, Any] | None = None, session: bool = False) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        self.ws.send(json.dumps(message))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def page(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.call(method, params, session=True)

    def wait_for(self, event: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for seen in self.events:
                if seen.get("method") == event:
                    return seen
            reply = json.loads(self.ws.recv())
            if "method" in reply:
                self.events.append(reply)
                if reply["method"] == "Page.javascriptDialogOpening":
                    # A dialog blocks the page's load; dismiss it (the test fails on it anyway).
                    self.page("Page.handleJavaScriptDialog", {"accept": True})
        raise TimeoutError(event)

    def evaluate(self, expression: str) -> Any:
        result = self.page("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"evaluate {expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path, y: float, width: int, height: int) -> None:
        shot = self.page("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": y, "width": width, "height": height, "scale": 1},
        })
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            self.call("Browser.close")
        with contextlib.suppress(OSError):
            self.ws.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def open_report(html_path: Path, shots_prefix: str, width: int = 1366, height: int = 800) -> dict[str, Any]:
    """Load ``html_path`` in Chromium, save screenshots, and return what was observed."""
    binary = find_chromium()
    assert binary is not None
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="oxstudy-chromium-") as profile:
        browser = Browser(binary, Path(profile))
        try:
            for domain in ("Network.enable", "Runtime.enable", "Log.enable", "Page.enable"):
                browser.page(domain)
            browser.page("Emulation.setDeviceMetricsOverride",
                         {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
            browser.page("Page.navigate", {"url": html_path.resolve().as_uri()})
            browser.wait_for("Page.loadEventFired")
            observed = {
                "sections": browser.evaluate("document.querySelectorAll('main > section').length"),
                "section_ids": browser.evaluate("[...document.querySelectorAll('main > section')].map(s => s.id)"),
                "notes": browser.evaluate("[...document.querySelectorAll('p.note')].map(p => p.innerText)"),
                "scripts": browser.evaluate("document.querySelectorAll('script').length"),
                "title": browser.evaluate("document.title"),
                "text": browser.evaluate("document.body.innerText"),
                "svg_sizes": browser.evaluate(
                    "[...document.querySelectorAll('svg.plot')].map(s => {const r = s.getBoundingClientRect();"
                    " return [r.width, r.height];})"),
                "scroll_width": browser.evaluate("document.documentElement.scrollWidth"),
                "client_width": browser.evaluate("document.documentElement.clientWidth"),
                "page_height": browser.evaluate("document.documentElement.scrollHeight"),
                "section_tops": browser.evaluate(
                    "Object.fromEntries([...document.querySelectorAll('main > section')]"
                    ".map(s => [s.id, s.getBoundingClientRect().top + window.scrollY]))"),
            }
            shots = []
            for name, top in observed["section_tops"].items():
                path = ARTIFACTS / f"{shots_prefix}-{name}.png"
                browser.screenshot(path, max(0.0, float(top) - 8), width, height)
                shots.append(path)
            observed["screenshots"] = shots
            time.sleep(0.2)
            # Drain events that arrived after the last command.
            browser.call("Runtime.evaluate", {"expression": "1"}, session=True)
            observed["events"] = list(browser.events)
        finally:
            browser.close()
    return observed


# --------------------------------------------------------------------------- the test


def _small_study_long_table():
    """A small synthetic study as the long table ``oxstudy analyze`` accepts: 4 algorithms
    (one with a hostile name) x 3 scales x 4 seeds x 2 benchmarks, plus a LoRA factor."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    rows = []
    models = {"tiny-70M": 7.0e7, "small-410M": 4.1e8, "base-1.4B": 1.4e9}
    effects = {"dpo": 0.0, "ipo": 0.03, "simpo": -0.02, HOSTILE: 0.06}
    for (model, params), (algorithm, effect) in ((m, a) for m in models.items() for a in effects.items()):
        for seed in range(4):
            for benchmark, in_domain in (("gsm8k", True), ("math", False)):
                scale = 0.1 * np.log10(params / 7e7)
                value = 0.2 + scale + effect * (1 if in_domain else 0.2) + rng.normal(0, 0.015)
                rows.append({"model": model, "algorithm": algorithm, "seed": seed, "benchmark": benchmark,
                             "value": float(value), "params": params, "in_domain": in_domain,
                             "finetune": "lora" if seed % 2 else "full"})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def chromium() -> str:
    binary = find_chromium()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: run scripts/install_browser.sh first")
        pytest.skip("chromium is not installed and could not be found; run scripts/install_browser.sh")
    return binary


@pytest.fixture(scope="module", params=["long-table", "study-directory"])
def report_path(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of a small study: from a long table through the engine, and from a study
    directory written by the real store through the command's pipeline (runs, a failed run,
    provenance, training curves)."""
    from oxstudy.report.build import build_report
    from oxstudy.report.inputs import meta_from_table
    from oxstudy.stats.analyze import analyze

    path = tmp_path_factory.mktemp("report") / f"{request.param}.html"
    if request.param == "long-table":
        table = _small_study_long_table()
        analysis = analyze(table, baseline="dpo", factors=["params", "finetune"], correction="bonferroni",
                           n_resamples=1000)
        meta = meta_from_table(table, study="browser <b>check</b> study", source="synthetic long table",
                               input_kind="long table")
        path.write_text(build_report(analysis, meta), encoding="utf-8")
    else:
        import yaml
        from test_report import write_study

        from oxstudy.report.pipeline import ReportOptions, write_outputs

        study = write_study(tmp_path_factory.mktemp("studies") / "browser-check", hostile=True)
        # The name comes from the saved spec, as for a real study; the baseline from its analysis section.
        (study / "spec.yaml").write_text(yaml.safe_dump({"name": "browser <b>check</b> study",
                                                         "analysis": {"baseline": "dpo"}}))
        write_outputs(ReportOptions(inputs=[study], output=path, resamples=500))
    return path


def test_report_opens_cleanly_in_chromium(chromium: str, report_path: Path) -> None:
    observed = open_report(report_path, report_path.stem)
    events = observed["events"]

    requests = [e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"]
    assert requests, "the browser recorded no request at all: the network domain was not listening"
    external = [u for u in requests if not u.startswith("file://")]
    assert external == [], f"the report made external requests: {external}"
    assert requests == [report_path.resolve().as_uri()], requests

    console = [e["params"] for e in events if e["method"] == "Runtime.consoleAPICalled"
               and e["params"].get("type") in ("error", "warning", "assert")]
    logs = [e["params"]["entry"] for e in events if e["method"] == "Log.entryAdded"
            and e["params"]["entry"].get("level") in ("error", "warning")]
    exceptions = [e["params"] for e in events if e["method"] == "Runtime.exceptionThrown"]
    dialogs = [e["params"] for e in events if e["method"] == "Page.javascriptDialogOpening"]
    assert console == [] and logs == [] and exceptions == [], (console, logs, exceptions)
    assert dialogs == [], f"a script ran and opened a dialog: {dialogs}"

    assert observed["sections"] == 13, observed["section_ids"]
    assert observed["scripts"] == 0
    assert HOSTILE in observed["text"], "the hostile algorithm name must show as literal text"
    assert observed["title"] == "browser <b>check</b> study · oxstudy report"
    assert "browser <b>check</b> study" in observed["text"]
    assert observed["svg_sizes"], "no figure was rendered"
    assert all(w > 300 and h > 100 for w, h in observed["svg_sizes"]), observed["svg_sizes"]
    assert observed["scroll_width"] <= observed["client_width"], "the page overflows a laptop-width viewport"
    for shot in observed["screenshots"]:
        assert shot.stat().st_size > 5_000, f"screenshot {shot} looks empty"


def test_browser_check_catches_what_it_guards_against(chromium: str, tmp_path: Path) -> None:
    """The same observation on a deliberately bad page must see the violations."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><section>x</section><img src="http://example.invalid/x.png">'
                   '<script>console.error("boom"); alert(1)</script></body></html>', encoding="utf-8")
    observed = open_report(bad, "negative-control")
    for shot in observed["screenshots"]:
        shot.unlink(missing_ok=True)
    methods = [e["method"] for e in observed["events"]]
    requests = [e["params"]["request"]["url"] for e in observed["events"] if e["method"] == "Network.requestWillBeSent"]
    assert "http://example.invalid/x.png" in requests
    assert "Runtime.consoleAPICalled" in methods and "Page.javascriptDialogOpening" in methods
    assert observed["scripts"] == 1
