"""Checks on the built book in `_build/html` (run after `jupyter-book build .`).

Every test is skipped when the book has not been built. The checks: every page in `_toc.yml`
was built; no page loads MathJax, require.js or the widget manager from a CDN (the book must
render offline from `_vendor/`); every finding notebook page shows at least one figure; the
explorer embeds its widgets; and, if Chromium is installed, MathJax really typesets the methods
page and the explorer's dropdowns render, with the network blocked.
"""
from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
CHROMIUM = Path("/usr/bin/chromium")

CDN_HOSTS = ("cdn.jsdelivr.net", "unpkg.com", "cdnjs.cloudflare.com", "cdnjs.com")
# What must come from _vendor/ (a CDN URL naming one of these fails the check). Other CDN
# strings, such as sphinx-thebe's unused THEBE_JS_URL constant, are not loaded when viewing.
VENDORED = re.compile(r"mathjax|require|jupyter-widgets|html-manager", re.I)
URL = re.compile(r"""https?://[^\s"'<>)]+""")
SCRIPT_SRC = re.compile(r"""<script\b[^>]*\bsrc\s*=\s*["']([^"']+)["']""", re.I)
IMG_SRC = re.compile(r"""<img\b[^>]*\bsrc\s*=\s*["']([^"']+)["']""", re.I)


@pytest.fixture(autouse=True)
def _require_built_book():
    if not (HTML / "index.html").is_file():
        pytest.skip("book not built: run `jupyter-book build . -W -n --keep-going` first "
                    f"({HTML / 'index.html'} does not exist)")


def toc_pages() -> list[str]:
    """Document names (no extension) of every page listed in _toc.yml."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                pages.append(entry["file"])
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    walk(toc.get("chapters"))
    for part in toc.get("parts") or []:
        walk(part.get("chapters"))
    return [re.sub(r"\.(md|ipynb)$", "", p) for p in pages]


def built_pages() -> list[Path]:
    return sorted(p for p in HTML.rglob("*.html")
                  if not {"_static", "_sources", "_images"} & set(p.relative_to(HTML).parts))


def local_target(page: Path, src: str) -> Path:
    return (page.parent / unquote(urlsplit(src).path)).resolve()


def test_every_toc_page_is_built():
    missing = [p for p in toc_pages() if not (HTML / f"{p}.html").is_file()]
    assert not missing, f"pages in _toc.yml without HTML output: {missing}"


def test_no_cdn_for_mathjax_require_or_widgets():
    offenders = []
    for page in built_pages():
        for url in URL.findall(page.read_text(encoding="utf-8", errors="replace")):
            if any(host in url for host in CDN_HOSTS) and VENDORED.search(url):
                offenders.append(f"{page.relative_to(HTML)}: {url}")
    assert not offenders, "pages fetch vendored JS from a CDN:\n" + "\n".join(offenders)


def test_scripts_are_local_and_exist():
    problems = []
    for page in built_pages():
        for src in SCRIPT_SRC.findall(page.read_text(encoding="utf-8", errors="replace")):
            if re.match(r"^(https?:)?//", src):
                problems.append(f"{page.relative_to(HTML)}: remote script {src}")
            elif not local_target(page, src).is_file():
                problems.append(f"{page.relative_to(HTML)}: missing script {src}")
    assert not problems, "\n".join(problems)


def test_vendored_mathjax_is_used():
    page = HTML / "book" / "methods.html"
    if not page.is_file():
        pytest.skip("book/methods.html not built")
    srcs = SCRIPT_SRC.findall(page.read_text(encoding="utf-8"))
    mathjax = [s for s in srcs if "tex-mml-chtml.js" in s]
    assert mathjax, "methods page loads no MathJax (does it still contain math?)"
    assert all("_static/mathjax/" in s for s in mathjax), mathjax


def test_notebook_pages_have_figures():
    pages = sorted((HTML / "notebooks").glob("*.html")) if (HTML / "notebooks").is_dir() else []
    if not pages:
        pytest.skip("no notebook pages in _build/html/notebooks/ yet")
    problems = []
    for page in pages:
        srcs = [s for s in IMG_SRC.findall(page.read_text(encoding="utf-8"))
                if not s.startswith("data:")]
        broken = [s for s in srcs if not local_target(page, s).is_file()]
        if not srcs:
            problems.append(f"{page.name}: no <img> (no figure rendered)")
        if broken:
            problems.append(f"{page.name}: images whose file is missing: {broken}")
    assert not problems, "\n".join(problems)


def offline_dom(page: Path) -> str:
    """The page's DOM after scripts ran in headless Chromium with the network blocked."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium)")
    if not page.is_file():
        pytest.skip(f"{page.relative_to(HTML)} not built")
    with tempfile.TemporaryDirectory() as profile_dir:
        cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", f"--user-data-dir={profile_dir}",
               "--host-resolver-rules=MAP * ~NOTFOUND",  # no network: only _static/ can serve
               "--virtual-time-budget=5000", "--dump-dom", page.as_uri()]
        dom = subprocess.run(cmd, capture_output=True, text=True, timeout=90).stdout
    assert "<body" in dom, "chromium returned no DOM"
    return dom


def test_explorer_widgets_are_embedded_and_load_after_require():
    page = HTML / "book" / "explorer.html"
    if not page.is_file():
        pytest.skip("book/explorer.html not built")
    html = page.read_text(encoding="utf-8")
    assert 'type="application/vnd.jupyter.widget-view+json"' in html, "no widget view embedded"
    assert 'type="application/vnd.jupyter.widget-state+json"' in html, "no widget state embedded"
    srcs = [urlsplit(s).path for s in SCRIPT_SRC.findall(html)]
    order = [s for s in srcs if s.endswith(("/require.js", "/embed-amd.js"))]
    assert len(order) == 2 and order[0].endswith("/require.js"), f"require.js must load before embed-amd.js: {order}"
    assert IMG_SRC.search(html), "the explorer's static default figure is missing"


def test_explorer_widgets_render_offline_in_chromium():
    dom = offline_dom(HTML / "book" / "explorer.html")
    assert "widget-dropdown" in dom and dom.count("<select") >= 5, "the explorer's dropdowns did not render"


def test_mathjax_renders_offline_in_chromium():
    dom = offline_dom(HTML / "book" / "methods.html")
    assert "<mjx-container" in dom, "MathJax did not typeset the methods page offline"
    assert "<mjx-merror" not in dom, "MathJax reported a TeX error on the methods page"


def test_vendor_folder_is_present():
    # The build copies _vendor/ into _static/; a missing _vendor/ would leave pages without math.
    for rel in ("mathjax/es5/tex-mml-chtml.js", "require.js", "html-manager/embed-amd.js"):
        assert (HTML / "_static" / rel).is_file(), f"_static/{rel} missing: is _vendor/ committed?"
