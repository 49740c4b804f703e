"""Issue 25 items 4 and 7 in real headless Chromium, through the real sign-in, on the demo's hub: the governance
charts' ticks differ and small bars show; the episode timeline has a time axis, a legend, no overlapping or cut
labels and acknowledgements folded into their messages (measured in the rendered SVG); a reason that is not
words is refused and the audit page stays as wide as the window; `/` leads a browser to the staff pages; ops
has a home; the profile pages sit in the staff layout."""

from __future__ import annotations

from typing import Any

from tests.ui.browser import Browser, assert_accessible, sign_in
from tests.ui.demo_hub import DemoHub
from tests.ui.page_paths import payload_path


def boxes(page: Browser, css: str) -> list[dict[str, float]]:
    """The rendered bounding boxes (SVG user units) of the elements matching `css`."""
    found: list[dict[str, float]] = page.driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(e => {const b = e.getBBox();"
        " return {x: b.x, y: b.y, width: b.width, height: b.height, text: e.textContent}; });",
        css,
    )
    return found


def overlaps(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


def test_governance_charts_have_distinct_ticks_and_visible_bars(page: Browser, demo: DemoHub) -> None:
    sign_in(page, demo, "governance")
    page.open("/ui/governance")
    for chart in page.find_all("svg.handover-chart__svg"):
        ticks = [t.text for t in chart.find_elements("css selector", ".handover-chart__tick")]
        assert len(ticks) >= 2 and len(set(ticks)) == len(ticks), ticks
    bars = boxes(page, "svg.handover-chart__svg rect.handover-bar")
    assert bars
    for bar in bars:  # its title ends with its figure: "2026: Resections 1", "RDE: Median seconds 0.42"
        figure = bar["text"].rsplit(" ", 1)[-1]
        above_nothing = figure.startswith("<") or float(figure.replace(",", "")) > 0
        assert bar["height"] >= 3 if above_nothing else bar["height"] == 0, bar
    assert page.find_all("svg.handover-chart__svg .handover-chart__value"), "bars carry their figures"
    assert_accessible(page)


def test_the_closed_episodes_timeline_reads_without_overlaps_and_folds_acknowledgements(
    page: Browser, demo: DemoHub
) -> None:
    sign_in(page, demo, "governance")
    page.open(f"/ui/episodes/{demo.episode_of('RM1', 'closed')}")
    labels = boxes(page, "svg#timeline-picture g.timeline-label text")
    assert len(labels) == 7, "seven messages, the acknowledgements folded into them"
    assert not [(a["text"], b["text"]) for i, a in enumerate(labels) for b in labels[i + 1 :] if overlaps(a, b)]
    svg_width = float(page.find("svg#timeline-picture").get_attribute("width"))
    names = boxes(page, "svg#timeline-picture text.lane-name")
    assert names and all(n["x"] + n["width"] < 240 and "…" not in n["text"] for n in names), "names whole"
    assert all(box["x"] >= 0 and box["x"] + box["width"] <= svg_width for box in labels)
    assert len(page.find_all("svg#timeline-picture .tick-since")) == 7
    assert page.find("svg#timeline-picture .tick-since").text == "start"
    assert "Clinically responsible" in page.find("svg#timeline-picture .timeline-legend").text
    assert "hub" not in [t.text for t in page.find_all("svg#timeline-picture g.lane text")]
    deadlines = page.find("#deadlines").text.lower() if page.find_all("#deadlines") else ""
    assert "acknowledgement" not in deadlines, "met acknowledgements are told on their messages' rows"
    assert len(page.find_all("#messages .message-acknowledged")) == 7
    assert_accessible(page)


def test_a_reason_that_is_not_words_is_refused_and_the_audit_page_fits_the_window(page: Browser, demo: DemoHub) -> None:
    sign_in(page, demo, "governance")
    page.open(payload_path(demo))
    page.find("#reason").send_keys("x" * 400)
    page.click_button("Read the message")
    assert "at least 2 words" in page.wait_for(".nhsuk-error-summary").text
    page.open("/ui/audit")
    width = page.driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], width


def test_a_browser_at_the_front_door_reaches_the_staff_pages(page: Browser, demo: DemoHub) -> None:
    page.open("/")
    page.wait_for_path(lambda path: path.startswith(("/ui/", "/dev-idp/")))
    sign_in(page, demo, "ops")
    assert page.find("h1").text == "Operations"
    assert page.find("#ops-dead-letters") and page.find("a[href='/metrics']")
    assert "worklist" not in page.text.lower()
    assert_accessible(page)
    page.open("/ui/profiles/handover-messageheader-referral")
    assert page.find("form[action='/ui/sign-out']"), "inside the staff layout, with sign-out"
    assert "`" not in page.find("main").text and page.find("main code").text
    assert_accessible(page)
