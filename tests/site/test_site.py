"""The site: the book builds with -W (warnings are errors), holds every page of the table of contents,
and every page works in a real browser with no network.

Headless Debian Chromium driven by Playwright opens each page from a local server and fails on:
a request that leaves localhost or fails, a console error, a formula MathJax did not typeset, a
broken image. A full-page screenshot of each page is saved under artifacts/screenshots/ (kept by CI).
The navigation lists each chapter's reading page and then its exercise notebook, and the explorers
respond to their sliders without a Python kernel.
"""

import functools
import html.parser
import http.server
import os
import pathlib
import threading
import urllib.parse

import pytest
import yaml

import system_packages

REPO = pathlib.Path(__file__).resolve().parents[2]


def toc_files():
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        for entry in part.get("chapters", []):
            files += [entry["file"]] + [s["file"] for s in entry.get("sections", [])]
    return files


@pytest.mark.slow
def test_every_toc_page_is_built(built_site):
    for page in toc_files():
        assert (built_site / f"{page}.html").is_file(), f"{page}.html missing"


@pytest.mark.slow
def test_student_notebooks_have_a_colab_button_and_no_outputs(built_site):
    for page in toc_files():
        if page.startswith("notebooks/"):
            html = (built_site / f"{page}.html").read_text()
            assert "colab.research.google.com/github/" in html, f"{page}: no Colab launch button"
            assert "cell_output" not in html, f"{page}: the student notebook should be shown unexecuted"


LAUNCH = "Launch interactive content"  # the theme's launch (Colab) button group


@pytest.mark.slow
def test_launch_buttons_only_where_colab_can_open_the_file(built_site):
    """Colab opens .ipynb files: the reading pages (.md, executed at build) get no launch button."""
    for page in toc_files():
        html = (built_site / f"{page}.html").read_text()
        assert (LAUNCH in html) == page.startswith("notebooks/"), f"{page}: launch button {LAUNCH in html}"


@pytest.mark.slow
def test_reading_pages_and_exercises_link_to_each_other(built_site):
    from authoring import registry

    info = registry.info()
    for chapter in registry.chapters():
        notebook = chapter.student_notebook.removesuffix(".ipynb")
        reading = (built_site / chapter.page_html).read_text()
        assert f'href="../{notebook}.html"' in reading, f"{chapter.page_html} does not link to its exercise"
        colab = f"https://colab.research.google.com/github/{'/'.join(info.github)}/blob/{info.branch}/"
        assert f'href="{colab}{chapter.student_notebook}"' in reading, f"{chapter.page_html}: no Colab link"
        exercise = (built_site / f"{notebook}.html").read_text()
        # An absolute address: the link must work in Colab too.
        assert f'href="{info.site_url}{chapter.page_html}"' in exercise, f"{notebook} does not link to its reading page"


@pytest.mark.slow
def test_scripts_are_served_by_the_site(built_site):
    for page in toc_files():
        html = (built_site / f"{page}.html").read_text()
        for needle in ("cdn.jsdelivr", "cdnjs.cloudflare", "unpkg.com/@jupyter-widgets", "mathjax@"):
            assert needle not in html, f"{page} loads {needle} from the network"
    assert (built_site / "vendor" / "mathjax" / "tex-chtml.js").is_file()


def test_every_chapter_page_is_in_the_toc():
    listed = set(toc_files())
    for md in (REPO / "book").glob("[0-9][0-9]-*.md"):
        assert f"book/{md.stem}" in listed, f"book/{md.name} is not in _toc.yml"
    for nb in (REPO / "notebooks").glob("*/*.ipynb"):
        assert f"notebooks/{nb.parent.name}/{nb.stem}" in listed, f"{nb} is not in _toc.yml"


SHOTS = REPO / "artifacts" / "screenshots"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server(built_site):
    handler = functools.partial(_QuietHandler, directory=str(built_site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = system_packages.require("chromium")  # Debian's, never a downloaded browser
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        profile = tmp_path_factory.mktemp("chromium-profile")
        context = p.chromium.launch_persistent_context(str(profile), executable_path=chromium, args=ARGS,
                                                       viewport={"width": 1280, "height": 900})
        yield context
        context.close()


MATH_CHECK = """() => {
  const errors = document.querySelectorAll('mjx-merror').length;
  const typeset = document.querySelectorAll('mjx-container').length;
  const raw = [...document.querySelectorAll('.math')].filter(e => !e.querySelector('mjx-container')).length;
  return {errors, typeset, raw};
}"""
IMAGE_CHECK = """() => [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)"""


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("page", toc_files())
def test_page_renders_offline(server, browser, page):
    problems = []
    tab = browser.new_page()
    tab.on("console", lambda m: m.type == "error" and problems.append(f"console error: {m.text}"))
    tab.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    tab.on("requestfailed", lambda r: problems.append(f"failed request: {r.url}"))

    def guard(route):
        host = urllib.parse.urlparse(route.request.url).hostname
        if host not in ("127.0.0.1", "localhost") and not route.request.url.startswith("data:"):
            problems.append(f"request leaves the site: {route.request.url}")
            return route.abort()
        return route.continue_()

    tab.route("**/*", guard)
    tab.goto(f"{server}/{page}.html", wait_until="networkidle")
    tab.wait_for_function("() => !window.MathJax || !MathJax.startup || MathJax.startup.promise", timeout=20000)
    tab.evaluate("() => window.MathJax && MathJax.startup ? MathJax.startup.promise : null")
    math = tab.evaluate(MATH_CHECK)
    if math["errors"] or math["raw"]:
        problems.append(f"formulas not typeset: {math}")
    broken = tab.evaluate(IMAGE_CHECK)
    if broken:
        problems.append(f"broken images: {broken}")
    SHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SHOTS / (page.replace("/", "__") + ".png")), full_page=True)
    tab.close()
    assert not problems, f"{page}:\n" + "\n".join(problems)


class _NavLinks(html.parser.HTMLParser):
    """The internal links of the left navigation, in document order."""

    def __init__(self):
        super().__init__()
        self.depth, self.links = 0, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if self.depth:
            self.depth += tag == "nav"
            if tag == "a" and "internal" in (attrs.get("class") or ""):
                self.links.append(urllib.parse.urlparse(attrs["href"]).path)
        elif tag == "nav" and "bd-docs-nav" in (attrs.get("class") or ""):
            self.depth = 1

    def handle_endtag(self, tag):
        if self.depth and tag == "nav":
            self.depth -= 1


@pytest.mark.slow
@pytest.mark.parametrize("page", ["book/intro", "book/05-dino"])
def test_navigation_interleaves_reading_pages_and_exercises(built_site, page):
    from authoring import registry

    nav = _NavLinks()
    nav.feed((built_site / f"{page}.html").read_text())
    here = pathlib.PurePosixPath(page).parent
    # A link to the page itself has an empty path ("#"); the others are relative to the page's folder.
    listed = [os.path.normpath(str(here / link))[: -len(".html")] if link else page
              for link in nav.links if link.endswith(".html") or not link]
    expected = [p for c in registry.chapters() for p in (c.page[: -len(".md")], c.student_notebook[: -len(".ipynb")])]
    chapters = [p for p in listed if p in expected]
    assert chapters == expected, f"navigation order on {page}: {chapters}"


def _explorer_state(tab, slug):
    return tab.evaluate("""slug => {
      const root = document.querySelector(`.vit-explorer[data-explorer="${slug}"]`);
      return {src: root.querySelector('img.vit-explorer-picture').src,
              text: root.querySelector('.vit-explorer-text').textContent,
              values: [...root.querySelectorAll('output')].map(o => o.textContent)};
    }""", slug)


@pytest.mark.slow
@pytest.mark.browser
def test_patch_explorer_responds_without_a_kernel(server, browser):
    from vitcourse import widgets

    tab = browser.new_page()
    errors = []
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.goto(f"{server}/book/01-patches.html", wait_until="networkidle")
    before = _explorer_state(tab, "patch-explorer")
    assert widgets.describe_setting(224, 16) in before["text"] and before["values"] == ["224", "16"]
    sliders = tab.locator('.vit-explorer[data-explorer="patch-explorer"] input[type=range]')
    sliders.nth(0).focus()
    tab.keyboard.press("ArrowRight")            # resolution 224 -> 336
    moved = _explorer_state(tab, "patch-explorer")
    assert moved["values"] == ["336", "16"]
    assert widgets.describe_setting(336, 16) in moved["text"]
    assert moved["src"] != before["src"], "the picture did not change"
    sliders.nth(1).focus()
    tab.keyboard.press("ArrowLeft")             # patch 16 -> 14
    again = _explorer_state(tab, "patch-explorer")
    assert widgets.describe_setting(336, 14) in again["text"] and again["src"] != moved["src"]
    tab.close()
    assert not errors, errors


@pytest.mark.slow
@pytest.mark.browser
def test_swin_receptive_field_explorer_responds_without_a_kernel(server, browser):
    tab = browser.new_page()
    tab.goto(f"{server}/book/07-swin.html", wait_until="networkidle")
    before = _explorer_state(tab, "swin-field")
    slider = tab.locator('.vit-explorer[data-explorer="swin-field"] input[type=range]')
    slider.focus()
    tab.keyboard.press("ArrowRight")
    after = _explorer_state(tab, "swin-field")
    tab.close()
    assert int(after["values"][0]) == int(before["values"][0]) + 1
    assert after["src"] != before["src"] and after["text"] != before["text"]
