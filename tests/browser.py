"""A tiny Chrome DevTools Protocol client for tests: headless Chromium over ``--remote-debugging-pipe``.

Pure stdlib. Chromium reads NUL-terminated JSON commands from fd 3 and writes NUL-terminated JSON replies and
events to fd 4. Usage::

    with Browser() as page:
        page.open("file:///.../index.html")
        page.eval("document.title")
        png = page.screenshot()
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_ENV = "IRNEURONS_BROWSER_INSTALL"


class BrowserError(RuntimeError):
    pass


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome on PATH, or None."""
    return next((p for p in map(shutil.which, NAMES) if p), None)


def ensure_chromium() -> tuple[str | None, str]:
    """(executable, reason it is missing). Installs the Debian package ``chromium`` with apt-get only when
    IRNEURONS_BROWSER_INSTALL=1 (CI opts in; a developer's host is not changed otherwise)."""
    exe = find_chromium()
    if exe:
        return exe, ""
    if os.environ.get(INSTALL_ENV) != "1":
        return None, f"no chromium on PATH: install it (apt-get install chromium) or set {INSTALL_ENV}=1"
    if not shutil.which("apt-get"):
        return None, "no chromium on PATH and no apt-get to install it"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        if proc.returncode != 0:
            return None, f"{' '.join(cmd)} failed: {proc.stderr.strip()[-300:]}"
    exe = find_chromium()
    return exe, "" if exe else "apt-get installed chromium but it is not on PATH"


def _high_fd(fd: int) -> int:
    """``fd`` moved to a number >= 10 (close-on-exec), so that putting it at 3 or 4 cannot clobber another."""
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return new


class Browser:
    """One headless Chromium with one page (a flattened target session). Always use it as a context manager:
    the process is killed on exit, whatever happened."""

    def __init__(self, executable: str | None = None, width: int = 1400, height: int = 900, timeout: float = 30.0):
        self.executable = executable or find_chromium()
        if not self.executable:
            raise BrowserError("no chromium found")
        self.width, self.height, self.timeout = width, height, timeout
        self.proc = None
        self.errors: list[dict] = []  # Runtime.exceptionThrown / console errors of the page
        self._next_id, self._buffer, self._events = 0, b"", []

    # -- process ------------------------------------------------------------------------------------------
    def __enter__(self) -> "Browser":
        self.profile = tempfile.mkdtemp(prefix="irneurons-chromium-")
        cmd_read, self._cmd_write = os.pipe()  # we write commands; chromium reads them on fd 3
        self._out_read, out_write = os.pipe()  # chromium writes replies on fd 4
        child_in, child_out = _high_fd(cmd_read), _high_fd(out_write)

        def to_fds_3_and_4():  # in the child, before exec: the pipe ends where chromium expects them
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)

        args = [self.executable, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
                f"--user-data-dir={self.profile}", f"--window-size={self.width},{self.height}", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars", "--mute-audio",
                "about:blank"]
        self.log = open(Path(self.profile) / "chromium.log", "w+")
        try:
            # close_fds=False: pass_fds would keep the fds' own numbers, chromium wants exactly 3 and 4; every
            # other fd Python opens is non-inheritable (PEP 446), so nothing else leaks.
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                                         close_fds=False, preexec_fn=to_fds_3_and_4, start_new_session=True)
        finally:
            os.close(child_in)
            os.close(child_out)
        try:
            self._attach()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self.proc and self.proc.poll() is None:
                try:
                    self._send("Browser.close", session=False)
                    self.proc.wait(timeout=5)
                except Exception:
                    pass
        finally:
            if self.proc:  # its own session: the group is chromium and its helpers (zygote, renderers)
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                self.proc.wait(timeout=10)
            for fd in (self._cmd_write, self._out_read):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self.log.close()
            shutil.rmtree(self.profile, ignore_errors=True)

    def chromium_log(self) -> str:
        self.log.flush()
        return (Path(self.profile) / "chromium.log").read_text(errors="replace")[-3000:]

    # -- protocol -----------------------------------------------------------------------------------------
    def _send(self, method: str, params: dict | None = None, session: bool = True) -> int:
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        os.write(self._cmd_write, json.dumps(msg).encode() + b"\0")
        return self._next_id

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._out_read], [], [], left)[0]:
                raise BrowserError(f"no reply from chromium in time\n{self.chromium_log()}")
            chunk = os.read(self._out_read, 1 << 20)
            if not chunk:
                raise BrowserError(f"chromium closed the pipe\n{self.chromium_log()}")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        msg = json.loads(raw)
        if msg.get("method") == "Runtime.exceptionThrown":
            self.errors.append(msg["params"]["exceptionDetails"])
        elif msg.get("method") == "Runtime.consoleAPICalled" and msg["params"].get("type") == "error":
            self.errors.append(msg["params"])
        return msg

    def call(self, method: str, params: dict | None = None, session: bool = True) -> dict:
        """Send one command and wait for its reply (events met meanwhile are kept for :meth:`wait_event`)."""
        msg_id = self._send(method, params, session)
        deadline = time.monotonic() + self.timeout
        while True:
            msg = self._read(deadline)
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise BrowserError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self._events.append(msg)

    def wait_event(self, method: str) -> dict:
        deadline = time.monotonic() + self.timeout
        while True:
            for i, msg in enumerate(self._events):
                if msg["method"] == method:
                    return self._events.pop(i)["params"]
            msg = self._read(deadline)
            if "method" in msg:
                self._events.append(msg)

    def _attach(self) -> None:
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 session=False)["sessionId"]
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False})

    # -- page ---------------------------------------------------------------------------------------------
    def open(self, url: str) -> None:
        """Navigate and wait for the load event."""
        self._events = [e for e in self._events if e["method"] != "Page.loadEventFired"]
        result = self.call("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise BrowserError(f"navigate {url}: {result['errorText']}")
        self.wait_event("Page.loadEventFired")

    def eval(self, expression: str):
        """The value of a JS expression (promises awaited); a thrown exception raises BrowserError."""
        result = self.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                "returnByValue": True})
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise BrowserError(f"JS error: {details.get('exception', {}).get('description') or details}")
        return result["result"].get("value")

    def screenshot(self, path=None, full_page: bool = False) -> bytes:
        """A PNG of the viewport (or the whole page); written to ``path`` if given."""
        params = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
        png = base64.b64decode(self.call("Page.captureScreenshot", params)["data"])
        if path is not None:
            Path(path).write_bytes(png)
        return png
