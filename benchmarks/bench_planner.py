"""Cold load of the planner page (docs/planner.html) in headless Chromium.

Target: DOM ready and numbers shown under 1 s. Each trial starts a fresh Chromium with an
empty profile (nothing cached) and opens the page from a local HTTP server on 127.0.0.1 with
the JSON of ``bayes-steplaw export-web``; the page records ``performance.now()`` (ms since the
navigation started) when it first shows numbers. Also printed: the wall time from the
navigation command to the rendered numbers as the driver sees them, DOMContentLoaded, and the
page's and its data's sizes.

Run: ``python benchmarks/bench_planner.py`` (needs Debian's ``chromium``)
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_planner import CHROMIUM, DOCS, PAGE_FILES, Chromium, serve, site

TRIALS = 5
TARGET_MS = 1000.0


def main() -> None:
    if CHROMIUM is None:
        sys.exit("chromium is not installed (apt-get install -y chromium)")
    from bayes_steplaw.web import export_web

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        data = export_web(folder / "data" / "planner.json")
        export_s = time.perf_counter() - start
        site(folder / "site", data)
        page_bytes = sum((DOCS / name).stat().st_size for name in PAGE_FILES)
        print(
            f"page {page_bytes / 1e3:.1f} kB + data {data.stat().st_size / 1e6:.2f} MB "
            f"(export-web {export_s:.1f} s)"
        )
        shown, loaded, wall, dcl, launch = [], [], [], [], []
        with serve(folder / "site") as url:
            for _ in range(TRIALS):
                t0 = time.perf_counter()
                browser = Chromium()
                launch.append(time.perf_counter() - t0)
                try:
                    t1 = time.perf_counter()
                    state = browser.open(f"{url}/planner.html?N=7e9&D=1.4e12&group=dense")
                    wall.append((time.perf_counter() - t1) * 1e3)
                    if state != "ready":
                        sys.exit(f"the page did not render its numbers (state {state!r})")
                    shown.append(browser.evaluate("window.plannerTiming.numbersShown"))
                    loaded.append(browser.evaluate("window.plannerTiming.dataLoaded"))
                    dcl.append(
                        browser.evaluate(
                            "performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd"
                        )
                    )
                finally:
                    browser.close()
    print(
        f"cold load, {TRIALS} fresh browsers: numbers shown {statistics.median(shown):.0f} ms "
        f"median, {max(shown):.0f} ms worst (target < {TARGET_MS:.0f} ms); "
        f"DOMContentLoaded {statistics.median(dcl):.0f} ms, data parsed "
        f"{statistics.median(loaded):.0f} ms; "
        f"driver's wall {statistics.median(wall):.0f} ms; "
        f"browser start {statistics.median(launch):.2f} s"
    )
    if max(shown) >= TARGET_MS:
        print("SLOWER THAN THE TARGET")


if __name__ == "__main__":
    main()
