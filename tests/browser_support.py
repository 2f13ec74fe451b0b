"""What the browser tests share: Debian's Chromium under Playwright, where screenshots go, a page probe."""

import importlib.util
import os

from conftest import REPO

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RESULTS = os.path.join(REPO, "tests", "results")        # screenshots for a reviewer (git-ignored)
AXE = os.path.join(REPO, "tests", "web", "node_modules", "axe-core", "axe.min.js")      # npm ci --prefix tests/web
# axe-core's critical and serious violations of the page, one line each (rule, impact, where)
AXE_RUN = r"""async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.filter((v) => v.impact === "critical" || v.impact === "serious")
    .map((v) => v.id + " (" + v.impact + "): " + v.nodes.map((n) => n.target.join(" ")).join(", "));
}"""

# Every visible text of the page, whether each form field has a label that names it, the page's width.
PAGE_PROBE = r"""() => {
  const visible = (node) => node.offsetParent !== null;
  const fields = Array.from(document.querySelectorAll("input, select")).filter(visible);
  const unlabelled = fields.filter((f) => !(f.labels && f.labels.length && f.labels[0].textContent.trim()));
  const doc = document.documentElement;
  const identifiers = Array.from(document.querySelectorAll('[translate="no"]')).filter(visible)
    .map((node) => node.innerText.trim()).filter((text) => text);
  return {text: document.body.innerText, identifiers, lang: doc.lang, unlabelled: unlabelled.map((f) => f.id),
          fields: fields.length, scrollWidth: doc.scrollWidth, innerWidth: window.innerWidth};
}"""


def browser_ready(*files):
    """Chromium and Playwright are installed (and any of ``files`` the test injects into pages)."""
    assert os.path.exists(CHROMIUM), "chromium missing: run `make test` (Debian package chromium)"
    assert importlib.util.find_spec("playwright"), "playwright missing: run `make test` (pip extra test)"
    for path in files:
        assert os.path.exists(path), "%s missing: run `make test` (npm ci --prefix tests/web)" % path


async def axe(page):
    """axe-core injected into ``page``: its critical and serious violations (an empty list is a pass)."""
    await page.add_script_tag(path=AXE)
    return await page.evaluate(AXE_RUN)


def shot(name):
    """Where the screenshot ``name`` goes."""
    os.makedirs(RESULTS, exist_ok=True)
    return os.path.join(RESULTS, name)
