#!/usr/bin/env python3
"""The web console in a real browser (headless Debian Chromium, Selenium).

One `switchyard run` process with an admin token, real demo backends
(`switchyard backend`, blue, green x2, canary), and a bounded load on two
routes. The steps run in order, each on the state the one before left:

 1. the login form: a wrong token is refused, the right one is kept in
    sessionStorage (a reload stays logged in);
 2. the split each route's bar shows is the API's, and the page's figures
    are live (requests/s of the pool taking the load); the shadow panel
    shows route web's mirror to canary with the API's figures and its
    mismatch samples (diff lines as the API has them), and a client's
    secrets (Authorization, a token in the query) appear in neither;
 3. a flip through the UI (dialog, confirmation) is applied: the API and
    the page show it, and the history timeline has it;
 4. an invalid split is refused and the API's error is shown;
 5. drain and undrain of a backend, seen by the API and the page;
 6. a rollout started from the UI advances step by step on the page as in
    the API, is paused and resumed from the UI, and is promoted;
 7. a verified flip shows its window and verdict;
 8. every API call the page made was same-origin, carried the bearer
    token, and every mutation was JSON with If-Match; no CSP violation and
    no script error was logged;
 9. a proxy without a token opens straight into the console.

Screenshots go to target/browser-artifacts/ (BROWSER_ARTIFACTS), with the
processes' logs. Page state is awaited with WebDriverWait; API state with
a deadline-bounded poll; nothing sleeps for a fixed time.

    target/browserenv/bin/python tests/browser/test_console.py [--bin target/debug/switchyard]
"""

import http.client
import json
import os
import sys
import unittest
from urllib.parse import urlparse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

import harness  # noqa: E402
from harness import eventually, wait  # noqa: E402

BIN = os.environ.get("SWITCHYARD_BIN", "target/debug/switchyard")
ARTIFACTS = os.environ.get("BROWSER_ARTIFACTS", "target/browser-artifacts")
TOKEN = "console-test-token-7f3a"

CONFIG = """
[server]
listen = "127.0.0.1:0"
workers = 1
watch = "off"

[admin]
listen = "127.0.0.1:0"
token_env = "SWITCHYARD_ADMIN_TOKEN"

[health]
interval = "1s"
timeout = "500ms"

[pools.blue]
backends = ["{blue}"]

[pools.green]
backends = ["{green0}", "{green1}"]

[pools.canary]
backends = ["{canary}"]

[[routes]]
name = "web"
split = {{ blue = 100, green = 0 }}
sticky = {{ header = "X-User-ID" }}
force_header = "X-Switchyard-Pool"
mirror = {{ pool = "canary", percent = 25, compare = {{ body = "json", ignore = ["$.backend"] }} }}

[[routes]]
name = "probe"
path_prefix = "/shadow-probe"
split = {{ blue = 100 }}
mirror = {{ pool = "canary", compare = {{ body = "json", ignore = ["$.backend"] }} }}

[[routes]]
name = "shop"
path_prefix = "/shop"
split = {{ blue = 100, canary = 0 }}

[routes.rollout]
canary = "canary"
stable = "blue"
steps = [20, 50, 80, 100]
step_interval = "3s"
min_requests = 5
max_error_rate = 0.5
max_p99_latency = "2s"
"""


def css(driver, selector):
    return driver.find_elements(By.CSS_SELECTOR, selector)


def attr_of(driver, selector, name):
    """The attribute of the first match, or None (also while it is being replaced)."""
    try:
        found = css(driver, selector)
        return found[0].get_attribute(name) if found else None
    except StaleElementReferenceException:
        return None


def page_split(driver, route):
    """{pool: weight} as the route's bar shows it."""
    try:
        segs = css(driver, f'[data-route="{route}"] .splitbar .seg')
        return {s.get_attribute("data-pool"): int(s.get_attribute("data-weight")) for s in segs}
    except StaleElementReferenceException:
        return None


def keep_evidence(test):
    """On failure, saves the page as it was (screenshot and HTML) beside
    the other artefacts before the error is reported."""

    def run(self):
        try:
            test(self)
        except BaseException:
            name = "FAILED-" + test.__name__
            self.shot(name)
            with open(os.path.join(ARTIFACTS, name + ".html"), "w") as f:
                f.write(self.driver.page_source)
            raise

    run.__name__ = test.__name__
    run.__doc__ = test.__doc__
    return run


class Evident(type):
    """Every test method of the class keeps its evidence."""

    def __new__(mcs, name, bases, ns):
        for k, v in list(ns.items()):
            if k.startswith("test_") and callable(v):
                ns[k] = keep_evidence(v)
        return super().__new__(mcs, name, bases, ns)


class Console(unittest.TestCase, metaclass=Evident):
    @classmethod
    def setUpClass(cls):
        os.makedirs(ARTIFACTS, exist_ok=True)
        cls.procs = []
        b = {}
        for key, pool in [("blue", "blue"), ("green0", "green"), ("green1", "green"), ("canary", "canary")]:
            p = harness.start_backend(BIN, pool, ARTIFACTS, len(cls.procs))
            cls.procs.append(p)
            b[key] = p.addr
        cls.proxy = harness.Proxy(BIN, CONFIG.format(**b), ARTIFACTS, "token", token=TOKEN)
        cls.green = [b["green0"], b["green1"]]
        cls.load = harness.Load(cls.proxy.addr, ["/", "/shop/cart"])
        cls.driver = harness.chromium(ARTIFACTS)

    @classmethod
    def tearDownClass(cls):
        cls.load.stop()
        try:
            cls.driver.quit()
        finally:
            cls.proxy.stop()
            for p in cls.procs:
                p.stop()

    def shot(self, name):
        self.driver.save_screenshot(os.path.join(ARTIFACTS, name + ".png"))

    def confirm(self):
        """Presses Confirm in the open dialog."""
        d = self.driver
        wait(d).until(EC.visibility_of_element_located((By.ID, "confirm")))
        d.find_element(By.ID, "confirm-ok").click()
        wait(d).until(EC.invisibility_of_element_located((By.ID, "confirm")))

    def click(self, selector):
        wait(self.driver).until(EC.element_to_be_clickable((By.CSS_SELECTOR, selector))).click()

    def banner(self, kind, text):
        """Waits for the banner of `kind` saying `text`; answers all it says."""
        d = self.driver

        def shown(d):
            b = d.find_element(By.ID, "banner")
            said = d.find_element(By.ID, "banner-text").text
            return said if b.is_displayed() and b.get_attribute("data-kind") == kind and text in said else None

        return wait(d).until(shown)

    def choose(self, select_id, value):
        Select(self.driver.find_element(By.ID, select_id)).select_by_value(value)

    # 1 -------------------------------------------------------------------------
    def test_1_login_keeps_the_token_in_session_storage(self):
        d = self.driver
        d.get(self.proxy.admin_url + "/")
        wait(d).until(EC.visibility_of_element_located((By.ID, "login")))
        self.assertFalse(d.find_element(By.ID, "app").is_displayed())
        self.shot("01-login")

        d.find_element(By.ID, "token").send_keys("wrong-token")
        d.find_element(By.CSS_SELECTOR, "#login button[type=submit]").click()
        wait(d).until(EC.text_to_be_present_in_element((By.ID, "login-error"), "refused"))
        self.assertIsNone(d.execute_script("return sessionStorage.getItem('switchyard.token')"))

        field = d.find_element(By.ID, "token")
        field.clear()
        field.send_keys(TOKEN)
        d.find_element(By.CSS_SELECTOR, "#login button[type=submit]").click()
        wait(d).until(EC.visibility_of_element_located((By.CSS_SELECTOR, '[data-route="web"]')))
        self.assertEqual(d.execute_script("return sessionStorage.getItem('switchyard.token')"), TOKEN)

        # A reload stays logged in: the token is in this tab's session storage.
        d.refresh()
        wait(d).until(EC.visibility_of_element_located((By.CSS_SELECTOR, '[data-route="shop"]')))
        self.assertFalse(d.find_element(By.ID, "login").is_displayed())
        self.assertTrue(d.find_element(By.ID, "logout").is_displayed())

    # 2 -------------------------------------------------------------------------
    def test_2_the_split_shown_is_the_apis(self):
        d = self.driver
        status = self.proxy.status()
        for r in status["routes"]:
            want = {p: w for p, w in r["split"].items() if w > 0}
            wait(d).until(lambda d: page_split(d, r["name"]) == want)
        wait(d).until(lambda d: attr_of(d, "#generation", "data-generation") == str(status["generation"]))
        # Live figures: blue serves both routes, so its requests/s rises.
        wait(d).until(lambda d: any(
            float(e.text.rstrip("/s") or 0) > 0 for e in css(d, '[data-route="web"] tr[data-pool="blue"] .rps')))
        # The route's settings from the traffic endpoint.
        chips = d.find_element(By.CSS_SELECTOR, '[data-route="web"] .chips').text
        self.assertIn("sticky: header x-user-id", chips)
        self.assertIn("force: x-switchyard-pool", chips)
        self.shot("02-console")

    # 2b ------------------------------------------------------------------------
    def test_2b_the_shadow_panel_shows_the_mirror_and_its_mismatches_without_secrets(self):
        d = self.driver
        secret = "console-shadow-secret-9c1"
        card = '[data-shadow="web/canary"]'
        wait(d).until(EC.visibility_of_element_located((By.CSS_SELECTOR, "#shadow " + card)))
        self.assertEqual(attr_of(d, card, "data-active"), "true")
        # The figures are the API's: copies flow, and blue's and canary's
        # answers differ in `pool` and `version`, so pairs mismatch by body.
        wait(d).until(lambda d: int(css(d, card + ' [data-field="mirrored"]')[0].text) > 0)
        wait(d).until(lambda d: not css(d, card + ' [data-field="mismatched"]')[0].text.startswith("0 "))
        _, api = self.proxy.api("GET", "/api/v1/routes/web/shadow?samples=32")
        pool = api["pools"][0]
        self.assertEqual((pool["pool"], pool["active"], pool["mirror_percent"]), ("canary", True, 25.0))
        self.assertGreater(pool["window"]["mismatched_body"], 0)
        # Route probe (no other traffic, every request copied): a client
        # request with secrets in its header and query, sent until the panel
        # shows it as a sample.
        host, port = self.proxy.addr.rsplit(":", 1)
        probe = '[data-shadow="probe/canary"]'

        def probe_shown():
            conn = http.client.HTTPConnection(host, int(port), timeout=5)
            try:
                conn.request("GET", f"/shadow-probe?token={secret}", headers={"Authorization": f"Bearer {secret}"})
                conn.getresponse().read()
            finally:
                conn.close()
            shown = [e.text for e in css(d, probe + " .sample > code")]
            return any(t.startswith("GET /shadow-probe?token=[redacted]") for t in shown)

        eventually(probe_shown, "the probe request among the panel's samples")
        _, api = self.proxy.api("GET", "/api/v1/routes/probe/shadow?samples=32")
        api_diffs = {line for p in api["pools"] for s in p["samples"] for line in s["diff"]}
        page_diffs = {e.text for e in css(d, probe + " .diff code")}
        self.assertTrue(page_diffs, "diff lines shown")
        self.assertTrue(page_diffs <= api_diffs, f"{page_diffs} not in the API's {api_diffs}")
        self.assertTrue(any(line.startswith("$.version") for line in page_diffs), page_diffs)
        self.assertFalse(any("$.backend" in line for line in page_diffs), "an ignored field shown")
        self.assertNotIn(secret, d.page_source)
        self.assertNotIn(secret, json.dumps(api))
        self.shot("02b-shadow")

    # 3 -------------------------------------------------------------------------
    def test_3_a_flip_through_the_ui_is_applied(self):
        d = self.driver
        self.click('[data-route="web"] [data-action="flip"]')
        wait(d).until(EC.visibility_of_element_located((By.ID, "flip-to")))
        self.choose("flip-to", "green")
        self.shot("03-flip-dialog")
        self.confirm()
        self.banner("ok", "flip web → green: done")
        eventually(lambda: self.proxy.split("web").get("green") == 100, "the API to show web on green")
        wait(d).until(lambda d: page_split(d, "web") == {"green": 100})
        # The backends see it too: "/" now answers from green.
        wait(d).until(lambda d: any(
            float(e.text.rstrip("/s") or 0) > 0 for e in css(d, '[data-route="web"] tr[data-pool="green"] .rps')))
        wait(d).until(EC.presence_of_element_located((By.CSS_SELECTOR, '#timeline li[data-action="flip"]')))
        self.shot("04-flipped")

    # 4 -------------------------------------------------------------------------
    def test_4_an_invalid_change_shows_the_apis_error(self):
        d = self.driver
        before = self.proxy.split("web")
        self.click('[data-route="web"] [data-action="split"]')
        wait(d).until(EC.visibility_of_element_located((By.CSS_SELECTOR, "#confirm-body input")))
        for field in css(d, "#confirm-body input"):
            field.clear()
            field.send_keys("0")
        self.confirm()
        text = self.banner("error", "split web refused")
        self.assertIn("422 invalid_change", text)
        self.assertEqual(self.proxy.split("web"), before)
        self.shot("05-error")

    # 5 -------------------------------------------------------------------------
    def test_5_drain_and_undrain_a_backend(self):
        d = self.driver
        addr = self.green[1]
        row = f'tr[data-backend="green/{addr}"]'

        def drained_in_api():
            pool = next(p for p in self.proxy.status()["pools"] if p["name"] == "green")
            return next(b for b in pool["backends"] if b["addr"] == addr)["draining"]

        self.click(f'{row} [data-action="drain"]')
        self.confirm()
        eventually(drained_in_api, "the API to show the backend draining")
        wait(d).until(lambda d: attr_of(d, row, "data-state") == "draining")
        self.shot("06-drained")
        self.click(f'{row} [data-action="undrain"]')
        self.confirm()
        eventually(lambda: not drained_in_api(), "the API to show the backend back")
        wait(d).until(lambda d: attr_of(d, row, "data-state") == "active")

    # 6 -------------------------------------------------------------------------
    def test_6_a_rollout_advances_and_is_driven_from_the_ui(self):
        d = self.driver
        card = '[data-rollout="shop"]'
        self.click('[data-route="shop"] [data-action="rollout-start"]')
        self.confirm()
        wait(d).until(EC.visibility_of_element_located((By.CSS_SELECTOR, card)))

        def api_rollout():
            code, body = self.proxy.api("GET", "/api/v1/routes/shop/rollout")
            return body if code == 200 else None

        # Charts of the step's window with their thresholds drawn.
        wait(d).until(lambda d: len(css(d, f"{card} .chart line.limit")) == 2)
        self.assertEqual(len(css(d, f"{card} .chart line.minline")), 1)
        self.shot("07-rollout-step-1")
        # It advances: the page shows a later step, and so does the API.
        wait(d, 30).until(lambda d: int(attr_of(d, card, "data-step") or 0) >= 1)
        self.assertGreaterEqual(api_rollout()["step"], 1)
        # Paused at once, so that it cannot finish before the checks below.
        self.click(f'{card} [data-action="rollout-pause"]')
        self.confirm()
        wait(d).until(lambda d: attr_of(d, card, "data-phase") == "paused")
        self.assertEqual(api_rollout()["phase"], "paused")
        step = api_rollout()["step"]
        self.assertEqual(int(attr_of(d, card, "data-step")), step)
        # The bar follows the rollout's weights; the verdicts so far are listed.
        weight = [20, 50, 80, 100][step]
        wait(d).until(lambda d: (page_split(d, "shop") or {}).get("canary") == weight)
        wait(d).until(lambda d: len(css(d, f'{card} .verdicts li[data-action="rollout_step"]')) >= 1)
        wait(d).until(lambda d: css(d, f'{card} .step[data-index="{step}"][data-state="current"]'))
        self.shot("08-rollout-paused")
        self.click(f'{card} [data-action="rollout-resume"]')
        self.confirm()
        wait(d).until(lambda d: attr_of(d, card, "data-phase") == "progressing")

        self.click(f'{card} [data-action="rollout-promote"]')
        self.confirm()
        wait(d, 30).until(lambda d: attr_of(d, card, "data-phase") == "promoted")
        self.assertEqual(api_rollout()["phase"], "promoted")
        wait(d).until(lambda d: page_split(d, "shop") == {"canary": 100})
        self.assertEqual(self.proxy.split("shop").get("canary"), 100)
        self.shot("09-rollout-promoted")

    # 7 -------------------------------------------------------------------------
    def test_7_a_verified_flip_shows_its_window_and_verdict(self):
        d = self.driver
        self.click('[data-route="web"] [data-action="flip"]')
        wait(d).until(EC.visibility_of_element_located((By.ID, "flip-verify")))
        self.choose("flip-to", "blue")
        d.find_element(By.ID, "flip-verify").send_keys("3s")
        self.confirm()
        card = '[data-flip="web"]'
        wait(d).until(lambda d: attr_of(d, card, "data-phase") == "verifying")
        self.shot("10-verified-flip-running")
        wait(d, 30).until(lambda d: attr_of(d, card, "data-phase") == "verified")
        code, body = self.proxy.api("GET", "/api/v1/routes/web/flip")
        self.assertEqual((code, body["phase"]), (200, "verified"))
        wait(d).until(lambda d: page_split(d, "web") == {"blue": 100})
        wait(d).until(lambda d: css(d, f'{card} .verdicts li[data-action="flip_verified"]'))
        self.shot("11-verified-flip-done")

    # 8 -------------------------------------------------------------------------
    def test_8_calls_were_same_origin_authenticated_json_and_nothing_was_blocked(self):
        d = self.driver
        origin = urlparse(self.proxy.admin_url)
        calls = []
        for entry in d.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg.get("method") != "Network.requestWillBeSent":
                continue
            req = msg["params"]["request"]
            url = urlparse(req["url"])
            page = urlparse(msg["params"].get("documentURL", ""))
            # The console's own requests (the browser's new-tab page is not ours).
            if (page.scheme, page.netloc) != (origin.scheme, origin.netloc):
                continue
            self.assertEqual((url.scheme, url.netloc), (origin.scheme, origin.netloc), req["url"])
            if url.path.startswith("/api/"):
                calls.append(req)
        mutations = [c for c in calls if c["method"] != "GET"]
        self.assertGreaterEqual(len(mutations), 8, [c["url"] for c in mutations])
        for c in calls:
            headers = {k.lower(): v for k, v in c["headers"].items()}
            if headers.get("authorization") is None:
                # Only the first poll, before the login, goes without (and is refused).
                self.assertEqual(c["method"], "GET", c["url"])
                continue
            self.assertIn(headers["authorization"], (f"Bearer {TOKEN}", "Bearer wrong-token"))
        for c in mutations:
            headers = {k.lower(): v for k, v in c["headers"].items()}
            self.assertEqual(headers.get("content-type"), "application/json", c["url"])
            self.assertRegex(headers.get("if-match", ""), r"^\d+$", c["url"])
            json.loads(c.get("postData") or "{}")
        problems = [
            e["message"] for e in d.get_log("browser")
            if "Content Security Policy" in e["message"] or "Refused to" in e["message"]
            or "Uncaught" in e["message"]
        ]
        self.assertEqual(problems, [])

    # 9 -------------------------------------------------------------------------
    def test_9_without_a_token_the_console_opens_directly(self):
        d = self.driver
        config = CONFIG.replace('token_env = "SWITCHYARD_ADMIN_TOKEN"\n', "").format(
            blue=self.procs[0].addr, green0=self.green[0], green1=self.green[1], canary=self.procs[3].addr)
        proxy = harness.Proxy(BIN, config, ARTIFACTS, "open")
        try:
            d.get(proxy.admin_url + "/")
            wait(d).until(EC.visibility_of_element_located((By.CSS_SELECTOR, '[data-route="web"]')))
            self.assertFalse(d.find_element(By.ID, "login").is_displayed())
            self.assertFalse(d.find_element(By.ID, "logout").is_displayed())
            wait(d).until(lambda d: page_split(d, "web") == {"blue": 100})
        finally:
            proxy.stop()


class Result(unittest.TextTestResult):
    pass


def main():
    global BIN
    args = sys.argv[1:]
    if len(args) >= 2 and args[0] == "--bin":
        BIN = args[1]
        args = args[2:]
    if not os.path.isfile(BIN):
        print(f"switchyard binary {BIN} not found (cargo build first, or --bin PATH)", file=sys.stderr)
        return 2
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(Console)
    result = unittest.TextTestRunner(verbosity=2, resultclass=Result).run(suite)
    failed = len(result.failures) + len(result.errors)
    passed = result.testsRun - failed - len(result.skipped)
    print(f"browser: {passed} passed, {failed} failed")
    print(f"screenshots and logs: {ARTIFACTS}/")
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
