"""Checks on the built book in `_build/html` (run after `jupyter-book build .`).

Every test is skipped when the book has not been built. The checks: every page in `_toc.yml`
was built; no page loads MathJax, require.js or the widget manager from a CDN (the book must
render offline from `_vendor/`); every finding notebook page shows at least one figure; the
explorer embeds its widgets; and, if Chromium is installed, MathJax really typesets the methods
page and the explorer's dropdowns render, with the network blocked; and, in a 1300 x 900 frame,
no table or figure on a finding page or the scorecard is wider than the content column (unless it
scrolls inside its own box), no verdict label is cut off, and each finding page's verdict box is on
the first screen.
"""
from __future__ import annotations

import functools
import html
import json
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


def chromium(profile_dir: str, *flags: str) -> list[str]:
    """The headless Chromium command with the network blocked (only local files load), then `flags`."""
    return [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile_dir}",
            "--host-resolver-rules=MAP * ~NOTFOUND", *flags]


def require_chromium_and(page: Path) -> None:
    """Skip, saying why, unless Chromium is installed and `page` is built."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium): browser checks skipped")
    if not page.is_file():
        pytest.skip(f"{page.relative_to(HTML)} not built")


def offline_dom(page: Path) -> str:
    """The page's DOM after scripts ran in headless Chromium with the network blocked."""
    require_chromium_and(page)
    with tempfile.TemporaryDirectory() as profile_dir:
        cmd = chromium(profile_dir, "--virtual-time-budget=5000", "--dump-dom", page.as_uri())
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


# --- layout at 1300 x 900 (issue 14): nothing wider than the content column, the answer on the first screen ---

WIDTH, HEIGHT = 1300, 900
# Runs in a wrapper page that holds the book page in a 1300 x 900 frame; writes what it measured into #result.
MEASURE = """
function visibleBox(el, article) {
  for (let a = el.parentElement; a && a !== article; a = a.parentElement) {
    if (['auto', 'scroll', 'hidden'].includes(getComputedStyle(a).overflowX)) return a.getBoundingClientRect();
  }
  return el.getBoundingClientRect();
}
function measure(frame) {
  const doc = frame.contentDocument, win = frame.contentWindow;
  const article = doc.querySelector('article.bd-article');
  const col = article.getBoundingClientRect();
  const wide = [];
  for (const el of article.querySelectorAll('table, img, figure, svg')) {
    const box = visibleBox(el, article), own = el.getBoundingClientRect();
    if (own.width === 0) continue;
    if (box.right > col.right + 1 || box.left < col.left - 1)
      wide.push(`${el.tagName.toLowerCase()} ${Math.round(box.width)}px (column ${Math.round(col.width)}px): ` +
                (el.getAttribute('src') || el.textContent.trim().slice(0, 60)));
  }
  const hidden = [];
  for (const badge of article.querySelectorAll('table .sd-badge')) {
    const b = badge.getBoundingClientRect(), box = visibleBox(badge, article);
    if (b.right > col.right + 1 || b.right > box.right + 1) hidden.push(badge.textContent);
  }
  const title = doc.querySelector('.admonition.verdict > .admonition-title');
  return {column: col.width, wide: wide, hidden_badges: hidden, screen: win.innerHeight,
          verdict_bottom: title ? title.getBoundingClientRect().bottom : null,
          verdict_label_bottom: (() => { const b = doc.querySelector('.admonition.verdict .sd-badge');
                                         return b ? b.getBoundingClientRect().bottom : null; })()};
}
"""


@functools.lru_cache(maxsize=None)
def layout(page: Path) -> dict:
    """What MEASURE finds on `page` shown in a 1300 x 900 frame of headless Chromium (network blocked)."""
    require_chromium_and(page)
    with tempfile.TemporaryDirectory() as tmp:
        wrapper = Path(tmp) / "wrapper.html"
        wrapper.write_text(
            f'<html><body style="margin:0"><iframe id="f" src="{page.as_uri()}" width="{WIDTH}" height="{HEIGHT}" '
            f'style="border:0"></iframe><pre id="result"></pre><script>{MEASURE}'
            'document.getElementById("f").addEventListener("load", () => setTimeout(() => {'
            'try { document.getElementById("result").textContent = JSON.stringify(measure(document.getElementById("f"))); }'
            'catch (e) { document.getElementById("result").textContent = "ERROR " + e; } }, 1500));'
            '</script></body></html>')
        cmd = chromium(f"{tmp}/profile", "--allow-file-access-from-files", f"--window-size={WIDTH + 20},{HEIGHT + 100}",
                       "--virtual-time-budget=10000", "--dump-dom", wrapper.as_uri())
        dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'<pre id="result">(.*?)</pre>', dom, re.S)
    assert found and found.group(1).startswith("{"), f"no measurement from Chromium: {found.group(1) if found else dom[-500:]}"
    return json.loads(html.unescape(found.group(1)))


def finding_pages() -> list[str]:
    return [p for p in toc_pages() if p.startswith("notebooks/")]


@pytest.mark.parametrize("name", [*finding_pages(), "book/scorecard"])
def test_tables_and_figures_fit_the_column_at_1300px(name):
    found = layout(HTML / f"{name}.html")
    assert not found["wide"], f"{name}: wider than the content column at {WIDTH} px:\n" + "\n".join(found["wide"])
    assert not found["hidden_badges"], f"{name}: verdict labels cut off: {found['hidden_badges']}"


@pytest.mark.parametrize("name", finding_pages())
def test_verdict_box_is_on_the_first_screen(name):
    found = layout(HTML / f"{name}.html")
    assert found["verdict_bottom"] is not None, f"{name}: no verdict box (admonition of class 'verdict')"
    lowest = max(found["verdict_bottom"], found["verdict_label_bottom"] or 0)
    assert lowest <= found["screen"], f"{name}: the verdict box's title or label ends at {lowest:.0f} px, below the first {HEIGHT} px screen"
