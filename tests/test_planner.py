"""The planner page (docs/planner.html) in a real browser, against the Python API.

The page is served over real HTTP from 127.0.0.1 with the JSON that ``bayes-steplaw
export-web`` writes, and driven in Debian's headless Chromium through the DevTools protocol
over a pipe (``--remote-debugging-pipe``: no websocket library, no port to find). The values
are read from the rendered DOM (``data-value`` of each number, and its text) and compared with
``predict``, ``plateau_probability``, ``plateau_region`` and ``recommend`` on the same thinned
posteriors (``Posterior.subsample``). A screenshot of the page is kept as an artefact.

The browser tests skip, saying why, when no ``chromium`` is installed (``.ci/run`` installs
it); they load the shipped posteriors and start a browser, so they are marked slow.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import http.server
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import typer

import bayes_steplaw as bsl
from bayes_steplaw import BootstrapOLS
from bayes_steplaw.cli import parse_quantity

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGE_FILES = (
    "planner.html",
    "_static/planner_core.js",
    "_static/planner_map.js",
    "_static/planner.js",
    "_static/planner.css",
)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOT = ROOT / "docs" / "_build" / "planner-screenshot.png"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--mute-audio",
    "--hide-scrollbars",
)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="the planner page is tested in a real browser: Debian's chromium is not installed "
    "(apt-get install -y chromium; .ci/run does this)",
)
# the page's numbers against Python's, on the same draws (the tolerances)
REL_TOL = 0.005
PROB_TOL = 0.01


# --------------------------------------------------------------------------- the browser


class DevToolsError(RuntimeError):
    """Chromium answered a DevTools command with an error, or stopped answering."""


class Chromium:
    """Headless Chromium driven through the DevTools protocol on a pipe (fds 3 and 4).

    Messages are JSON texts ended by a NUL byte; one page target is attached in flat mode,
    so page commands carry its ``sessionId``.
    """

    def __init__(self, executable: str = CHROMIUM or "chromium", timeout: float = 30.0):
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="planner-chromium-")
        to_child, self._to_child = os.pipe()  # we write, chromium reads fd 3
        self._from_child, from_child = os.pipe()  # chromium writes fd 4, we read
        # copy both ends above the low fds first: dup2 onto 3 and 4 must not clobber either
        high_in = fcntl.fcntl(to_child, fcntl.F_DUPFD, 10)
        high_out = fcntl.fcntl(from_child, fcntl.F_DUPFD, 10)

        def into_3_and_4() -> None:
            os.dup2(high_in, 3)
            os.dup2(high_out, 4)

        self.proc = subprocess.Popen(
            [executable, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}",
             "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            close_fds=False, preexec_fn=into_3_and_4,
        )  # fmt: skip
        for fd in (to_child, from_child, high_in, high_out):
            os.close(fd)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        self.page("Page.enable")
        self.page("Runtime.enable")

    # ------------------------------------------------------------------ protocol
    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise DevToolsError("chromium stopped answering the DevTools protocol")
            ready, _, _ = select.select([self._from_child], [], [], left)
            if ready:
                chunk = os.read(self._from_child, 1 << 20)
                if not chunk:
                    raise DevToolsError("chromium closed the DevTools pipe")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, session: str | None = None, **params) -> dict:
        """Send one command and return its result (events seen meanwhile are kept)."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise DevToolsError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def page(self, method: str, **params) -> dict:
        return self.call(method, self.session, **params)

    # ------------------------------------------------------------------ helpers
    def evaluate(self, expression: str):
        """The JSON value of a JavaScript expression in the page; page errors raise."""
        result = self.page("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise DevToolsError(f"{expression[:60]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20.0, interval: float = 0.005):
        """Poll ``expression`` until it is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(interval)
        raise DevToolsError(f"timed out waiting for {expression}")

    def page_errors(self) -> list[str]:
        """Uncaught exceptions and console errors the page reported so far."""
        out = []
        for event in self.events:
            if event.get("method") == "Runtime.exceptionThrown":
                out.append(json.dumps(event["params"]["exceptionDetails"])[:500])
            elif event.get("method") == "Runtime.consoleAPICalled" and event["params"].get(
                "type"
            ) in ("error", "assert"):
                out.append(json.dumps(event["params"]["args"])[:500])
        return out

    def open(self, url: str, timeout: float = 20.0) -> str:
        """Navigate and wait until the page has rendered (or refused) its inputs."""
        self.page("Page.navigate", url=url)
        self.wait_for(
            "document.readyState === 'complete' && "
            "['ready', 'invalid', 'failed'].includes(document.body.dataset.state)",
            timeout,
        )
        return self.evaluate("document.body.dataset.state")

    def screenshot(self, path: Path, width: int = 1280) -> Path:
        """A PNG of the whole page at ``width`` CSS pixels."""
        import base64

        metrics = {"width": width, "deviceScaleFactor": 1, "mobile": False}
        self.page("Emulation.setDeviceMetricsOverride", height=800, **metrics)
        # the height of the page laid out at this width, then the whole of it
        height = int(self.evaluate("Math.ceil(document.documentElement.scrollHeight)"))
        self.page("Emulation.setDeviceMetricsOverride", height=height, **metrics)
        shot = self.page("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call("Browser.close")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_child, self._from_child):
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(self.profile, ignore_errors=True)


@contextlib.contextmanager
def serve(folder: Path):
    """A static HTTP server on 127.0.0.1 for ``folder``; yields its base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # no request log on stderr
            pass

    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address) -> None:
            # a browser closed while a response was on its way: not the page's fault
            if not isinstance(sys.exc_info()[1], ConnectionError):
                super().handle_error(request, client_address)

    handler = functools.partial(Quiet, directory=str(folder))
    server = Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def site(folder: Path, data: Path | None = None) -> Path:
    """Copy the page's files into ``folder`` (the layout of the built docs) with its data."""
    for name in PAGE_FILES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DOCS / name, folder / name)
    if data is not None:
        shutil.copyfile(data, folder / "_static" / "planner.json")
    return folder


# --------------------------------------------------------------------------- reading the page

READ_NUMBERS = """
(() => {
  const out = {};
  for (const el of document.querySelectorAll('[data-value]')) {
    out[el.id] = {value: Number(el.dataset.value), text: el.textContent};
  }
  return out;
})()
"""


def read_page(browser: Chromium) -> dict:
    """Numbers (by element id), sentences and the heatmap, as rendered."""
    return {
        "numbers": browser.evaluate(READ_NUMBERS),
        "describe": browser.evaluate("document.getElementById('describe').textContent"),
        "notes": browser.evaluate(
            "[...document.querySelectorAll('#extrapolation:not([hidden]) p.note')]"
            ".map(p => p.textContent)"
        ),
        "errors": browser.evaluate(
            "[...document.querySelectorAll('#errors:not([hidden]) p.message')]"
            ".map(p => p.textContent)"
        ),
        "heatmap": browser.evaluate("window.planner.last && window.planner.last.heatmap"),
        "results_hidden": browser.evaluate("document.getElementById('results').hidden"),
        "plateau_hidden": browser.evaluate("document.getElementById('plateau').hidden"),
        "visible_text": browser.evaluate(
            "document.getElementById('results').innerText + "
            "document.getElementById('plateau').innerText"
        ),
        "plateau_caption": browser.evaluate(
            "document.getElementById('plateau-caption').textContent"
        ),
        "contours": browser.evaluate(
            "[...document.querySelectorAll('#heatmap path.contour')].map(p => p.classList[1])"
        ),
    }


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The planner data of the shipped posteriors and the thinned posteriors it holds."""
    from bayes_steplaw.web import export_web, planner_posteriors

    folder = tmp_path_factory.mktemp("planner-data")
    opt, land = planner_posteriors()
    path = export_web(folder / "planner.json", opt, land)
    # export_web thins again: a posterior already at n_draws is returned as it is
    return {"path": path, "data": json.loads(path.read_text()), "optimum": opt, "landscape": land}


@pytest.fixture(scope="module")
def browser():
    chromium = Chromium()
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def base_url(exported, tmp_path_factory):
    folder = site(tmp_path_factory.mktemp("planner-site"), exported["path"])
    with serve(folder) as url:
        yield url


@pytest.fixture(scope="module")
def paper():
    return BootstrapOLS.from_published()


# --------------------------------------------------------------------------- fast checks


def test_page_files_reference_each_other_and_use_the_plots_palette():
    from bayes_steplaw.plots import OKABE_ITO, ROLE_COLORS

    html = (DOCS / "planner.html").read_text()
    assert 'src="_static/planner.js"' in html and 'href="_static/planner.css"' in html
    css = (DOCS / "_static" / "planner.css").read_text().lower()
    for role in ("posterior", "paper", "recommend", "observed"):
        assert f"--role-{role}: {ROLE_COLORS[role]};".lower() in css
    assert f"--role-plateau: {OKABE_ITO['orange']};".lower() in css
    js = ""
    for name in PAGE_FILES[1:-1]:  # the scripts, in the order the page loads them
        assert f'<script defer src="{name}"></script>' in html
        js += (DOCS / name).read_text()
    assert (
        html.index("planner_core.js")
        < html.index("planner_map.js")
        < html.index('"_static/planner.js"')
    )
    # the kinds and their descriptions come from the JSON, never from the page
    assert "centre" not in js and "setting-level scatter" not in js
    size = sum((DOCS / name).stat().st_size for name in PAGE_FILES)
    assert size < 100_000, f"the page's own files are {size} bytes"


def test_page_parses_quantities_with_the_cli_grammar():
    """The page's pattern, suffixes and examples are the CLI's (parse_quantity)."""
    from bayes_steplaw.cli import _common

    js = (DOCS / "_static" / "planner_core.js").read_text()
    pattern = re.search(r"const QUANTITY = /(.+)/i;", js).group(1)
    assert pattern == _common._QUANTITY.pattern and _common._QUANTITY.flags & re.I
    suffixes = re.search(r"const SUFFIX = \{(.+)\};", js).group(1)
    found = dict(re.findall(r'"?(\w*)"?: ([0-9.e]+)', suffixes))
    assert {k: float(v) for k, v in found.items()} == _common._SUFFIX
    examples = re.search(r"const EXAMPLES = \{(.+)\};", js).group(1)
    found = dict(re.findall(r'(\w+): "([^"]+)"', examples))
    cli_names = {"N": "N", "D": "D", "lr": "--lr", "batch": "--batch-tokens"}
    assert found == {page: _common.EXAMPLES[cli] for page, cli in cli_names.items()}


# --------------------------------------------------------------------------- the export


@pytest.mark.slow
def test_export_holds_what_the_python_predictive_uses(exported):
    """Rebuilding law coefficients and bowls from the JSON gives Python's, at any (N, D)."""
    data, opt, land = exported["data"], exported["optimum"], exported["landscape"]
    draws = {k: np.asarray(v) for k, v in data["draws"].items()}
    assert data["n_draws"] == {"optimum": 2000, "landscape": 2000}
    names = [g["name"] for g in data["groups"]]
    assert names == [*opt.groups_seen, "new"]
    assert {k["name"] for k in data["kinds"]} >= {"centre", "law"}
    for group in ("dense", "moe/1in8", "new"):
        for kind in [k["name"] for k in data["kinds"]]:
            coef_lr, coef_bs = opt.law_coefficients(group, kind, 0)
            refs = data["optimum"]["coefficients"][group][kind]
            for coef, law in ((coef_lr, "lr"), (coef_bs, "bs")):
                got = np.stack([draws[r] for r in refs[law]])
                np.testing.assert_allclose(got, coef, rtol=1e-6, atol=1e-12)
        refs = data["landscape"]["bowls"][group]
        for N, D in ((3e8, 5e9), (7e9, 1.4e12)):
            g = land.bowl(N, D, group, 0)
            x = np.log(N) - data["landscape"]["log_n0"]
            y = np.log(D) - data["landscape"]["log_d0"]

            def linear(names, x=x, y=y):
                a, b, c = (draws[r] for r in names)
                return a + b * x + c * y

            a, b = np.exp(linear(refs["log_a"])), np.exp(linear(refs["log_b"]))
            k, rho = draws[refs["k"]], draws[refs["rho"]]
            np.testing.assert_allclose(linear(refs["lr"]), g["m_lr"], rtol=1e-6)
            np.testing.assert_allclose(linear(refs["bs"]), g["m_bs"], rtol=1e-6)
            np.testing.assert_allclose(a, g["a"], rtol=1e-5)
            np.testing.assert_allclose(b, g["b"], rtol=1e-5)
            np.testing.assert_allclose(rho * np.sqrt(a * b * np.minimum(1, k)), g["h"], rtol=1e-5)


@pytest.mark.slow
def test_export_is_small_deterministic_and_defaults_to_the_cli_kind(exported, tmp_path):
    import inspect

    from typer.testing import CliRunner

    from bayes_steplaw.api import DEFAULT_KIND
    from bayes_steplaw.bayes.law import KINDS
    from bayes_steplaw.cli import app
    from bayes_steplaw.cli.predict import predict as predict_command

    path = exported["path"]
    page = sum((DOCS / name).stat().st_size for name in PAGE_FILES)
    assert path.stat().st_size + page < 2_000_000
    # the CLI's predict uses bayes_steplaw.api.DEFAULT_KIND unless --kind is given
    assert inspect.signature(predict_command).parameters["kind"].default in (None, DEFAULT_KIND)
    assert exported["data"]["defaults"]["kind"] == (DEFAULT_KIND or bsl.load_default().default_kind)
    assert [k["name"] for k in exported["data"]["kinds"]] == [
        k for k in KINDS if k not in {u["name"] for u in exported["data"]["kinds_unavailable"]}
    ]
    out = tmp_path / "again.json"
    result = CliRunner().invoke(app, ["export-web", str(out)])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "2000 draws per model" in result.output
    assert out.read_bytes() == path.read_bytes()  # same seed, same draws, same bytes
    bad = CliRunner().invoke(app, ["export-web", str(tmp_path / "x.json"), "--draws", "3"])
    assert bad.exit_code == 2 and "--draws must be between 10 and 5000" in bad.output


# --------------------------------------------------------------------------- the page

CASES = [
    # the link, the CLI's defaults: outside the data in N and D (extrapolation notes)
    "N=7e9&D=1.4e12&group=dense",
    # suffixes, another group, interval mass and tolerance in percent, a setting of one's own
    "N=1B&D=20B&group=moe/1in8&prob=80%25&seq_len=4096&tol=0.5%25&lr=2e-3&batch=1M",
    # a never-seen architecture, the law's own interval, inside the data
    "N=350M&D=1e11&group=new&kind=law&prob=0.95&tol=0.0025&lr=3e-3&batch=600K",
]


def _inputs(query: str, data: dict) -> dict:
    from urllib.parse import parse_qs

    given = {k: v[0] for k, v in parse_qs(query).items()}
    d = data["defaults"]
    frac = lambda s: float(s[:-1]) / 100 if s.endswith("%") else float(s)  # noqa: E731
    out = {
        "N": parse_quantity(given.get("N", d["N"]), "N"),
        "D": parse_quantity(given.get("D", d["D"]), "D"),
        "group": given.get("group", d["group"]),
        "kind": given.get("kind", d["kind"]),
        "prob": frac(given.get("prob", str(d["prob"]))),
        "tol": frac(given.get("tol", str(d["tol"]))),
        "seq_len": int(given.get("seq_len", d["seq_len"])),
    }
    if "lr" in given:
        out["lr"] = parse_quantity(given["lr"], "lr")
        out["batch"] = parse_quantity(given["batch"], "batch")
    return out


def _expected_notes(v: dict) -> list[str]:
    """The CLI's extrapolation lines for the same N and D."""
    from typer.testing import CliRunner

    from bayes_steplaw.cli import app

    result = CliRunner().invoke(app, ["predict", repr(v["N"]), repr(v["D"])])
    assert result.exit_code == 0, result.output
    return [line.strip() for line in result.output.splitlines() if "note:" in line]


@needs_chromium
@pytest.mark.slow
@pytest.mark.parametrize("query", CASES)
def test_page_numbers_equal_the_python_api_on_the_same_draws(
    browser, base_url, exported, paper, query, agreement
):
    opt, land, data = exported["optimum"], exported["landscape"], exported["data"]
    state = browser.open(f"{base_url}/planner.html?{query}")
    assert state == "ready", read_page(browser)["errors"]
    page = read_page(browser)
    nums = page["numbers"]
    v = _inputs(query, data)

    # predict: medians and HDI bounds, as Prediction.interval gives them by default
    pred = opt.predict(v["N"], v["D"], group=v["group"], kind=v["kind"], seq_len=v["seq_len"])
    row = pred.to_dataframe(prob=v["prob"]).iloc[0]
    for name in ("lr", "batch_tokens", "batch_sequences"):
        for suffix in ("", "_lower", "_upper"):
            shown = nums[f"out-{name}{suffix}"]
            agreement["predict"].append(rel(shown["value"], row[name + suffix]))
            assert rel(shown["value"], row[name + suffix]) < REL_TOL, (name, suffix)
            fmt = ".3e" if name == "lr" else ".4g"  # the CLI's formats
            assert shown["text"] == format(shown["value"], fmt)
    assert page["describe"] == f"({pred.describe(v['prob'])})"
    assert page["notes"] == _expected_notes(v)

    # the paper's point: `predict --method paper`
    point = paper.predict(v["N"], v["D"], seq_len=v["seq_len"], prob=v["prob"]).iloc[0]
    for name in ("lr", "batch_tokens", "batch_sequences"):
        assert rel(nums[f"paper-{name}"]["value"], point[name]) < 1e-9

    # plateau probabilities: the whole map, the paper's point, the user's point
    heat = page["heatmap"]
    region = land.plateau_region(
        v["N"], v["D"], tol=v["tol"], group=v["group"],
        lr=heat["lr"], batch_tokens=heat["batch_tokens"],
    )  # fmt: skip
    default_grid = land.plateau_region(v["N"], v["D"], tol=v["tol"], group=v["group"], n_grid=121)
    # plateau_region's default grid; its centre moves by the draws' rounding only (7
    # significant digits of a ln-batch intercept near 14: up to 5e-6 in ln units)
    np.testing.assert_allclose(heat["lr"], default_grid.lr, rtol=2e-5)
    np.testing.assert_allclose(heat["batch_tokens"], default_grid.batch_tokens, rtol=2e-5)
    diff = np.abs(np.asarray(heat["probability"]) - region.probability)
    agreement["map"].append(float(diff.max()))
    assert diff.max() <= PROB_TOL
    top = region.probability.max()
    assert set(page["contours"]) == {f"contour-{lv}" for lv in (0.5, 0.9) if top >= lv}
    assert ("No setting on the map reaches P = 0.9" in page["plateau_caption"]) == (top < 0.9)
    p_paper = land.plateau_probability(
        v["N"], v["D"], point["lr"], point["batch_tokens"], tol=v["tol"], group=v["group"]
    )
    agreement["probability"].append(abs(nums["paper-prob"]["value"] - p_paper))
    assert abs(nums["paper-prob"]["value"] - p_paper) <= PROB_TOL
    if "lr" in v:
        p_mine = land.plateau_probability(
            v["N"], v["D"], v["lr"], v["batch"], tol=v["tol"], group=v["group"]
        )
        agreement["probability"].append(abs(nums["mine-prob"]["value"] - p_mine))
        assert abs(nums["mine-prob"]["value"] - p_mine) <= PROB_TOL
        assert nums["mine-prob"]["text"] == f"{nums['mine-prob']['value']:.3f}"
    else:
        assert "mine-prob" not in nums

    # the recommendation: recommend()
    rec = land.recommend(v["N"], v["D"], group=v["group"], tol=v["tol"], seq_len=v["seq_len"])
    for name in ("lr", "batch_tokens", "batch_sequences"):
        agreement["recommend"].append(rel(nums[f"rec-{name}"]["value"], getattr(rec, name)))
        assert rel(nums[f"rec-{name}"]["value"], getattr(rec, name)) < REL_TOL
    assert rel(nums["rec-loss"]["value"], rec.expected_relative_loss) < REL_TOL
    # the page minimises E[q] to convergence (Newton): its choice is no worse than scipy's
    page_risk = land.expected_relative_loss(
        v["N"], v["D"], nums["rec-lr"]["value"], nums["rec-batch_tokens"]["value"],
        group=v["group"],
    )  # fmt: skip
    assert page_risk <= rec.expected_relative_loss * (1 + 1e-6)
    assert abs(nums["rec-prob"]["value"] - rec.plateau_probability) <= PROB_TOL
    assert nums["rec-loss"]["text"] == f"{nums['rec-loss']['value']:.3%}"
    assert browser.page_errors() == []


@pytest.fixture(scope="module")
def agreement():
    """Worst differences seen across the cases, printed at the end of the module."""
    found: dict[str, list[float]] = {"predict": [], "map": [], "probability": [], "recommend": []}
    yield found
    if any(found.values()):
        print(
            "\nplanner vs Python on the same draws: "
            f"medians/bounds max rel diff {max(found['predict'], default=0):.2e}; "
            f"plateau map max abs diff {max(found['map'], default=0):.4f}; "
            f"point probabilities max abs diff {max(found['probability'], default=0):.4f}; "
            f"recommendation max rel diff {max(found['recommend'], default=0):.2e}"
        )


def _cli_message(text: str, name: str) -> str:
    with pytest.raises(typer.BadParameter) as info:
        parse_quantity(text, name)
    return str(info.value)


@needs_chromium
@pytest.mark.slow
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("N=-7e9&D=1.4e12", [("N", "-7e9")]),
        ("N=abc&D=1.4e12", [("N", "abc")]),
        ("N=7e9&D=0", [("D", "0")]),
        ("N=1e400&D=1T", [("N", "1e400")]),
        (
            "N=abc&D=-1&prob=1.5&tol=0&seq_len=0&group=xyz&kind=best",
            [("N", "abc"), ("D", "-1")],
        ),
    ],
)
def test_bad_input_shows_a_clear_message_and_no_numbers(
    browser, base_url, exported, query, expected
):
    data = exported["data"]
    assert browser.open(f"{base_url}/planner.html?{query}") == "invalid"
    page = read_page(browser)
    messages = [_cli_message(text, name) for name, text in expected]
    assert page["errors"][: len(messages)] == messages  # the CLI's own words
    if "prob=1.5" in query:
        rest = " | ".join(page["errors"][len(messages) :])
        for words in (
            "sequence length (seq_len) must be a positive integer; got '0'",
            "group must be one of ['dense', 'moe', 'moe/1in8', 'moe/1in89', 'moe/2in88', "
            "'moe/3in8', 'new']; got 'xyz'",
            f"kind must be one of {[k['name'] for k in data['kinds']]}; got 'best'",
            "interval mass (prob) must be between 0 and 1 (exclusive), such as 0.9 or 90%; "
            "got '1.5'",
            "loss tolerance (tol) must be a positive relative loss below 1",
        ):
            assert words in rest
    assert page["numbers"] == {}
    assert page["results_hidden"] and page["plateau_hidden"]
    assert not re.search(r"\d", page["visible_text"])
    assert page["heatmap"] is None
    assert browser.page_errors() == []


@needs_chromium
@pytest.mark.slow
def test_a_bad_setting_of_ones_own_names_itself_and_keeps_the_plan(browser, base_url):
    from bayes_steplaw.cli._common import EXAMPLES

    assert browser.open(f"{base_url}/planner.html?N=7e9&D=1.4e12&lr=abc&batch=-4M") == "ready"
    shown = browser.evaluate("document.getElementById('mine-error').textContent")
    lr = _cli_message_with("abc", "lr", EXAMPLES["--lr"])
    batch = _cli_message_with("-4M", "batch", EXAMPLES["--batch-tokens"])
    assert shown == f"{lr}; {batch}"
    nums = read_page(browser)["numbers"]
    assert "mine-prob" not in nums and "out-lr" in nums and "rec-prob" in nums


def _cli_message_with(text: str, name: str, example: str) -> str:
    with pytest.raises(typer.BadParameter) as info:
        parse_quantity(text, name, example)
    return str(info.value)


@needs_chromium
@pytest.mark.slow
def test_typing_updates_the_numbers_and_the_link(browser, base_url, exported):
    """Real key input: outputs follow the inputs, and the URL carries them as a plan."""
    opt, land = exported["optimum"], exported["landscape"]
    assert browser.open(f"{base_url}/planner.html") == "ready"
    before = browser.evaluate("window.planner.renders")

    def type_into(field: str, text: str) -> None:
        browser.evaluate(f"document.getElementById('{field}').select()")
        browser.page("Input.insertText", text=text)

    type_into("N", "1.3B")
    type_into("D", "26B")
    type_into("lr", "1e-3")
    type_into("batch", "2M")
    browser.wait_for(f"window.planner.renders > {before} && document.body.dataset.state")
    browser.wait_for(
        "window.planner.last.inputs && window.planner.last.inputs.N === 1.3e9 && "
        "window.planner.last.inputs.D === 26e9 && window.planner.last.mine_probability !== null"
    )
    nums = read_page(browser)["numbers"]
    med = opt.predict(1.3e9, 26e9).median().iloc[0]
    assert rel(nums["out-lr"]["value"], med["lr"]) < REL_TOL
    p = land.plateau_probability(1.3e9, 26e9, 1e-3, 2e6)
    assert abs(nums["mine-prob"]["value"] - p) <= PROB_TOL
    search = browser.evaluate("location.search")
    assert "N=1.3B" in search and "D=26B" in search and "lr=1e-3" in search
    # the link reopens the same plan
    link = browser.evaluate("document.getElementById('share').href")
    assert browser.open(link) == "ready"
    assert read_page(browser)["numbers"]["out-lr"] == nums["out-lr"]
    # a bad value typed later takes every number away, a good one brings them back
    type_into("D", "0")
    browser.wait_for("document.body.dataset.state === 'invalid'")
    assert read_page(browser)["numbers"] == {}
    type_into("D", "26B")
    browser.wait_for("document.body.dataset.state === 'ready'")
    assert browser.page_errors() == []


@needs_chromium
@pytest.mark.slow
def test_screenshot_is_kept_as_an_artefact(browser, base_url):
    assert browser.open(f"{base_url}/planner.html?N=7e9&D=1.4e12&group=dense&lr=3e-4&batch=4M")
    path = browser.screenshot(SCREENSHOT)
    head = path.read_bytes()[:8]
    assert head == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000
    print(f"\nplanner screenshot: {path}")


@needs_chromium
@pytest.mark.slow
def test_page_without_its_data_says_so(browser, tmp_path):
    with serve(site(tmp_path)) as url:
        assert browser.open(f"{url}/planner.html") == "failed"
        text = browser.evaluate("document.getElementById('errors').innerText")
    assert "_static/planner.json" in text and "could not be loaded" in text
