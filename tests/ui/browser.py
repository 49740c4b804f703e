"""Driving the system Chromium (Debian's `chromium` + `chromium-driver`) headless with Selenium, for the staff
pages' browser tests and `make screenshots`.

- `Browser` opens a headless Chromium at 1280x800 and records every URL it requests (from the DevTools
  network log), so tests can check that no NHS number ever appears in one.
- `sign_in(page, hub, user_button_label)` goes through the real OIDC redirect flow: /ui/sign-in → the
  development provider's page → the button whose label contains `user_button_label` → back to /ui/.
- `assert_accessible(page)` injects the vendored axe-core (tests/ui/vendor/axe.min.js) and fails on any
  serious or critical violation.
- `assert_clean_console(page)` fails on any console error (a failed script, a CSP violation).
- `save_screenshot(page, name, directory)` writes `<name>.png`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
WIDTH, HEIGHT = 1280, 800
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-extensions",
    f"--window-size={WIDTH},{HEIGHT}",
)


class HasBaseUrl(Protocol):
    base_url: str


def chromium_paths() -> tuple[str, str]:
    """The system Chromium and its driver (CHROMIUM / CHROMEDRIVER override)."""
    browser = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    driver = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"
    return browser, driver


class Browser:
    """One headless Chromium window (a fresh profile: no cookies) with the hub's base URL."""

    def __init__(self, base_url: str) -> None:
        browser, driver = chromium_paths()
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
        self.driver = webdriver.Chrome(options=options, service=Service(executable_path=driver))
        self.driver.set_page_load_timeout(30)
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False},
        )
        self.base_url = base_url
        self.requested: list[str] = []

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    @property
    def path(self) -> str:
        return str(self.driver.current_url).removeprefix(self.base_url).split("?")[0]

    @property
    def text(self) -> str:
        return str(self.driver.find_element(By.TAG_NAME, "body").text)

    def find(self, css: str) -> Any:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list[Any]:
        return list(self.driver.find_elements(By.CSS_SELECTOR, css))

    def click_button(self, label: str) -> None:
        buttons = [b for b in self.driver.find_elements(By.TAG_NAME, "button") if label in b.text]
        assert buttons, f"no button labelled {label!r} on {self.path}"
        buttons[0].click()

    def wait_for_path(self, predicate: Any, timeout: float = 15) -> None:
        WebDriverWait(self.driver, timeout).until(lambda _: predicate(self.path))

    def wait_for(self, css: str, timeout: float = 15) -> Any:
        """The first element matching `css` once the page shows one: for a form that posts and comes back to the
        same path, where waiting for the path would return before the answer has loaded."""
        return WebDriverWait(self.driver, timeout).until(lambda _: (self.find_all(css) or [None])[0])

    def urls_requested(self) -> list[str]:
        """Every URL the browser has requested so far (navigations, redirects, assets)."""
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                self.requested.append(message["params"]["request"]["url"])
        return list(self.requested)

    def cookies(self) -> list[dict[str, Any]]:
        return list(self.driver.get_cookies())

    def close(self) -> None:
        self.driver.quit()


@contextmanager
def browser_for(hub: HasBaseUrl) -> Iterator[Browser]:
    page = Browser(hub.base_url)
    try:
        yield page
    finally:
        page.close()


def sign_in(page: Browser, hub: HasBaseUrl, user_button_label: str) -> None:
    """Sign in through the real redirect flow as the development user whose button label contains
    `user_button_label` (e.g. "governance", "trust:RM1", "Jo Whitfield"); ends on the worklist."""
    assert page.base_url == hub.base_url
    page.open("/ui/sign-in")
    page.wait_for_path(lambda path: path.startswith("/dev-idp/authorize"))
    page.click_button(user_button_label)
    page.wait_for_path(lambda path: path == "/ui/")


def assert_accessible(page: Browser) -> None:
    """axe-core finds no serious or critical violation on the current page."""
    page.driver.execute_script(AXE.read_text(encoding="utf-8"))
    violations = page.driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations), e => done([String(e)]));"
    )
    serious = [v for v in violations if not isinstance(v, dict) or v.get("impact") in ("serious", "critical")]
    assert not serious, json.dumps(
        [
            {"id": v.get("id"), "impact": v.get("impact"), "nodes": [n.get("html") for n in v.get("nodes", [])][:3]}
            if isinstance(v, dict)
            else v
            for v in serious
        ],
        indent=1,
    )


def assert_clean_console(page: Browser) -> None:
    """No error in the browser console since the last call: no script failed, no CSP violation was reported."""
    errors = [
        e
        for e in page.driver.get_log("browser")
        if e.get("level") == "SEVERE" and "the server responded with a status of" not in e.get("message", "")
    ]  # an intended 403 or 404 page is not a console error
    assert not errors, errors


def save_screenshot(page: Browser, name: str, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    assert page.driver.save_screenshot(str(path)), f"could not write {path}"
    return path
