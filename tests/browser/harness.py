"""Real processes for the console's browser test: `switchyard backend`
demo backends and a `switchyard run` proxy, all on loopback port 0 (the
bound addresses are read back from their JSON log lines), a bounded load
generator, a small admin API client, and headless Chromium under Selenium.

Nothing is mocked: the browser talks to the real admin listener, which
talks to the real controller, which routes real requests to real backends.
"""

import http.client
import json
import os
import queue
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")


class Process:
    """A child process whose JSON log lines (stderr) are read in a thread."""

    def __init__(self, args, env=None, log_path=None):
        self.args = args
        self.lines = queue.Queue()
        self.log = open(log_path, "w") if log_path else None
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            if self.log:
                self.log.write(line)
                self.log.flush()
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                self.lines.put({"message": line.rstrip()})
        self.lines.put(None)

    def wait_for(self, message, timeout=30):
        """The first log event whose message is `message`."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.args[0]} did not log {message!r} in {timeout}s")
            try:
                ev = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if ev is None:
                raise RuntimeError(f"{self.args} exited ({self.proc.wait()}) before logging {message!r}")
            if ev.get("message") == message or ev.get("fields", {}).get("message") == message:
                return ev

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log:
            self.log.close()


def start_backend(binary, pool, artifacts, n=0):
    p = Process(
        [binary, "--log-format", "json", "backend", "--listen", "127.0.0.1:0", "--pool", pool, "--version", pool],
        log_path=os.path.join(artifacts, f"backend-{pool}-{n}.log"),
    )
    ev = p.wait_for("demo backend listening")
    p.addr = ev["listen"]
    return p


class Proxy:
    """`switchyard run` on a config file in a temp directory."""

    def __init__(self, binary, config, artifacts, name, token=None):
        self.dir = tempfile.TemporaryDirectory(prefix="switchyard-browser-")
        self.path = os.path.join(self.dir.name, "switchyard.toml")
        with open(self.path, "w") as f:
            f.write(config)
        env = {"RUST_LOG": "info"}
        if token is not None:
            env["SWITCHYARD_ADMIN_TOKEN"] = token
        self.token = token
        self.proc = Process(
            [binary, "--log-format", "json", "run", "--config", self.path],
            env=env,
            log_path=os.path.join(artifacts, f"switchyard-{name}.log"),
        )
        ev = self.proc.wait_for("switchyard listening")
        self.addr = ev["proxy.addr"]
        self.admin = ev["admin.addr"]
        self.admin_url = f"http://{self.admin}"

    def api(self, method, path, body=None, token=None):
        """(status, JSON answer) of an admin API call."""
        token = self.token if token is None else token
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.admin_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def status(self):
        code, body = self.api("GET", "/api/v1/status")
        assert code == 200, (code, body)
        return body

    def split(self, route):
        return next(r["split"] for r in self.status()["routes"] if r["name"] == route)

    def stop(self):
        self.proc.stop()
        self.dir.cleanup()


class Load:
    """Requests to the proxy from one thread until stopped: bounded in time
    (`limit` seconds) and count, loopback only."""

    def __init__(self, addr, paths, limit=120, max_requests=200_000):
        self.addr, self.paths, self.limit, self.max = addr, paths, limit, max_requests
        self.stopped = threading.Event()
        self.sent = 0
        self.statuses = {}
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        host, port = self.addr.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        deadline = time.monotonic() + self.limit
        while not self.stopped.is_set() and time.monotonic() < deadline and self.sent < self.max:
            for path in self.paths:
                try:
                    conn.request("GET", path)
                    r = conn.getresponse()
                    r.read()
                    self.statuses[r.status] = self.statuses.get(r.status, 0) + 1
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection(host, int(port), timeout=5)
                self.sent += 1
            # Paces the load (~200 requests/s per path) so that two shared
            # cores keep room for the proxy and the browser; not a wait for
            # any condition.
            self.stopped.wait(0.005)
        conn.close()

    def stop(self):
        self.stopped.set()
        self.thread.join(timeout=10)


def chromium(artifacts):
    """Headless Debian Chromium with the flags this machine needs, a fresh
    profile, and browser and network logs kept for the assertions."""
    profile = tempfile.mkdtemp(prefix="switchyard-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1400,1900",
    ):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    service = Service(CHROMEDRIVER, log_output=os.path.join(artifacts, "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=opts)
    driver.profile_dir = profile
    return driver


def wait(driver, timeout=30):
    """Waits for a page condition. The page redraws its cards once a
    second, so an element a condition found may be replaced before it is
    read: that try counts as not yet, and the next poll looks again."""
    return WebDriverWait(
        driver, timeout, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
    )


def eventually(cond, what, timeout=30):
    """Polls `cond` (a function answering a truthy value) until it holds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        threading.Event().wait(0.1)  # the poll interval of a deadline-bounded condition
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
