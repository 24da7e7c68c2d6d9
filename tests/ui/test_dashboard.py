"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

One service with API keys (tenants alpha and beta) and one browser serve the
whole module. Every page visit fails the test on a console error or an uncaught exception,
and a route on the browser context aborts (and records) any request that would leave the
service's origin, and any URL that carries the API key. Each test saves screenshots of the
pages it visits to a temporary folder (``TRAINAPI_UI_SCREENSHOTS`` names another one).
"""

from __future__ import annotations

import io
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import Service, poll, wait_for_job

from trainapi.keys import add_key

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]

if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
    pytest.skip(f"no {CHROMIUM}: apt-get install -y chromium (CI installs it)", allow_module_level=True)

MOONS = {"dataset": "moons", "training": {"epochs": 30, "test_fraction": 0.2}}
HOSTILE_NAME = '<img src=x onerror="window.__xss=1">\r\n"quoted" & \'single\' </pre>'


@dataclass
class World:
    """The service, the tenants' keys and clients, and the jobs made for the tests."""

    service: Service
    keys: dict[str, str]
    clients: dict[str, httpx.Client]
    jobs: dict[str, str] = field(default_factory=dict)
    sweep: str = ""
    log_sweep: str = ""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("dashboard")
    keys_file = root / "api_keys"
    keys = {tenant: add_key(keys_file, tenant) for tenant in ("alpha", "beta")}
    service = Service(root, env_extra={"TRAINAPI_API_KEYS_FILE": str(keys_file)})
    clients = {
        t: httpx.Client(base_url=service.url, timeout=30, headers={"Authorization": f"Bearer {k}"})
        for t, k in keys.items()
    }
    try:
        service.start()
        w = World(service, keys, clients)
        alpha, beta = clients["alpha"], clients["beta"]

        def submit(client: httpx.Client, spec: dict[str, Any]) -> str:
            response = client.post("/v1/jobs", json=spec)
            assert response.status_code == 202, response.text
            return str(response.json()["id"])

        # Submitted now, so that the workers train them while the browser starts.
        w.jobs["plain"] = submit(alpha, {**MOONS, "name": "moons plain"})
        w.jobs["regularized"] = submit(
            alpha,
            {
                **MOONS,
                "name": "moons dropout + L2",
                "model": {"hidden_layers": [128, 128]},
                "regularization": {"dropout": 0.3, "l2": 0.001},
            },
        )
        w.jobs["hostile"] = submit(alpha, {"dataset": "iris", "name": HOSTILE_NAME, "training": {"epochs": 2}})
        w.jobs["beta"] = submit(beta, {"dataset": "iris", "name": "beta's secret job", "training": {"epochs": 2}})
        w.jobs["unnamed"] = submit(alpha, {"dataset": "iris", "training": {"epochs": 2}})  # named by its id
        # Over-fits: train loss near 0, validation loss well above it (the gap a chart has to show).
        w.jobs["digits"] = submit(
            alpha,
            {
                "dataset": "digits",
                "name": "digits gap",
                "model": {"hidden_layers": [256]},
                "training": {"epochs": 40, "batch_size": 16},
            },
        )
        sweep = alpha.post(
            "/v1/sweeps",
            json={
                "name": "moons regularization",
                "base": {"dataset": "moons", "training": {"epochs": 10}},
                "parameters": {
                    "regularization.l2": {"values": [0, 0.001, 0.01]},
                    "regularization.dropout": {"values": [0, 0.3]},
                },
                "strategy": "grid",
                "max_concurrent_trials": 2,
            },
        )
        assert sweep.status_code == 202, sweep.text
        w.sweep = sweep.json()["id"]
        log_sweep = alpha.post(
            "/v1/sweeps",
            json={
                "name": "moons log l2",
                "base": {"dataset": "moons", "training": {"epochs": 3}},
                "parameters": {"regularization.l2": {"distribution": "log_uniform", "low": 1e-5, "high": 1e-2}},
                "strategy": "random",
                "max_trials": 4,
                "max_concurrent_trials": 2,
                "seed": 1,
            },
        )
        assert log_sweep.status_code == 202, log_sweep.text
        w.log_sweep = log_sweep.json()["id"]
        yield w
    finally:
        for client in clients.values():
            client.close()
        service.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("TRAINAPI_UI_SCREENSHOTS")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Browsing:
    """A browser context for one tenant: visits pages, checks the console and where requests go."""

    def __init__(self, browser: Any, world: World, shots: Path, tenant: str | None, width: int = 1280) -> None:
        self.world = world
        self.shots = shots
        self.origin = world.service.url
        self.foreign: list[str] = []
        self.key_in_url: list[str] = []
        self.requests: list[dict[str, Any]] = []
        self.width = width
        self.context = browser.new_context(viewport={"width": width, "height": 800}, base_url=self.origin)
        if tenant:
            key = json.dumps(world.keys[tenant])
            self.context.add_init_script(f"sessionStorage.setItem('trainapi.key', {key})")
        self.context.route("**/*", self._route)
        self.pages: list[tuple[Any, list[str]]] = []
        self.allowed: dict[int, tuple[str, ...]] = {}

    def _route(self, route: Any) -> None:
        request = route.request
        url = request.url
        if not (url == self.origin or url.startswith(self.origin + "/")):
            self.foreign.append(url)
            route.abort()
            return
        if any(key in url for key in self.world.keys.values()):
            self.key_in_url.append(url)
        self.requests.append({"url": url, "headers": request.headers})
        route.continue_()

    def visit(self, path: str, ready: str, shot: str | None = None, allow: tuple[str, ...] = ()) -> Any:
        """Open ``path`` in a new tab and wait for the selector ``ready`` (see :meth:`goto`)."""
        page = self.context.new_page()
        errors: list[str] = []
        self.allowed[id(page)] = allow
        page.on(
            "console",
            lambda m: (
                errors.append(m.text)
                if m.type == "error" and not any(a in m.text for a in self.allowed[id(page)])
                else None
            ),
        )
        page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
        self.pages.append((page, errors))
        return self.goto(page, path, ready, shot, allow)

    def goto(self, page: Any, path: str, ready: str, shot: str | None = None, allow: tuple[str, ...] = ()) -> Any:
        """Load ``path`` in ``page``, wait for ``ready``, save a screenshot named ``shot``.

        Console errors fail the test, but for messages containing one of ``allow`` (an
        expected 404 or 422 is logged by Chromium as a failed resource load).
        """
        self.allowed[id(page)] = allow
        page.goto(path)
        page.wait_for_selector(ready, timeout=30_000)
        if shot:
            self.shot(page, shot)
        self.check()
        return page

    def shot(self, page: Any, name: str) -> Path:
        """The first screen (1280x800, or 800 high at the context's width) of ``page``, as ``{name}.png``."""
        path = self.shots / f"{name}.png"
        page.screenshot(path=str(path))
        return path

    def check(self) -> None:
        for page, errors in self.pages:
            assert errors == [], f"console errors on {page.url}: {errors}"
        assert self.foreign == [], f"requests to other hosts: {self.foreign}"
        assert self.key_in_url == [], f"the API key travelled in a URL: {self.key_in_url}"

    def close(self) -> None:
        self.check()
        self.context.close()


@pytest.fixture
def browse(browser: Any, world: World, shots: Path) -> Iterator[Callable[..., Browsing]]:
    opened: list[Browsing] = []

    def open_as(tenant: str | None = "alpha", width: int = 1280) -> Browsing:
        session = Browsing(browser, world, shots, tenant, width)
        opened.append(session)
        return session

    yield open_as
    for session in opened:
        session.close()


def points(page: Any, chart: str) -> int:
    return int(page.get_attribute(chart, "data-points") or 0)


def finished(world: World, *names: str) -> list[dict[str, Any]]:
    return [wait_for_job(world.clients["alpha"], world.jobs[n], timeout=90) for n in names]


# ---- acceptance 2: a running job's chart gains points; the final page shows best epoch and test metrics


def test_a_running_jobs_chart_grows_live_then_shows_best_epoch_and_test_metrics(browse, world: World) -> None:
    alpha = world.clients["alpha"]
    spec = {
        "dataset": "digits",
        "name": "digits live",
        "model": {"hidden_layers": [256]},
        "training": {"epochs": 80, "batch_size": 16, "test_fraction": 0.2},
    }
    job_id = alpha.post("/v1/jobs", json=spec).json()["id"]
    poll(lambda: alpha.get(f"/v1/jobs/{job_id}").json()["progress"]["epoch"] >= 1, 60, what="the first epoch")
    b = browse("alpha")
    page = b.visit(f"/ui/jobs/{job_id}", "#loss-chart[data-points]:not([data-points='0'])")
    first = points(page, "#loss-chart")
    first_at = time.monotonic()
    assert 1 <= first < 80, first
    # The same page, not reloaded: the points arrive over the event stream.
    poll(lambda: points(page, "#loss-chart") > first, 30, interval=0.2, what="the chart to gain points")
    second = points(page, "#loss-chart")
    assert second > first, (first, second, time.monotonic() - first_at)
    b.shot(page, "job-running")

    page.wait_for_selector("#job-head .badge[data-status='succeeded']", timeout=90_000)
    job = alpha.get(f"/v1/jobs/{job_id}").json()
    assert points(page, "#loss-chart") == len(alpha.get(f"/v1/jobs/{job_id}/metrics").json()["items"])
    assert page.text_content("#best-epoch .big") == str(job["best_epoch"])
    test_text = page.text_content("#test-metrics")
    assert "accuracy" in test_text and f"{100 * job['test_metrics']['accuracy']:.1f} %" in test_text
    marker = page.evaluate("document.querySelector('#loss-chart').uplot.series.length")
    assert marker == 3  # epoch, train loss, validation loss
    assert page.locator("#metric-table tr.best").get_attribute("data-epoch") == str(job["best_epoch"])
    events = [r for r in b.requests if r["url"].endswith(f"/v1/jobs/{job_id}/events")]
    assert events and all(r["headers"].get("authorization") == f"Bearer {world.keys['alpha']}" for r in events)
    b.shot(page, "job")


# ---- acceptance 1 and 7: every page loads with no console error and no request elsewhere; screenshots


def test_every_page_loads_clean_and_offline(browse, world: World, shots: Path) -> None:
    finished(world, "plain", "regularized", "hostile")
    b = browse("alpha")
    plain, reg = world.jobs["plain"], world.jobs["regularized"]
    pages = [
        ("/ui/", "#jobs table", "jobs"),
        (f"/ui/jobs/{plain}", "#loss-chart .uplot", "job-finished"),
        (f"/ui/compare?jobs={plain},{reg}", "#compare-loss .uplot", "compare"),
        ("/ui/compare", "#compare-go", "compare-picker"),
        ("/ui/sweeps", "#sweeps table", "sweeps"),
        (f"/ui/sweeps/{world.sweep}", "#leaderboard-table", "sweep"),
        ("/ui/datasets", "#dataset-list table", "datasets"),
        ("/ui/new", "#job-json", "new-job"),
        ("/docs", ".swagger-ui .info .title", "docs"),
        ("/redoc", "h1:has-text('trainapi')", "redoc"),
    ]
    page = b.visit(*pages[0][:2], shot=pages[0][2])
    for path, ready, name in pages[1:]:
        b.goto(page, path, ready, shot=name)
    for _, _, name in pages:
        assert (shots / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"screenshots in {shots}")


def test_job_names_render_as_text(browse, world: World) -> None:
    finished(world, "hostile")
    b = browse("alpha")
    page = b.visit("/ui/", f"tr[data-job='{world.jobs['hostile']}']")
    job = b.visit(f"/ui/jobs/{world.jobs['hostile']}", "#job-name")
    for p in (page, job):
        assert p.evaluate("window.__xss") is None
        assert p.locator("main img").count() == 0
    shown = job.text_content("#job-name")
    assert " ".join(shown.split()) == " ".join(HOSTILE_NAME.split())
    assert page.locator(f"tr[data-job='{world.jobs['hostile']}'] a").text_content() == shown


def test_job_page_log_scale_downloads_and_cancel(browse, world: World) -> None:
    finished(world, "plain")
    alpha = world.clients["alpha"]
    b = browse("alpha")
    page = b.visit(f"/ui/jobs/{world.jobs['plain']}", "#loss-chart .uplot")
    assert page.evaluate("document.querySelector('#loss-chart').uplot.scales.y.distr") == 1
    page.check("#log-scale")
    assert page.evaluate("document.querySelector('#loss-chart').uplot.scales.y.distr") == 3
    formats = page.eval_on_selector_all("button.download", "els => els.map(e => e.dataset.format)")
    assert {"npz", "safetensors", "json", "onnx"} <= set(formats)
    with page.expect_download() as download:
        page.click("button.download[data-format='npz']")
    saved = Path(download.value.path()).read_bytes()
    assert saved == alpha.get(f"/v1/jobs/{world.jobs['plain']}/weights", params={"format": "npz"}).content
    spec = json.loads(page.text_content("#job-spec"))
    assert spec == alpha.get(f"/v1/jobs/{world.jobs['plain']}").json()["spec"]

    long = alpha.post("/v1/jobs", json={"dataset": "digits", "name": "to cancel", "training": {"epochs": 5000}})
    job_id = long.json()["id"]
    page = b.visit(f"/ui/jobs/{job_id}", "#cancel-job:not([disabled])")
    page.click("#cancel-job")
    page.wait_for_selector("#job-head .badge[data-status='cancelled']", timeout=60_000)
    assert alpha.get(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"


# ---- acceptance 3: upload a CSV by the file input, create a job from the form, watch it finish


def _csv(rows: int = 120) -> bytes:
    out = io.StringIO()
    out.write("height,weight,age,label\n")
    for i in range(rows):
        out.write(f"{150 + i % 40},{50 + (i * 7) % 45},{20 + i % 30},{'tall' if i % 40 > 19 else 'short'}\n")
    return out.getvalue().encode()


def test_upload_by_file_input_then_train_from_the_form(browse, world: World) -> None:
    b = browse("alpha")
    page = b.visit("/ui/datasets", "#dataset-list table", shot="datasets-empty")
    page.fill("#upload-name", "heights")
    page.set_input_files("#upload-file", files=[{"name": "heights.csv", "mimeType": "text/csv", "buffer": _csv()}])
    page.wait_for_selector("#upload-result >> text=Uploaded")
    page.wait_for_selector("#dataset-rows table")
    assert page.locator("#dataset-rows table").first.locator("tbody tr").count() == 10
    assert page.locator("#dataset-rows table").first.locator("th").all_text_contents()[-1] == "label (target)"
    assert page.locator("#dataset-columns tbody tr").count() == 4  # each column's type and summary
    dataset_id = page.text_content("#upload-result code")
    assert page.locator(f"tr[data-dataset='{dataset_id}']").count() == 1
    b.shot(page, "datasets")

    # Drag and drop: the same upload through a drop event on the drop zone.
    page.evaluate(
        """csv => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([csv], "dropped.csv", { type: "text/csv" }));
            const zone = document.querySelector("#dropzone");
            zone.dispatchEvent(new DragEvent("dragover", { dataTransfer: transfer, bubbles: true, cancelable: true }));
            zone.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
        }""",
        _csv(60).decode(),
    )
    page.wait_for_selector("#upload-result >> text=60 rows")

    page.goto(f"/ui/new?dataset={dataset_id}")
    page.wait_for_selector("#job-json")
    assert page.input_value("#f-dataset") == dataset_id
    page.fill("#f-name", "from the form")
    page.fill("#f-training-epochs", "8")
    page.fill("#f-training-test_fraction", "0.2")
    sent = json.loads(page.text_content("#job-json"))
    assert sent["dataset"] == dataset_id and sent["name"] == "from the form"
    assert sent["training"]["epochs"] == 8 and sent["training"]["test_fraction"] == 0.2
    page.click("#submit-job")
    try:
        page.wait_for_url("**/ui/jobs/job_*")
    except sync_api.TimeoutError:
        pytest.fail(f"the form did not start a job: {page.text_content('#job-problem')}")
    page.wait_for_selector("#job-head .badge[data-status='succeeded']", timeout=60_000)
    job_id = page.url.rsplit("/", 1)[1]
    job = world.clients["alpha"].get(f"/v1/jobs/{job_id}").json()
    assert job["name"] == "from the form" and job["spec"]["dataset"] == dataset_id
    assert job["spec"]["training"]["epochs"] == 8 and job["test_metrics"] is not None
    b.check()


def test_the_form_marks_the_field_the_service_rejects(browse) -> None:
    b = browse("alpha")
    page = b.visit("/ui/new", "#job-json", allow=("status of 422",))
    page.fill("#f-regularization-dropout", "1.5")
    page.click("#submit-job")
    page.wait_for_selector(".field.invalid[data-field='regularization.dropout']")
    assert "regularization.dropout" in page.text_content("#job-problem")


# ---- acceptance 4: compare two moons jobs, with and without dropout + L2


def _rgb(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


def test_compare_draws_both_jobs_with_the_right_legend(browse, world: World) -> None:
    jobs = finished(world, "plain", "regularized")
    alpha = world.clients["alpha"]
    b = browse("alpha")
    page = b.visit(f"/ui/compare?jobs={jobs[0]['id']},{jobs[1]['id']}", "#compare-loss .uplot")
    series = page.evaluate(
        """() => {
            const u = document.querySelector('#compare-loss').uplot;
            return u.series.slice(1).map((s, i) =>
                ({ label: s.label, stroke: s.stroke(), dash: !!s.dash, data: u.data[i + 1] }));
        }"""
    )
    legend = page.evaluate(
        """() => [...document.querySelectorAll('#compare-loss .u-legend .u-series')].slice(1).map(row => ({
            label: row.querySelector('.u-label').textContent,
            colour: getComputedStyle(row.querySelector('.u-marker')).borderTopColor,
        }))"""
    )
    assert len(series) == 4 and [s["label"] for s in series] == [entry["label"] for entry in legend]
    colours = {}
    for job in jobs:
        records = alpha.get(f"/v1/jobs/{job['id']}/metrics").json()["items"]
        mine = [s for s in series if s["label"].startswith(job["name"] + " · ")]
        assert [s["label"] for s in mine] == [f"{job['name']} · train loss", f"{job['name']} · validation loss"]
        assert mine[0]["data"] == [r["train_loss"] for r in records]  # both curves drawn, every epoch
        assert mine[1]["data"] == [r["val_loss"] for r in records]
        assert mine[0]["stroke"] == mine[1]["stroke"] and not mine[0]["dash"] and mine[1]["dash"]
        colours[job["id"]] = mine[0]["stroke"]
        for s in mine:
            entry = next(e for e in legend if e["label"] == s["label"])
            assert entry["colour"] == _rgb(s["stroke"])
        row = page.locator(f"#compare-jobs tr[data-job='{job['id']}']")
        assert row.locator("a").text_content() == job["name"]
        assert row.locator(".swatch").evaluate("e => getComputedStyle(e).backgroundColor") == _rgb(mine[0]["stroke"])
    assert len(set(colours.values())) == 2
    differing = page.locator("#compare-jobs th").all_text_contents()
    assert "regularization.dropout" in differing and "regularization.l2" in differing
    b.shot(page, "compare")


# ---- acceptance 5: one point per finished trial; the leaderboard sorts by a column


def test_sweep_plots_every_finished_trial_and_sorts(browse, world: World) -> None:
    alpha = world.clients["alpha"]
    sweep = poll(
        lambda: (s := alpha.get(f"/v1/sweeps/{world.sweep}").json())["status"] in ("succeeded", "failed") and s,
        90,
        what="the sweep",
    )
    done = [r for r in sweep["leaderboard"] if r["status"] in ("succeeded", "pruned") and r["objective"] is not None]
    assert len(done) == 6
    b = browse("alpha")
    page = b.visit(f"/ui/sweeps/{world.sweep}", "#best-loss .uplot")
    for parameter in ("regularization.l2", "regularization.dropout"):
        chart = f"#objective-charts figure[data-parameter='{parameter}']"
        assert points(page, chart) == len(done)
        xs = page.evaluate(f'document.querySelector("{chart}").uplot.data[0]')
        assert len(xs) == len(done)

    def column(key: str) -> list[str]:
        index = page.eval_on_selector_all(
            "#leaderboard-table th", f"ths => ths.findIndex(th => th.dataset.key === '{key}')"
        )
        return page.eval_on_selector_all(
            "#leaderboard-table tbody tr", f"rows => rows.map(r => r.children[{index}].textContent)"
        )

    objective = [float(v) for v in column("objective")]
    assert objective == sorted(objective)  # ranked best first
    page.click("#leaderboard-table th[data-key='objective']")
    page.click("#leaderboard-table th[data-key='objective']")
    assert page.get_attribute("#leaderboard-table th[data-key='objective']", "aria-sort") == "descending"
    descending = [float(v) for v in column("objective")]
    assert descending == sorted(objective, reverse=True)
    page.click("#leaderboard-table th[data-key='param:regularization.l2']")
    l2 = [float(v) for v in column("param:regularization.l2")]
    assert l2 == sorted(l2) and len(set(l2)) == 3
    best = sweep["best_trial"]
    assert page.locator(f"#best-trial a[href='/ui/jobs/{best['trial_id']}']").count() == 1
    assert points(page, "#best-loss") == best["epochs_run"]
    b.shot(page, "sweep")


# ---- acceptance 6: with keys configured, tenant A's key shows none of tenant B's jobs


def test_key_prompt_and_one_tenant_never_sees_another(browse, world: World) -> None:
    finished(world, "plain")
    wait_for_job(world.clients["beta"], world.jobs["beta"])
    b = browse(None)
    page = b.visit("/ui/", "#api-key", shot="key-prompt")
    assert page.locator("#jobs").count() == 0
    page.fill("#api-key", world.keys["alpha"])
    page.click("button[type=submit]")
    page.wait_for_selector(f"tr[data-job='{world.jobs['plain']}']")
    assert page.evaluate("sessionStorage.getItem('trainapi.key')") == world.keys["alpha"]
    shown = set(page.eval_on_selector_all("tr[data-job]", "rows => rows.map(r => r.dataset.job)"))
    alpha_jobs = {j["id"] for j in world.clients["alpha"].get("/v1/jobs", params={"limit": 500}).json()["items"]}
    assert shown and shown <= alpha_jobs and world.jobs["beta"] not in shown
    assert "beta's secret job" not in page.text_content("main")
    b.goto(page, f"/ui/jobs/{world.jobs['beta']}", "text=No such job", allow=("status of 404",))
    assert "beta's secret job" not in page.text_content("main")
    assert all(
        r["headers"].get("authorization") == f"Bearer {world.keys['alpha']}" for r in b.requests if "/v1/" in r["url"]
    )


def test_the_readme_shows_the_job_and_compare_screenshots() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in ("docs/screenshots/job.png", "docs/screenshots/compare.png"):
        assert f"]({name})" in readme
        data = (ROOT / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) < 400_000


# ---- the first hour: tick labels, fitted y-axes, 400 px screens, help text, upload notes, the startup log

SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _power(exponent: int) -> str:
    return "10" + str(exponent).translate(SUPERSCRIPTS)


def _tick_labels(page: Any, chart: str, axis: int) -> list[str]:
    """The labels uPlot drew on an axis of a chart (``axis`` 0: x, 1: y), blanks left out."""
    return list(page.evaluate(f"document.querySelector(\"{chart}\").uplot.axes[{axis}]._values.filter(v => v !== '')"))


def test_log_axes_label_each_power_of_ten_distinctly(browse, world: World) -> None:
    alpha = world.clients["alpha"]
    sweep = poll(
        lambda: (s := alpha.get(f"/v1/sweeps/{world.log_sweep}").json())["status"] in ("succeeded", "failed") and s,
        90,
        what="the log_uniform sweep",
    )
    l2 = [r["parameters"]["regularization.l2"] for r in sweep["leaderboard"] if r["objective"] is not None]
    assert len(l2) >= 2
    b = browse("alpha")
    chart = "#objective-charts figure[data-parameter='regularization.l2']"
    page = b.visit(f"/ui/sweeps/{world.log_sweep}", f"{chart} .uplot")
    assert page.evaluate(f'document.querySelector("{chart}").uplot.scales.x.distr') == 3  # log_uniform: a log axis
    labels = _tick_labels(page, chart, 0)
    # uPlot's own labels rounded to 3 decimals: 1e-5 and 1e-4 were both "0".
    assert len(labels) >= 2 and len(set(labels)) == len(labels) and "0" not in labels, labels
    spanned = range(math.ceil(math.log10(min(l2))), math.floor(math.log10(max(l2))) + 1)
    assert {_power(e) for e in spanned} <= set(labels), (labels, l2)
    b.shot(page, "sweep-log-axis")
    # The formatters themselves, from the module the page loaded.
    out = page.evaluate(
        """async () => {
            const src = document.querySelector("script[type=module]").src;
            const charts = await import(src.replace(/\\/ui\\/app\\.js$/, "/ui/charts.js"));
            return [
                charts.logTicks(null, [1e-5, 1e-4, 2e-4, 1e-3, null]),
                charts.logTicks(null, [0.1, 1, 10, 100]),
                charts.linearTicks(null, [0, 0.25, 0.5, 0.75], 1, 30, 0.25),
                charts.linearTicks(null, [0, 2e-5, 4e-5, 6e-5], 1, 30, 2e-5),
                charts.linearTicks(null, [0, 0.0005, 0.001], 1, 30, 0.0005),
            ];
        }"""
    )
    assert out == [
        ["10⁻⁵", "10⁻⁴", "2·10⁻⁴", "10⁻³", ""],
        ["0.1", "1", "10", "100"],
        ["0", "0.25", "0.5", "0.75"],
        ["0", "2·10⁻⁵", "4·10⁻⁵", "6·10⁻⁵"],
        ["0", "0.0005", "0.001"],
    ]


GAP = """chart => {
    const u = document.querySelector(chart).uplot;
    const last = u.data[0].length - 1;
    return {
        px: Math.abs(u.valToPos(u.data[1][last], "y") - u.valToPos(u.data[2][last], "y")),
        height: u.bbox.height / devicePixelRatio,
        min: u.scales.y.min,
        max: u.scales.y.max,
        distr: u.scales.y.distr,
    };
}"""


def test_the_train_validation_gap_shows_on_the_default_linear_axis(browse, world: World) -> None:
    (job,) = finished(world, "digits")
    records = world.clients["alpha"].get(f"/v1/jobs/{job['id']}/metrics").json()["items"]
    losses = [r[k] for r in records for k in ("train_loss", "val_loss")]
    first = max(records[0]["train_loss"], records[0]["val_loss"])
    b = browse("alpha")
    page = b.visit(f"/ui/jobs/{job['id']}", "#loss-chart .uplot")
    assert not page.is_checked("#log-scale")
    fitted = page.evaluate(GAP, "#loss-chart")
    assert fitted["distr"] == 1  # linear
    # Fitted to the epochs after the first tenth: the first epochs' fall runs off the top, every minimum stays in.
    assert 0 <= fitted["min"] <= min(losses) and fitted["max"] < first, (fitted, first, min(losses))
    assert fitted["px"] >= 0.25 * fitted["height"], fitted  # the gap at the last epoch fills a quarter of the plot
    assert page.get_attribute("#loss-chart", "data-fitted") == "cut"
    assert "run off the plot" in page.text_content("#loss-chart figcaption")
    b.shot(page, "job-gap")
    # The reader can widen it to every epoch (the old default), where the gap is a sliver.
    page.click("#loss-chart .fit-toggle")
    whole = page.evaluate(GAP, "#loss-chart")
    assert whole["max"] >= first and fitted["px"] >= 2 * whole["px"], (fitted, whole)
    page.click("#loss-chart .fit-toggle")
    assert page.evaluate(GAP, "#loss-chart")["max"] == fitted["max"]
    # Accuracy climbs: its first epochs run off the bottom, the best value stays in view.
    accuracy = [r[k] for r in records for k in ("accuracy", "val_accuracy")]
    score = page.evaluate(GAP, "#score-chart")
    assert score["min"] > min(accuracy) and score["max"] >= max(accuracy), (score, min(accuracy))
    # Log scale: every epoch, labelled by distinct ticks.
    page.check("#log-scale")
    logged = page.evaluate(GAP, "#loss-chart")
    assert logged["distr"] == 3 and logged["max"] >= first and logged["min"] <= min(losses)
    labels = _tick_labels(page, "#loss-chart", 1)
    assert len(labels) >= 2 and len(set(labels)) == len(labels), labels
    assert page.is_hidden("#loss-chart figcaption")


OUTSIDE = """width => [...document.querySelectorAll("main *, header *")]
    .filter(e => !e.closest(".table-wrap, pre") && e.getBoundingClientRect().right > width + 0.5)
    .map(e => `${e.tagName.toLowerCase()}#${e.id}.${e.className}`)"""

NAMES = """() => {
  const textWidth = el => {
    const range = document.createRange();
    range.selectNodeContents(el);
    return range.getBoundingClientRect().width;  // the text's own width, clipped or not
  };
  return [...document.querySelectorAll("#jobs td.name-cell a")].map(a => ({
    text: a.textContent,
    title: a.title,
    height: a.getBoundingClientRect().height,
    line: parseFloat(getComputedStyle(a).lineHeight),
    cut: textWidth(a) > a.getBoundingClientRect().width + 0.5,  // scrollWidth and clientWidth are rounded
    ellipsis: getComputedStyle(a).textOverflow,
  }));
}"""


@pytest.mark.parametrize("width", [1280, 400])
def test_pages_fit_the_screen_and_ids_stay_on_one_line(browse, world: World, width: int) -> None:
    finished(world, "plain", "regularized", "unnamed", "digits")
    plain, reg, unnamed = world.jobs["plain"], world.jobs["regularized"], world.jobs["unnamed"]
    b = browse("alpha", width=width)
    pages = [
        ("/ui/", "#jobs table", "jobs"),
        (f"/ui/jobs/{plain}", "#loss-chart .uplot", "job"),
        (f"/ui/compare?jobs={plain},{reg}", "#compare-loss .uplot", "compare"),
        ("/ui/sweeps", "#sweeps table", "sweeps"),
        (f"/ui/sweeps/{world.sweep}", "#leaderboard-table", "sweep"),
        ("/ui/datasets", "#dataset-list table", "datasets"),
        ("/ui/new", "#job-json", "new-job"),
    ]
    page = b.visit("/ui/", "#jobs table")
    for path, ready, name in pages:
        b.goto(page, path, ready)
        page.wait_for_timeout(300)  # the charts take their width from the page (ResizeObserver)
        sizes = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
        assert sizes[0] <= sizes[1] == width, f"{path} is {sizes[0]} px wide in a {width} px window"
        assert page.evaluate(OUTSIDE, width) == [], path  # only tables and code blocks scroll sideways
        b.shot(page, f"{name}-{width}")

    # The jobs list: every name on one line; the job named by its id is whole at 1280 px, cut with an ellipsis at 400.
    b.goto(page, "/ui/", f"tr[data-job='{unnamed}']")
    names = page.evaluate(NAMES)
    assert names and all(n["height"] <= 1.5 * n["line"] for n in names), names
    (by_id,) = [n for n in names if n["text"] == unnamed]
    assert by_id["title"] == unnamed and by_id["ellipsis"] == "ellipsis"
    assert by_id["cut"] is (width == 400), by_id
    assert page.is_visible("#jobs th:has-text('Created')") is (width > 640)  # left out on a phone
    assert page.is_visible("#jobs th:has-text('Status')")

    # A job's id: one line, with a copy button on the screen. What it copies is recorded in place of the
    # system clipboard (reading that back needs the window focused, which a headless run does not promise).
    b.goto(page, f"/ui/jobs/{unnamed}", "#job-head .id-chip")
    page.evaluate("() => { window.__copied = []; navigator.clipboard.writeText = async t => { __copied.push(t); }; }")
    chip = page.locator("#job-head .id-chip code")
    assert chip.text_content() == unnamed and chip.get_attribute("title") == unnamed
    box = chip.bounding_box()
    button = page.locator("#job-head .id-chip button.copy").bounding_box()
    assert box and button and box["height"] <= 20 and button["x"] + button["width"] <= width, (box, button)
    page.click("#job-head .id-chip button.copy")
    page.wait_for_selector("#job-head .id-chip button.copy >> text=Copied")
    assert page.evaluate("window.__copied") == [unnamed]


def test_the_sweeps_help_shows_code_not_backticks(browse) -> None:
    b = browse("alpha")
    page = b.visit("/ui/sweeps", "#sweeps-help code")
    codes = page.locator("#sweeps-help code").all_text_contents()
    assert codes == ["POST /v1/sweeps", "trainapi sweeps submit SPEC.json"]
    assert "`" not in page.text_content("#sweeps-help")


def test_upload_shows_the_parsers_notes_and_leaves_the_decimal_mark_to_the_service(browse, world: World) -> None:
    alpha = world.clients["alpha"]
    b = browse("alpha")
    page = b.visit("/ui/datasets", "#dataset-list table")
    assert page.input_value("#upload-decimal") == ""  # detect: no decimal field
    assert page.locator("#upload-decimal option:checked").text_content() == "detect"
    sent: list[bytes] = []

    def record(request: Any) -> None:
        if request.method == "POST" and request.url.endswith("/v1/datasets"):
            sent.append(request.post_data_buffer or b"")

    page.on("request", record)
    rows = "".join(f"{150 + i % 40},,{'tall' if i % 40 > 19 else 'short'}\n" for i in range(60))
    page.fill("#upload-name", "with a blank column")
    blank = ("height,blank,label\n" + rows).encode()
    page.set_input_files("#upload-file", files=[{"name": "blank.csv", "mimeType": "text/csv", "buffer": blank}])
    page.wait_for_selector("#upload-result >> text=Uploaded “with a blank column”")
    dataset_id = page.text_content("#upload-result .id-chip code")
    record = alpha.get(f"/v1/datasets/{dataset_id}").json()
    assert record["notes"] and any("'blank'" in note for note in record["notes"]), record
    assert page.locator("#upload-result .dataset-notes li").all_text_contents() == record["notes"]
    page.wait_for_selector("#dataset-rows .dataset-notes")  # the first rows say it too
    assert page.locator("#dataset-rows .dataset-notes li").all_text_contents() == record["notes"]
    assert len(sent) == 1 and b'name="decimal"' not in sent[0]
    b.shot(page, "upload-notes")

    # Chosen, the decimal mark is sent: a semicolon file with decimal commas has numeric columns.
    page.select_option("#upload-decimal", ",")
    page.fill("#upload-name", "decimal commas")
    semicolon = "width;depth;label\n" + "".join(f"{i % 7},5;{i % 11},25;{'ab'[i % 2]}\n" for i in range(40))
    page.set_input_files(
        "#upload-file", files=[{"name": "commas.csv", "mimeType": "text/csv", "buffer": semicolon.encode()}]
    )
    page.wait_for_selector("#upload-result >> text=Uploaded “decimal commas”")
    assert len(sent) == 2 and b'name="decimal"\r\n\r\n,\r\n' in sent[1]
    record = alpha.get(f"/v1/datasets/{page.text_content('#upload-result .id-chip code')}").json()
    types = {c["name"]: c["type"] for c in record["columns"]}
    assert types["width"] == types["depth"] == "numeric", types


def test_the_api_log_says_once_where_the_dashboard_is(world: World) -> None:
    log = (world.service.root / "api.log").read_text()
    lines = [line for line in log.splitlines() if "dashboard at /ui/" in line]
    assert len(lines) == 1, log[-3000:]
