"""The post-incident report's timeline as a person sees it: a real incident (the Temporal dev server, the demo
account in moto) run to its end, its stored HTML report read back from the evidence bucket and opened in Debian's
headless Chromium (tests/ui/support.py). The browser must have laid the SVG out: one bar per
phase the incident went through, each with a size and painted where it is (the topmost element at its centre),
in the order of the phases, under the page's own Content-Security-Policy, which it must not have had to enforce
(no request beyond the page, no violation). The page, a screenshot of it and one of the picture go to
`test-output/report/`.
"""

from __future__ import annotations

import json

from playwright.async_api import expect

from irflow.models.incident import Phase, Status
from tests.support import REPO, open_incident, read_evidence, running_worker, wait_for
from tests.ui.support import chromium_page, require_chromium

SHOTS = REPO / "test-output" / "report"

# What is painted at a point, as the browser's hit testing finds it (run through the DevTools protocol, not by
# the page: the page itself runs no script).
TOPMOST = "([x, y]) => { const e = document.elementFromPoint(x, y); return e && e.getAttribute('data-phase'); }"


async def _finished_report(client, workload) -> tuple[str, dict]:
    """An incident contained, approved, eradicated and reported: its stored report.html and report.json."""
    async with running_worker(client) as settings:
        _, handle = await open_incident(client, settings, workload)
        await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION and s.phase == Phase.DECISION, 60)
        await handle.signal("approve", {"by": "alice", "comment": "confirmed <C2> beaconing", "eradication": "stop"})
        final = await handle.result()
    assert final.status == Status.RESOLVED
    stored = {e.key.rsplit("/", 1)[1]: e for e in final.evidence if e.kind == "report"}
    page = read_evidence(stored["report.html"]).decode()
    return page, json.loads(read_evidence(stored["report.json"]))


async def test_the_stored_report_timeline_renders_one_bar_per_phase_in_chromium(dev_env, workload):
    require_chromium()
    page_html, report = await _finished_report(dev_env.client, workload)
    phases = list(dict.fromkeys(t["phase"] for t in report["timeline"]))  # in the order they were entered
    assert phases == [Phase.DETECTION, Phase.CONTAINMENT, Phase.EVIDENCE, Phase.DECISION, Phase.ERADICATION] + [
        Phase.REPORT
    ], "an approved incident walks every phase up to the report"
    SHOTS.mkdir(parents=True, exist_ok=True)
    saved = SHOTS / "report.html"
    saved.write_text(page_html)

    requests: list[str] = []
    console: list[str] = []
    async with chromium_page(SHOTS, (1400, 900), requests=requests, console=console) as page:
        await page.goto(saved.as_uri())
        svg = page.locator("#timeline svg")
        await expect(svg).to_be_visible()
        await svg.scroll_into_view_if_needed()
        await page.screenshot(path=SHOTS / "report-page.png", full_page=True)
        await svg.screenshot(path=SHOTS / "report-timeline.png")

        frame = await svg.bounding_box()
        assert frame and frame["width"] >= 600 and frame["height"] >= 150, frame
        bars = page.locator("#timeline svg rect.phase")
        await expect(bars).to_have_count(len(phases))
        lefts = []
        for index, phase in enumerate(phases):
            bar = bars.nth(index)
            assert await bar.get_attribute("data-phase") == phase
            box = await bar.bounding_box()
            assert box and box["width"] >= 3 and box["height"] >= 10, (phase, box)
            assert frame["x"] <= box["x"] and box["x"] + box["width"] <= frame["x"] + frame["width"] + 1
            centre = [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2]
            assert await page.evaluate(TOPMOST, centre) == phase, f"{phase} is not painted at its place"
            lefts.append(box["x"])
        assert lefts == sorted(lefts), "the phases follow one another on the time axis"
        assert len({round(x) for x in lefts}) >= 3, "the bars stand at different moments"
        approval = page.locator("#timeline svg circle.decision")
        await expect(approval).to_have_count(1)
        await expect(approval.locator("title")).to_contain_text("confirmed <C2> beaconing")
        await expect(page.locator("#timeline svg text.tick").first).to_be_visible()
    assert requests == [saved.as_uri()], "the page fetched nothing but itself"
    assert not [m for m in console if "Content Security Policy" in m], console
