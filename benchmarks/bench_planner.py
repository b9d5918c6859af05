"""Cold load of the planner page (docs/planner.html) in headless Chromium, and its data's size.

Targets: numbers shown under 1 s after the navigation starts; the page and its data under
2 MB in all. Each trial starts a fresh Chromium with an empty profile (nothing cached) and opens
the page from a local HTTP server on 127.0.0.1 with the JSON of ``bayes-steplaw export-web``
(the shipped loss posterior, or ``--posterior FILE``); the page records ``performance.now()``
(ms since the navigation started) when the data are parsed and decoded, when it first shows
numbers and when its map follows (the 48 x 48 map of the expected loss is drawn in a task of
its own), and how long each part of its update took. Also printed: the wall time from the
navigation command to the drawn map as the driver sees it, and the data's size beside two
baselines for the same draws: decimal JSON numbers rounded to 7 significant digits (the format
before 0.3) and Python's shortest round-trip repr.

Run: ``python benchmarks/bench_planner.py [--posterior FILE] [--draws N]`` (needs Debian's
``chromium``)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_planner import CHROMIUM, DOCS, PAGE_FILES, Chromium, serve, site

TRIALS = 5
TARGET_MS = 1000.0
TARGET_BYTES = 2_000_000


def decimal_sizes(data: dict) -> tuple[int, int]:
    """Bytes of the same file with its draws as JSON numbers: 7 significant digits, and
    Python's shortest repr (exact)."""
    from bayes_steplaw.web import decode_draws

    arrays = decode_draws(data)
    sizes = []
    for fmt in (lambda v: float(f"{v:.7g}"), float):
        as_numbers = {k: [fmt(v) for v in a.tolist()] for k, a in arrays.items()}
        text = json.dumps({**data, "draws": as_numbers}, separators=(",", ":"))
        sizes.append(len(text.encode()))
    return sizes[0], sizes[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posterior", help="a loss posterior file (default: the shipped one)")
    parser.add_argument("--draws", type=int, default=None, help="draws exported")
    args = parser.parse_args()
    if CHROMIUM is None:
        sys.exit("chromium is not installed (apt-get install -y chromium)")
    from bayes_steplaw.web import DEFAULT_DRAWS, export_web

    draws = args.draws or DEFAULT_DRAWS
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        data = export_web(folder / "planner.json", args.posterior, n_draws=draws)
        export_s = time.perf_counter() - start
        content = json.loads(data.read_text())
        site(folder / "site", data)
        page_bytes = sum((DOCS / name).stat().st_size for name in PAGE_FILES)
        data_bytes = data.stat().st_size
        rounded, exact = decimal_sizes(content)
        total = page_bytes + data_bytes
        print(
            f"page {page_bytes / 1e3:.1f} kB + data {data_bytes / 1e6:.2f} MB = "
            f"{total / 1e6:.2f} MB (target < {TARGET_BYTES / 1e6:.0f} MB): "
            f"{content['n_draws']} draws, {len(content['draws'])} distinct arrays, "
            f"{len(content['groups'])} groups; export-web {export_s:.1f} s"
        )
        print(
            f"  the same draws as decimal JSON: {rounded / 1e6:.2f} MB at 7 significant digits "
            f"(rounded), {exact / 1e6:.2f} MB exact (shortest repr); float64 base64 "
            f"{data_bytes / 1e6:.2f} MB exact"
        )
        shown, mapped, loaded, wall, update, launch = [], [], [], [], [], []
        with serve(folder / "site") as url:
            for _ in range(TRIALS):
                t0 = time.perf_counter()
                browser = Chromium()
                launch.append(time.perf_counter() - t0)
                try:
                    t1 = time.perf_counter()
                    state = browser.open(
                        f"{url}/planner.html?N=7e9&D=1.4e12&group=dense&lr=3e-4&batch=4M"
                    )
                    wall.append((time.perf_counter() - t1) * 1e3)
                    if state != "ready":
                        sys.exit(f"the page did not render its numbers (state {state!r})")
                    timing = browser.evaluate("window.plannerTiming")
                    shown.append(timing["numbersShown"])
                    mapped.append(timing["mapShown"])
                    loaded.append(timing["drawsReady"])
                    update.append(sum(timing["lastUpdate"].values()))
                finally:
                    browser.close()
    print(
        f"cold load, {TRIALS} fresh browsers: numbers shown {statistics.median(shown):.0f} ms "
        f"median, {max(shown):.0f} ms worst (target < {TARGET_MS:.0f} ms), the map "
        f"{statistics.median(mapped):.0f} ms; data parsed and decoded "
        f"{statistics.median(loaded):.0f} ms; first update (optimum and L*, decisions, map) "
        f"{statistics.median(update):.0f} ms; driver's wall to the map "
        f"{statistics.median(wall):.0f} ms; browser start {statistics.median(launch):.2f} s"
    )
    if max(mapped) >= TARGET_MS:
        print("THE MAP CAME LATER THAN THE TARGET")
    if max(shown) >= TARGET_MS:
        print("SLOWER THAN THE TARGET")
    if total >= TARGET_BYTES:
        print("LARGER THAN THE TARGET")


if __name__ == "__main__":
    main()
