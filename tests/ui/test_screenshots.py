"""Every staff page in `SCREENSHOT_PAGES` renders in Chromium, passes axe-core with a clean console (no script
error, no CSP violation), and is captured at each of `SCREENSHOT_WIDTHS` (1366 and 375 px):
into HANDOVER_SCREENSHOTS_DIR when set (`make screenshots` sets docs/screenshots), else a temporary directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.ui.browser import assert_accessible, assert_clean_console, browser_for, save_screenshot, sign_in
from tests.ui.demo_hub import DemoHub
from tests.ui.screenshots import SCREENSHOT_PAGES, SCREENSHOT_WIDTHS, ScreenshotPage


@pytest.mark.parametrize("shot", SCREENSHOT_PAGES, ids=[p.name for p in SCREENSHOT_PAGES])
def test_every_page_renders_accessibly_and_is_captured(shot: ScreenshotPage, demo: DemoHub, tmp_path: Path) -> None:
    directory = Path(os.environ.get("HANDOVER_SCREENSHOTS_DIR") or tmp_path)
    with browser_for(demo) as page:
        if shot.user is not None:
            sign_in(page, demo, shot.user)
        written = []
        for width, suffix, mobile in SCREENSHOT_WIDTHS:
            page.driver.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": mobile},
            )
            page.open(shot.path_in(demo))
            assert page.find("h1").text
            assert_accessible(page)
            assert_clean_console(page)
            written.append(save_screenshot(page, shot.name + suffix, directory))
    for path in written:
        assert path.stat().st_size > 10_000
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
