"""The built book in a real browser: headless Chromium, driven through its DevTools protocol, opens pages of
the tiny study's book (served over HTTP, as a reader's web server would) and checks what a reader sees:
typeset mathematics, proofs, exercises, figures that load, collapsed code, tables without an index,
and a search that finds the methods."""

import functools
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import websocket

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
TIMEOUT = 30  # seconds for the browser to start and for a page to settle

# Facts about the page, read once it has loaded, its images have arrived and MathJax has typeset it.
INSPECT = r"""(async () => {
  const images = [...document.images];
  images.forEach(image => { image.loading = "eager"; });
  await Promise.all(images.map(image => image.complete ? null : new Promise(done => {
    image.addEventListener("load", done); image.addEventListener("error", done);
  })));
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  const text = document.body.innerText;
  const shown = element => element.getClientRects().length > 0;
  const article = document.querySelector("article.bd-article") || document.body;
  const right = article.getBoundingClientRect().right + 1;
  const tables = [...document.querySelectorAll("table.dataframe")];
  return {
    rawMath: ["\\(", "\\[", "$$"].filter(delimiter => text.includes(delimiter)),
    math: document.querySelectorAll(".math").length,
    typeset: document.querySelectorAll("mjx-container").length,
    untypeset: [...document.querySelectorAll(".math")].filter(e => !e.querySelector("mjx-container")).length,
    texErrors: document.querySelectorAll("mjx-merror").length,
    propositions: document.querySelectorAll("div.proof.proposition.admonition").length,
    proofs: document.querySelectorAll("div.proof.admonition:not(.proposition):not(.definition)").length,
    exercises: document.querySelectorAll("div.exercise.admonition").length,
    images: images.length,
    broken: images.filter(image => !(image.naturalWidth > 0)).map(image => image.getAttribute("src")),
    figures: document.querySelectorAll("figure").length,
    unnumbered: [...document.querySelectorAll("figure")].filter(f => !f.querySelector(".caption-number")).length,
    collapsed: document.querySelectorAll(".cell.tag_hide-input details:not([open]) > .cell_input").length,
    hideInput: document.querySelectorAll(".cell.tag_hide-input").length,
    parameters: [...document.querySelectorAll(".cell.tag_parameters .cell_input")].filter(shown).length,
    tables: tables.length,
    indexCells: tables.reduce((n, table) => n + table.querySelectorAll("tbody th").length, 0),
    overflowing: tables.filter(table => {
      const box = table.parentElement;
      const scrolls = ["auto", "scroll"].includes(getComputedStyle(box).overflowX);
      return box.getBoundingClientRect().right > right || (!scrolls && table.scrollWidth > box.clientWidth + 1);
    }).length,
  };
})()"""

# Sphinx's search page: finished when its title turns to "Search Results"; the pages it found.
SEARCH_DONE = "(document.querySelector('#search-results h2') || {}).innerText === 'Search Results'"
SEARCH_RESULTS = "[...document.querySelectorAll('#search-results ul.search li a')].map(a => a.getAttribute('href'))"


def find_browser() -> str:
    """Chromium (or Chrome) on the PATH: fails under CI (``$CI`` set) when missing, else skips."""
    for name in BROWSERS:
        if path := shutil.which(name):
            return path
    message = ("no Chromium for the browser test of the book; install it (Debian or Ubuntu: "
               "`apt-get install chromium`) or put chromium on the PATH")
    if os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}:
        pytest.fail(message)
    pytest.skip(message)


class Page:
    """One browser tab, driven through the Chrome DevTools protocol over its WebSocket."""

    def __init__(self, url: str):
        self.socket = websocket.create_connection(url, timeout=TIMEOUT, suppress_origin=True)
        self.calls = 0

    def call(self, method: str, **params) -> dict:
        self.calls += 1
        self.socket.send(json.dumps({"id": self.calls, "method": method, "params": params}))
        while True:  # events arrive between the answers; skip them
            message = json.loads(self.socket.recv())
            if message.get("id") == self.calls:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"the page's script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str, ready: str = "true") -> dict:
        """Load ``url``, wait until it has loaded and ``ready`` (a JavaScript expression) holds, and inspect it."""
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + TIMEOUT
        while not self.evaluate(f"location.href === {json.dumps(url)} && document.readyState === 'complete' "
                                f"&& Boolean({ready})"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url}: still not ({ready}) after {TIMEOUT} s")
            time.sleep(0.1)
        return self.evaluate(INSPECT)

    def close(self):
        self.socket.close()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """A headless Chromium with one open tab; skips (or fails under CI) when there is no Chromium, before
    the book is built."""
    executable = find_browser()
    profile = tmp_path_factory.mktemp("chromium")
    process = subprocess.Popen(
        [executable, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--no-default-browser-check", "--disable-extensions", "--window-size=1280,1024",
         f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    page = None
    try:
        port_file = profile / "DevToolsActivePort"  # Chromium writes the port it chose here
        deadline = time.monotonic() + TIMEOUT
        while not (port_file.exists() and port_file.read_text().strip()):
            assert process.poll() is None, f"{executable} exited with code {process.returncode}"
            assert time.monotonic() < deadline, f"{executable} did not open its DevTools port in {TIMEOUT} s"
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=TIMEOUT) as answer:
            tabs = [tab for tab in json.load(answer) if tab["type"] == "page"]
        page = Page(tabs[0]["webSocketDebuggerUrl"])
        page.call("Page.enable")
        yield page
    finally:
        if page is not None:
            page.close()
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def site(browser, tiny_book):
    """The tiny study's book served over HTTP from a local thread; its address."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(tiny_book)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def assert_typeset(page: dict):
    assert page["math"] > 0 and page["typeset"] > 0, page
    assert page["untypeset"] == 0 and page["texErrors"] == 0, page
    assert not page["rawMath"], f"TeX delimiters left in the visible text: {page['rawMath']}"


def assert_images_load(page: dict):
    assert not page["broken"], f"images that did not load: {page['broken']}"


@pytest.mark.slow
def test_theory_page_shows_typeset_mathematics_propositions_and_proofs(browser, site):
    page = browser.open(f"{site}/book/theory.html")
    assert_typeset(page)
    assert page["propositions"] > 0 and page["proofs"] > 0, page
    assert_images_load(page)


@pytest.mark.slow
def test_metric_definitions_page_shows_typeset_mathematics(browser, site):
    page = browser.open(f"{site}/book/metrics.html")
    assert_typeset(page)
    assert_images_load(page)


@pytest.mark.slow
def test_result_chapter_opens_with_numbered_figures_collapsed_code_and_formatted_tables(browser, site):
    page = browser.open(f"{site}/book/generated/results/synthetic_vgg11_03_aopc.html")
    assert page["images"] >= 2 and page["figures"] >= 2, page
    assert_images_load(page)
    assert page["unnumbered"] == 0, "every figure has a numbered caption"
    assert page["hideInput"] > 0 and page["collapsed"] == page["hideInput"], page
    assert page["parameters"] == 1, "the parameters cell is shown"
    assert page["tables"] > 0 and page["indexCells"] == 0, page
    assert page["overflowing"] == 0, "a wide table scrolls inside its box"


@pytest.mark.slow
def test_summary_pages_show_their_figures_and_tables(browser, site):
    for name in ("generated/summary", "summary"):
        page = browser.open(f"{site}/book/{name}.html")
        assert page["images"] > 0 and page["tables"] > 0, (name, page)
        assert_images_load(page)
        assert page["indexCells"] == 0 and page["overflowing"] == 0, (name, page)
        assert not page["rawMath"], (name, page["rawMath"])


@pytest.mark.slow
def test_search_finds_the_methods(browser, site):
    browser.open(f"{site}/search.html?q=HiResCAM", ready=SEARCH_DONE)
    found = browser.evaluate(SEARCH_RESULTS)
    assert any(link.startswith("book/theory.html") for link in found), found


@pytest.mark.slow
def test_the_theory_and_metric_chapters_have_exercises(browser, site):
    pages = {name: browser.open(f"{site}/book/{name}.html") for name in ("theory", "metrics")}
    assert all(page["exercises"] > 0 for page in pages.values()), {n: p["exercises"] for n, p in pages.items()}
