"""Helpers for the browser tests of Coffer's web console (/console), driving Debian's headless
Chromium through chromedriver and Selenium.

The page contract (URLs, form field names, element ids) is the one the console implements:
sign-in forms `form#signin-iam` / `form#signin-root`, `span#whoami`, `form#signout`,
`div#error` ("<Code>: <Message>"), `div#flash`, a hidden `csrf` input in every form.

Test modules load this file as a pytest plugin (`pytest_plugins = ["console_helpers"]`), which
gives them:
  - the `browser` fixture: a fresh headless Chromium (own profile and download directory), as a
    `ConsoleBrowser`; a screenshot and the page's HTML are saved when the test fails;
  - `needs_browser`: the skip mark (only when /usr/bin/chromium is absent and
    COFFER_REQUIRE_BROWSER is not set; CI sets it, so a missing browser fails there).

Raw HTTP helpers (`RawConsole`, `raw_request`, `parse_forms`) talk to the console without a
browser, for what a browser does not show: status codes, Set-Cookie attributes, headers, and
requests a page would never send (a form without its csrf field, a signed-out cookie).

Screenshots go to $COFFER_SCREENSHOTS, else <repo>/target/console-screenshots/.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import shutil
import ssl
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from email.message import Message
from html.parser import HTMLParser
from pathlib import Path

import pytest

from e2e_helpers import ACCOUNT, REPO_ROOT

# Selenium Manager (selenium's driver downloader) must never run: the browser and its driver are
# Debian's, and the network is closed. SE_OFFLINE makes it refuse to download should anything
# still call it; passing both paths explicitly means nothing calls it.
os.environ.setdefault("SE_OFFLINE", "true")
os.environ.setdefault("SE_AVOID_STATS", "true")

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import (  # noqa: E402
    NoAlertPresentException,
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
    UnexpectedAlertPresentException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

CHROMIUM = Path(os.environ.get("COFFER_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("COFFER_CHROMEDRIVER", "/usr/bin/chromedriver"))
REQUIRE_BROWSER = bool(os.environ.get("COFFER_REQUIRE_BROWSER"))

needs_browser = pytest.mark.skipif(
    not Path("/usr/bin/chromium").exists() and not REQUIRE_BROWSER,
    reason="no /usr/bin/chromium (apt-get install chromium chromium-driver; "
    "set COFFER_REQUIRE_BROWSER=1 to make this a failure)",
)

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    # without these Chromium hangs on start-up trying to reach Google on this closed network
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-features=Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider",
    "--window-size=1366,900",
]

WAIT = float(os.environ.get("COFFER_CONSOLE_WAIT", "30"))  # seconds, for every explicit wait
POLL = 0.1

SIGNIN_FAILED = "Your authentication information is incorrect. Please try again."
TOO_MANY = "Too many sign-in attempts"


def root_arn() -> str:
    return f"arn:aws:iam::{ACCOUNT}:root"


def screenshot_dir() -> Path:
    d = Path(os.environ.get("COFFER_SCREENSHOTS") or (REPO_ROOT / "target" / "console-screenshots"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "page"


class ConsoleBrowser:
    """One headless Chromium session, with helpers that follow the console's page contract.

    Every action that submits a form or follows a link waits for the next page to be loaded
    (the old <html> element gone stale and document.readyState "complete"); nothing sleeps for
    a fixed time."""

    def __init__(self, name: str = "console"):
        self.name = _safe(name)
        self.work = Path(tempfile.mkdtemp(prefix="coffer-console-"))
        self.profile_dir = self.work / "profile"
        self.download_dir = self.work / "downloads"
        self.profile_dir.mkdir()
        self.download_dir.mkdir()
        self.endpoint: str | None = None
        self.driver: webdriver.Chrome | None = None
        self.shots: list[Path] = []

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> "ConsoleBrowser":
        if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
            raise RuntimeError(
                f"the browser tests need {CHROMIUM} and {CHROMEDRIVER} "
                "(Debian packages chromium and chromium-driver)"
            )
        opts = webdriver.ChromeOptions()
        opts.binary_location = str(CHROMIUM)
        for flag in CHROMIUM_FLAGS:
            opts.add_argument(flag)
        opts.add_argument(f"--user-data-dir={self.profile_dir}")
        opts.add_experimental_option(
            "prefs",
            {
                "download.default_directory": str(self.download_dir),
                "download.prompt_for_download": False,
                "download.directory_upgrade": True,
                "credentials_enable_service": False,
                "profile.password_manager_enabled": False,
                "profile.password_manager_leak_detection": False,
            },
        )
        # confirm() dialogs (e.g. "Delete this object?") are answered explicitly by
        # `_wait_for_navigation`; "ignore" keeps chromedriver from dismissing them first.
        opts.unhandled_prompt_behavior = "ignore"
        service = Service(executable_path=str(CHROMEDRIVER), log_output=str(self.work / "chromedriver.log"))
        self.driver = webdriver.Chrome(service=service, options=opts)
        self.driver.set_page_load_timeout(WAIT)
        self.driver.set_script_timeout(WAIT)
        # Downloads without a prompt, into our directory, in every tab (headless Chromium
        # ignores the download prefs in some versions; the CDP command is authoritative).
        try:
            self.driver.execute_cdp_cmd(
                "Browser.setDownloadBehavior",
                {"behavior": "allow", "downloadPath": str(self.download_dir), "eventsEnabled": False},
            )
        except WebDriverException:
            self.driver.execute_cdp_cmd(
                "Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(self.download_dir)}
            )
        return self

    def quit(self):
        if self.driver is not None:
            try:
                self.driver.quit()
            except WebDriverException:
                pass
            self.driver = None
        shutil.rmtree(self.work, ignore_errors=True)

    # -- navigation ---------------------------------------------------------------------------

    def url(self, path: str, endpoint: str | None = None) -> str:
        base = endpoint or self.endpoint
        assert base, "no endpoint: sign in first or pass endpoint="
        return base.rstrip("/") + path

    def go(self, path: str, endpoint: str | None = None):
        """Loads endpoint+path and waits for the document to be complete."""
        if endpoint:
            self.endpoint = endpoint
        self.driver.get(self.url(path))
        self._wait_ready()

    @property
    def current_path(self) -> str:
        u = urllib.parse.urlsplit(self.driver.current_url)
        return u.path + (("?" + u.query) if u.query else "")

    def _wait_ready(self, timeout: float = WAIT):
        WebDriverWait(self.driver, timeout, POLL).until(
            lambda d: d.execute_script("return document.readyState") == "complete",
            f"page never finished loading: {self.driver.current_url}",
        )

    def _accept_dialog(self) -> str | None:
        try:
            alert = self.driver.switch_to.alert
            text = alert.text
            alert.accept()
            return text
        except NoAlertPresentException:
            return None

    def _invalid_fields(self) -> str:
        """HTML5 validation messages of the page's invalid fields (why a submit did nothing)."""
        try:
            got = self.driver.execute_script(
                "return Array.from(document.querySelectorAll(':invalid'))"
                ".filter(e => e.name || e.id)"
                ".map(e => (e.id || e.name) + ': ' + e.validationMessage);"
            )
            return "; ".join(got or [])
        except WebDriverException:
            return "?"

    @staticmethod
    def _gone(old_html: WebElement) -> bool:
        """Whether the document holding `old_html` has been replaced. While a navigation is in
        flight chromedriver may answer with a stale-element error or with a generic one ("Node
        with given id does not belong to the document"): both mean the old page is gone; an open
        dialog means it is still there."""
        try:
            old_html.is_enabled()
            return False
        except UnexpectedAlertPresentException:
            return False
        except WebDriverException:  # includes StaleElementReferenceException
            return True

    def _wait_for_navigation(self, old_html: WebElement, what: str, timeout: float = WAIT):
        """Waits until the page holding `old_html` is replaced and the new one is loaded,
        accepting a confirm() dialog if the click raised one."""
        deadline = time.monotonic() + timeout
        dialogs = []
        while True:
            text = self._accept_dialog()
            if text is not None:
                dialogs.append(text)
            if self._gone(old_html):
                try:
                    if self.driver.execute_script("return document.readyState") == "complete":
                        return
                except WebDriverException:  # an alert, or the next document not ready for scripts yet
                    pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{what}: no new page within {timeout:.0f}s (still at {self.driver.current_url}; "
                    f"dialogs accepted: {dialogs}; invalid fields: {self._invalid_fields() or 'none'}; "
                    f"error shown: {self.error_text()!r})"
                )
            time.sleep(POLL)

    def click_and_wait(self, target, what: str | None = None, timeout: float = WAIT):
        """Clicks a link or submit button (an element, or an element id) and waits for the page
        it leads to. Follows a link opened in a new tab by switching to that tab."""
        el = self.find(target) if isinstance(target, str) else target
        what = what or f"click {target if isinstance(target, str) else el.get_attribute('id') or el.text!r}"
        handles = set(self.driver.window_handles)
        old_html = self.driver.find_element(By.TAG_NAME, "html")
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", el)
        WebDriverWait(self.driver, timeout, POLL).until(
            lambda d: el.is_displayed() and el.is_enabled(), f"{what}: element never became clickable"
        )
        el.click()
        # a target=_blank link: continue in the new tab
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            new = set(self.driver.window_handles) - handles
            if new:
                self.driver.switch_to.window(new.pop())
                self._wait_ready(timeout)
                return
            if self._gone(old_html):
                break
            try:
                self.driver.switch_to.alert  # a confirm() dialog: answered by _wait_for_navigation
                break
            except NoAlertPresentException:
                pass
            time.sleep(POLL)
        self._wait_for_navigation(old_html, what, timeout)

    def close_extra_tabs(self):
        handles = self.driver.window_handles
        for h in handles[1:]:
            self.driver.switch_to.window(h)
            self.driver.close()
        self.driver.switch_to.window(handles[0])

    # -- elements -----------------------------------------------------------------------------

    def find(self, element_id: str) -> WebElement:
        try:
            return self.driver.find_element(By.ID, element_id)
        except NoSuchElementException:
            raise AssertionError(
                f"no element #{element_id} on {self.driver.current_url} "
                f"(error shown: {self.error_text()!r}; title {self.driver.title!r})"
            ) from None

    def css(self, selector: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def has(self, element_id: str) -> bool:
        return bool(self.driver.find_elements(By.ID, element_id))

    def wait_for(self, element_id: str, timeout: float = WAIT) -> WebElement:
        try:
            return WebDriverWait(self.driver, timeout, POLL).until(
                lambda d: d.find_element(By.ID, element_id)
            )
        except TimeoutException:
            raise AssertionError(
                f"#{element_id} never appeared on {self.driver.current_url} (error shown: {self.error_text()!r})"
            ) from None

    def wait_until(self, predicate, message: str, timeout: float = WAIT):
        """Polls predicate(driver) until truthy; fails with `message` (+ the page's error)."""
        try:
            return WebDriverWait(self.driver, timeout, POLL, ignored_exceptions=(StaleElementReferenceException,)).until(
                predicate
            )
        except TimeoutException:
            raise AssertionError(
                f"{message} (at {self.driver.current_url}; error shown: {self.error_text()!r})"
            ) from None

    def text(self, element_id: str) -> str:
        return self.find(element_id).text.strip()

    def content(self, element_id: str) -> str:
        """textContent (also of text not rendered, e.g. inside a closed <details>)."""
        return (self.find(element_id).get_attribute("textContent") or "").strip()

    def value(self, element_id: str) -> str:
        return self.find(element_id).get_attribute("value") or ""

    def fill(self, element_id: str, value: str):
        """Types `value` into an input or textarea, replacing what was there."""
        el = self.find(element_id)
        WebDriverWait(self.driver, WAIT, POLL).until(
            lambda d: el.is_displayed() and el.is_enabled(), f"#{element_id} never became editable"
        )
        el.clear()
        if value:
            el.send_keys(value)
        got = el.get_attribute("value")
        assert got == value, f"#{element_id}: typed {value!r}, field holds {got!r}"

    def set_checked(self, element_id: str, checked: bool = True):
        el = self.find(element_id)
        if el.is_selected() != checked:
            self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", el)
            el.click()
        assert el.is_selected() == checked, f"#{element_id} could not be {'checked' if checked else 'unchecked'}"

    def select_value(self, element_id: str, value: str):
        el = self.find(element_id)
        self.wait_until(lambda d: el.is_enabled(), f"select#{element_id} stays disabled")
        sel = Select(el)
        values = [o.get_attribute("value") for o in sel.options]
        assert value in values, f"select#{element_id} has no option {value!r}; options: {values}"
        sel.select_by_value(value)

    def select_options(self, element_id: str) -> list[tuple[str, str]]:
        return [(o.get_attribute("value"), o.text.strip()) for o in Select(self.find(element_id)).options]

    def selected_value(self, element_id: str) -> str:
        return Select(self.find(element_id)).first_selected_option.get_attribute("value")

    def body_text(self) -> str:
        return self.driver.find_element(By.TAG_NAME, "body").text

    # -- contract: messages ---------------------------------------------------------------------

    def error_text(self) -> str | None:
        """The text of div#error, or None when the page shows no error."""
        try:
            els = self.driver.find_elements(By.CSS_SELECTOR, "div#error")
            return els[0].text.strip() if els else None
        except WebDriverException:
            return None

    def flash_text(self) -> str | None:
        els = self.driver.find_elements(By.CSS_SELECTOR, "div#flash")
        return els[0].text.strip() if els else None

    def assert_no_error(self, context: str):
        err = self.error_text()
        assert not err, f"{context}: the page shows an error: {err!r} (at {self.driver.current_url})"

    def expect_error(self, prefix: str, context: str) -> str:
        """Waits for div#error and checks it starts with `prefix`; returns its text."""
        el = self.wait_until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "div#error"),
            f"{context}: expected div#error starting with {prefix!r}, the page shows none",
        )[0]
        text = el.text.strip()
        assert text.startswith(prefix), f"{context}: div#error is {text!r}, expected it to start with {prefix!r}"
        assert el.get_attribute("role") == "alert", f"{context}: div#error has no role=alert"
        return text

    def whoami(self) -> str:
        return self.text("whoami")

    # -- contract: sign-in and sign-out -----------------------------------------------------------

    def open_signin(self, endpoint: str | None = None):
        self.go("/console/signin", endpoint)
        self.wait_for("signin-iam")

    def submit_signin_root(self, key: str, secret: str, endpoint: str | None = None):
        """Fills and submits form#signin-root; does not check the outcome."""
        self.open_signin(endpoint)
        self.fill("access_key_id", key)
        self.fill("secret_access_key", secret)
        self.click_and_wait("signin-root-button", "root sign-in")

    def submit_signin_iam(self, account: str, user: str, password: str, endpoint: str | None = None):
        """Fills and submits form#signin-iam; does not check the outcome."""
        self.open_signin(endpoint)
        self.fill("account", account)
        self.fill("username", user)
        self.fill("password", password)
        self.click_and_wait("signin-iam-button", f"sign-in as {user}")

    def _expect_signed_in(self, arn: str, who: str):
        path = urllib.parse.urlsplit(self.driver.current_url).path
        assert path == "/console/kms", (
            f"sign-in as {who}: expected to land on /console/kms, got {self.driver.current_url} "
            f"(error shown: {self.error_text()!r})"
        )
        got = self.wait_for("whoami").text.strip()
        assert got == arn, f"sign-in as {who}: span#whoami is {got!r}, expected {arn!r}"

    def sign_in_root(self, endpoint: str, key: str, secret: str):
        self.endpoint = endpoint
        self.submit_signin_root(key, secret)
        self._expect_signed_in(root_arn(), "root")

    def sign_in_iam(self, account: str, user: str, password: str, endpoint: str | None = None):
        if endpoint:
            self.endpoint = endpoint
        self.submit_signin_iam(account, user, password)
        self._expect_signed_in(f"arn:aws:iam::{account}:user/{user}", user)

    def sign_out(self):
        self.find("signout")
        self.click_and_wait("signout-button", "sign-out")
        # wherever sign-out leads, the console now asks to sign in
        self.go("/console/kms")
        assert urllib.parse.urlsplit(self.driver.current_url).path == "/console/signin", (
            f"after sign-out /console/kms should redirect to /console/signin, got {self.driver.current_url}"
        )
        assert not self.has("whoami"), "after sign-out the page still shows span#whoami"

    def session_cookie(self) -> str | None:
        c = self.driver.get_cookie("coffer_session")
        return c["value"] if c else None

    def cookies(self) -> dict[str, str]:
        return {c["name"]: c["value"] for c in self.driver.get_cookies()}

    # -- contract: navigation by clicking ---------------------------------------------------------

    def nav(self, which: str):
        """Clicks a#nav-<which> (kms, s3, iam, groups) in the layout's nav."""
        self.click_and_wait(f"nav-{which}", f"nav to {which}")

    def click_row_link(self, row_selector: str, link_class: str, what: str):
        rows = self.css(row_selector)
        assert rows, f"{what}: no row {row_selector} on {self.driver.current_url} (error shown: {self.error_text()!r})"
        links = rows[0].find_elements(By.CSS_SELECTOR, f"a.{link_class}")
        assert links, f"{what}: row {row_selector} has no a.{link_class}"
        self.click_and_wait(links[0], what)

    # -- forms as the browser would send them -----------------------------------------------------

    def form_fields(self, form_id: str) -> list[tuple[str, str]]:
        """The (name, value) pairs the browser would submit for form#<form_id> right now."""
        got = self.driver.execute_script(
            "return Array.from(new FormData(arguments[0]).entries())"
            ".filter(e => typeof e[1] === 'string');",
            self.find(form_id),
        )
        return [(k, v) for k, v in got]

    def form_action(self, form_id: str) -> str:
        """The absolute URL form#<form_id> posts to."""
        attr = self.driver.execute_script("return arguments[0].getAttribute('action');", self.find(form_id))
        return urllib.parse.urljoin(self.driver.current_url, attr or "")

    # -- contract: upload -------------------------------------------------------------------------

    def upload_status(self) -> str:
        el = self.driver.find_elements(By.CSS_SELECTOR, "span#upload-status")
        return el[0].text.strip() if el else ""

    @staticmethod
    def _is_upload_error(status: str) -> bool:
        return bool(re.match(r"^[A-Z][A-Za-z0-9.]+: ", status) or re.search(r"\b(failed|error)\b", status, re.I))

    def upload(self, path: Path, key: str, timeout: float = WAIT) -> str:
        """On a bucket page: picks `path` in input#upload-file, clicks button#upload-button and
        waits for the outcome. Returns "Upload succeeded", or the error span#upload-status shows.
        (The page script reloads the listing after success, which may reset the status: the
        object's row appearing counts as success too.)"""
        self.find("upload-file").send_keys(str(path))
        row = f'table#objects tr.object[data-key="{key}"]'
        self.find("upload-button").click()

        def outcome(d):
            try:
                st = self.upload_status()
                if st == "Upload succeeded" or self._is_upload_error(st):
                    return st
                if self.css(row):
                    return "Upload succeeded"
            except WebDriverException:  # the page script is reloading the listing
                pass
            return None

        return self.wait_until(outcome, f"the upload of {path.name} never finished (span#upload-status "
                                        f"never said 'Upload succeeded' nor showed an error)", timeout)

    # -- downloads and screenshots ----------------------------------------------------------------

    def clear_downloads(self):
        for p in self.download_dir.iterdir():
            if p.is_file():
                p.unlink()
            else:
                shutil.rmtree(p, ignore_errors=True)

    def wait_download(self, name: str, timeout: float = WAIT) -> Path:
        """Waits until <download dir>/<name> is completely written; returns its path."""
        target = self.download_dir / name
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            partial = [p for p in self.download_dir.iterdir() if p.name.endswith((".crdownload", ".tmp"))]
            if target.exists() and not partial:
                return target
            time.sleep(POLL)
        raise AssertionError(
            f"download {name!r} never completed in {self.download_dir}; it holds "
            f"{sorted(p.name for p in self.download_dir.iterdir())}"
        )

    def _full_page_png(self) -> bytes | None:
        """The whole page (not only the viewport) as PNG, through CDP; None if that fails."""
        try:
            m = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
            size = m.get("cssContentSize") or m["contentSize"]
            width = max(int(size["width"]), 1)
            height = min(max(int(size["height"]), 1), 16000)
            shot = self.driver.execute_cdp_cmd(
                "Page.captureScreenshot",
                {
                    "format": "png",
                    "captureBeyondViewport": True,
                    "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
                },
            )
            return base64.b64decode(shot["data"])
        except (WebDriverException, KeyError, ValueError):
            return None

    def screenshot(self, name: str, full_page: bool = True) -> Path:
        """Saves <screenshot dir>/<name>.png: the whole page by default, else the viewport."""
        path = screenshot_dir() / f"{_safe(name)}.png"
        png = self._full_page_png() if full_page else None
        if png:
            path.write_bytes(png)
        else:
            assert self.driver.save_screenshot(str(path)), f"could not save screenshot {path}"
        self.shots.append(path)
        return path

    def save_failure_artifacts(self, test_name: str):
        if self.driver is None:
            return
        base = screenshot_dir() / f"FAILED-{_safe(test_name)}"
        try:
            self._accept_dialog()
            png = self._full_page_png()
            if png:
                Path(str(base) + ".png").write_bytes(png)
            else:
                self.driver.save_screenshot(str(base) + ".png")
            Path(str(base) + ".html").write_text(
                f"<!-- {self.driver.current_url} -->\n" + self.driver.page_source, encoding="utf-8"
            )
        except WebDriverException as e:  # the browser may be what failed
            Path(str(base) + ".txt").write_text(f"no screenshot: {e}\n", encoding="utf-8")


# -----------------------------------------------------------------------------------------------
# pytest plugin part: the fixture and the failure hook


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


_CALL_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def browser(request):
    """A fresh headless Chromium for this test; on failure its page is saved as
    FAILED-<test>.png/.html in the screenshot directory."""
    b = ConsoleBrowser(request.node.name).start()
    try:
        yield b
    finally:
        if request.node.stash.get(_CALL_FAILED, False):
            b.save_failure_artifacts(request.node.name)
        b.quit()


# -----------------------------------------------------------------------------------------------
# raw HTTP: status codes, headers and requests no page would send


@dataclass
class RawResponse:
    status: int
    headers: Message
    body: str
    set_cookies: list[str] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def location_path(self) -> str | None:
        loc = self.headers.get("Location")
        return urllib.parse.urlsplit(loc).path if loc else None

    def set_cookie(self, name: str) -> str | None:
        """The Set-Cookie header line setting cookie `name`, if any."""
        for line in self.set_cookies:
            if line.split("=", 1)[0].strip() == name:
                return line
        return None

    def error_text(self) -> str | None:
        m = re.search(r'<div[^>]*\bid="error"[^>]*>(.*?)</div>', self.body, re.S)
        if not m:
            return None
        return _html_text(m.group(1))


def _html_text(fragment: str) -> str:
    import html

    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", fragment))).strip()


def raw_request(
    method: str,
    url: str,
    form: dict | list | None = None,
    cookies: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 30,
) -> RawResponse:
    """One HTTP request with http.client: redirects are NOT followed (a 303 is returned as is).
    `form` is sent urlencoded; POSTs carry the endpoint's Origin, as a same-origin page would."""
    u = urllib.parse.urlsplit(url)
    if u.scheme == "https":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(u.netloc, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(u.netloc, timeout=timeout)
    hdrs = dict(headers or {})
    if form is not None:
        body = urllib.parse.urlencode(form).encode()
        hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
    if method == "POST":
        hdrs.setdefault("Origin", f"{u.scheme}://{u.netloc}")
    if cookies:
        hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    path = u.path + (("?" + u.query) if u.query else "")
    try:
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        data = r.read().decode("utf-8", "replace")
        return RawResponse(r.status, r.headers, data, r.headers.get_all("Set-Cookie") or [])
    finally:
        conn.close()


class _FormParser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms: dict[str, dict] = {}
        self._current: dict | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "form":
            key = a.get("id") or f"form{len(self.forms)}"
            self._current = {"action": a.get("action", ""), "method": a.get("method", "get").upper(), "inputs": []}
            self.forms[key] = self._current
        elif tag in ("input", "button", "textarea", "select") and self._current is not None and a.get("name"):
            self._current["inputs"].append(
                {"tag": tag, "name": a["name"], "value": a.get("value", ""), "type": a.get("type", ""), "id": a.get("id", "")}
            )

    def handle_endtag(self, tag):
        if tag == "form":
            self._current = None


def parse_forms(html_text: str) -> dict[str, dict]:
    """Forms of a page by id: {"action", "method", "inputs": [{"tag","name","value","type","id"}]}."""
    p = _FormParser()
    p.feed(html_text)
    return p.forms


def form_field(html_text: str, form_id: str, name: str) -> str:
    forms = parse_forms(html_text)
    assert form_id in forms, f"no form#{form_id} in the page; forms: {sorted(forms)}"
    for i in forms[form_id]["inputs"]:
        if i["name"] == name:
            return i["value"]
    raise AssertionError(f"form#{form_id} has no field {name!r}: {forms[form_id]['inputs']}")


class RawConsole:
    """A cookie-keeping client of the console without a browser (no redirects followed)."""

    def __init__(self, endpoint: str):
        self.endpoint = endpoint.rstrip("/")
        self.cookies: dict[str, str] = {}

    def _keep(self, r: RawResponse):
        for line in r.set_cookies:
            nv = line.split(";", 1)[0]
            if "=" not in nv:
                continue
            name, value = (s.strip() for s in nv.split("=", 1))
            attrs = line.lower()
            if not value or re.search(r";\s*max-age=0\b", attrs) or "expires=thu, 01 jan 1970" in attrs:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value

    def get(self, path: str, **kw) -> RawResponse:
        r = raw_request("GET", self.endpoint + path, cookies=self.cookies, **kw)
        self._keep(r)
        return r

    def post(self, path: str, form: dict | list, **kw) -> RawResponse:
        r = raw_request("POST", self.endpoint + path, form=form, cookies=self.cookies, **kw)
        self._keep(r)
        return r

    def signin_form(self, kind: str) -> dict:
        """GETs the sign-in page (setting the pre-session cookie) and returns the hidden fields
        of form#signin-<kind> (csrf, kind)."""
        r = self.get("/console/signin")
        assert r.status == 200, f"GET /console/signin answered {r.status}: {r.body[:500]}"
        forms = parse_forms(r.body)
        fid = f"signin-{kind}"
        assert fid in forms, f"no form#{fid} on the sign-in page; forms: {sorted(forms)}"
        hidden = {i["name"]: i["value"] for i in forms[fid]["inputs"] if i["type"] == "hidden"}
        assert hidden.get("csrf"), f"form#{fid} has no hidden csrf field: {forms[fid]['inputs']}"
        hidden.setdefault("kind", kind)
        return hidden

    def sign_in_root(self, key: str, secret: str) -> RawResponse:
        form = self.signin_form("root")
        form.update(access_key_id=key, secret_access_key=secret)
        return self.post("/console/signin", form)

    def sign_in_iam(self, account: str, user: str, password: str) -> RawResponse:
        form = self.signin_form("iam")
        form.update(account=account, username=user, password=password)
        return self.post("/console/signin", form)


def csp_directives(header: str | None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in (header or "").split(";"):
        words = part.split()
        if words:
            out.setdefault(words[0].lower(), [w for w in words[1:]])
    return out


def json_of_text(text: str, what: str) -> dict:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise AssertionError(f"{what} is not JSON ({e}): {text[:2000]!r}") from None


def statements_by_sid(policy: dict) -> dict[str, dict]:
    st = policy.get("Statement", [])
    if isinstance(st, dict):
        st = [st]
    return {s.get("Sid", f"#{i}"): s for i, s in enumerate(st)}


def principals(statement: dict) -> list[str]:
    p = statement.get("Principal", {})
    if isinstance(p, str):
        return [p]
    aws = p.get("AWS", [])
    return [aws] if isinstance(aws, str) else list(aws)
