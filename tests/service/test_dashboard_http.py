"""The dashboard as HTTP sees it: the shell at /ui/ and its deep links, cached assets, the CSP,
the offline /docs and /redoc, the app's config, and ``GET /v1/datasets/{id}/rows``.

What a browser does with them is tested in ``tests/ui/test_dashboard.py``.
"""

from __future__ import annotations

import re

import httpx
import pytest

from api.routes.ui import STATIC_DIR

PAGES = [
    "/ui/",
    "/ui/jobs/job_123",
    "/ui/sweeps/swp_9",
    "/ui/compare?jobs=a,b",
    "/ui/datasets",
    "/ui/new",
    "/ui/sweeps",
]


def _assets(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/ui/assets/[^"]+)"', html)


def test_root_redirects_to_the_dashboard(api: httpx.Client) -> None:
    for path in ("/", "/ui"):
        response = api.get(path)
        assert response.status_code == 307 and response.headers["location"] == "/ui/"


@pytest.mark.parametrize("path", PAGES)
def test_every_deep_link_gets_the_shell_revalidated_each_load(api: httpx.Client, path: str) -> None:
    response = api.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-cache"
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self';" in csp and "connect-src 'self'" in csp
    assert "unsafe-inline" not in csp and "http" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert _assets(response.text), "the shell names its versioned assets"
    again = api.get(path, headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304


def test_an_unknown_page_is_a_404_with_the_shell(api: httpx.Client) -> None:
    response = api.get("/ui/no/such/page")
    assert response.status_code == 404 and "<main" in response.text


def test_assets_are_versioned_and_cached_for_a_year(api: httpx.Client) -> None:
    shell = api.get("/ui/").text
    assets = _assets(shell)
    assert any(a.endswith("/ui/app.js") for a in assets)
    for asset in [*assets, assets[0].rsplit("/ui/", 1)[0] + "/vendor/uplot/uPlot.esm.js"]:
        response = api.get(asset)
        assert response.status_code == 200, asset
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert response.headers["content-security-policy"].startswith("default-src 'none'")
    js = api.get(next(a for a in assets if a.endswith("app.js")))
    assert js.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    missing = api.get(assets[0].rsplit("/", 1)[0] + "/nope.js")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"


def test_nothing_in_the_app_names_another_host() -> None:
    for path in (STATIC_DIR / "ui").rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert not re.search(r"""(src|href)\s*=\s*["']https?:""", text), path
            assert not re.search(r"""(fetch|import)\(\s*["'`]https?:""", text), path
            assert "innerHTML" not in text and "insertAdjacentHTML" not in text and "document.write" not in text, path


def test_every_vendored_library_carries_its_licence() -> None:
    for name in ("uplot", "swagger-ui", "redoc"):
        folder = STATIC_DIR / "vendor" / name
        assert (folder / "LICENSE").read_text().strip(), name


@pytest.mark.parametrize(
    ("path", "assets"), [("/docs", ["swagger-ui-bundle.js", "swagger-ui.css"]), ("/redoc", ["redoc.standalone.js"])]
)
def test_api_docs_load_their_assets_from_this_service(api: httpx.Client, path: str, assets: list[str]) -> None:
    response = api.get(path)
    assert response.status_code == 200
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", response.text)
    assert urls and all(u.startswith("/") for u in urls), urls
    for name in assets:
        url = next(u for u in urls if u.endswith(name))
        assert api.get(url).status_code == 200
    assert "fonts.googleapis" not in response.text and "cdn.jsdelivr" not in response.text
    assert "http" not in response.headers["content-security-policy"]


def test_config_gives_the_defaults_a_job_accepts(api: httpx.Client, wait_job) -> None:
    config = api.get("/ui/config.json").json()
    assert config["auth"] is False
    assert "npz" in config["weight_formats"] and "succeeded" in config["statuses"]
    assert config["job_choices"]["model.type"] == ["linear", "logistic", "mlp"]
    body = {**config["job_defaults"], "dataset": "iris", "name": "from the form defaults"}
    body["training"] = {**body["training"], "epochs": 2}
    response = api.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    assert wait_job(api, response.json()["id"])["status"] == "succeeded"


def test_first_rows_of_a_builtin_and_an_upload(api: httpx.Client) -> None:
    iris = api.get("/v1/datasets/iris/rows", params={"limit": 3}).json()
    assert iris["columns"][-1] == "species" and len(iris["columns"]) == 5
    assert iris["rows"][0] == [5.1, 3.5, 1.4, 0.2, "setosa"] and len(iris["rows"]) == 3 and iris["n_samples"] == 150
    csv = b"a,b,label\n1,2,x\n3,4,y\n5,6,x\n"
    upload = api.post("/v1/datasets", files={"file": ("t.csv", csv, "text/csv")}).json()
    rows = api.get(f"/v1/datasets/{upload['id']}/rows").json()
    assert rows == {
        "columns": ["a", "b", "label"],
        "rows": [[1.0, 2.0, "x"], [3.0, 4.0, "y"], [5.0, 6.0, "x"]],
        "n_samples": 3,
    }


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/datasets/iris/rows?limit=0", 422),
        ("/v1/datasets/iris/rows?limit=101", 422),
        ("/v1/datasets/iris/rows?limit=x", 422),
        ("/v1/datasets/ds_0123456789abcdef0123456789abcdef/rows", 404),
        ("/v1/datasets/nope/rows", 404),
    ],
)
def test_first_rows_errors_are_problems(api: httpx.Client, path: str, status: int) -> None:
    response = api.get(path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
