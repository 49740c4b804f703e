"""The list of staff pages `make screenshots` captures into docs/screenshots/: at 1366x800 as `<name>.png` and
at 375x800 (a phone) as `<name>-375px.png`.

To add a page, append a `ScreenshotPage` to `SCREENSHOT_PAGES`: its file name, the development user to sign
in as (a label on the development provider's buttons, e.g. "governance"; None to stay signed out), and its path
(a string, or a function of the `DemoHub` for paths that need an episode or message id).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tests.ui.demo_hub import DemoHub
from tests.ui.page_paths import payload_path


@dataclass(frozen=True)
class ScreenshotPage:
    name: str
    user: str | None
    path: str | Callable[[DemoHub], str]

    def path_in(self, hub: DemoHub) -> str:
        return self.path if isinstance(self.path, str) else self.path(hub)


# (width, suffix of the file name, mobile emulation: the viewport meta tag applies)
SCREENSHOT_WIDTHS = ((1366, "", False), (375, "-375px", True))

SCREENSHOT_PAGES: list[ScreenshotPage] = [
    ScreenshotPage("sign-in", None, "/ui/sign-in"),
    ScreenshotPage("worklist", "governance", "/ui/"),
    ScreenshotPage("episode", "governance", lambda hub: f"/ui/episodes/{hub.episode_of('RM1', 'closed')}"),
    ScreenshotPage(
        "episode-awaiting-smdt", "governance", lambda hub: f"/ui/episodes/{hub.episode_of('RM1', 'referred')}"
    ),
    ScreenshotPage("smdt-queue", "smdt-coordinator", "/ui/"),
    ScreenshotPage("episodes", "smdt-coordinator", "/ui/episodes"),
    ScreenshotPage("episodes-governance", "governance", "/ui/episodes?breach=any"),
    ScreenshotPage("smdt-meeting", "smdt-coordinator", "/ui/meeting"),
    ScreenshotPage("trust-worklist", "trust:RM1", "/ui/"),
    ScreenshotPage("trust-episode", "trust:RM1", lambda hub: f"/ui/episodes/{hub.episode_of('RM1', 'referred')}"),
    ScreenshotPage("forbidden", "trust:RDE", lambda hub: f"/ui/episodes/{hub.episode_of('RM1', 'closed')}"),
    ScreenshotPage("signed-out", None, "/ui/signed-out"),
    ScreenshotPage("governance", "governance", "/ui/governance"),
    ScreenshotPage("payload-reason", "governance", payload_path),
    ScreenshotPage("audit", "governance", "/ui/audit"),
    ScreenshotPage("deliveries", "ops", "/ui/deliveries"),
    ScreenshotPage("ops-home", "ops", "/ui/"),
    ScreenshotPage("governance-cwt", "governance", "/ui/governance/cwt#by-provider"),  # at its chart
    # the episode page scrolled to its Cancer Waiting Times section (a cancer pathway still awaiting the SMDT)
    ScreenshotPage(
        "episode-cwt", "smdt-coordinator", lambda hub: f"/ui/episodes/{hub.episode_of('RM1', 'referred')}#cwt"
    ),
]
