"""The static course: an executed lesson rendered to HTML with its figure, offline math, and an index with claims."""
import os
import re

import pytest

from course_lib import site

CHROMIUM = os.environ.get("COURSE_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def tour_site(tmp_path_factory):
    os.environ["COURSE_FAST"] = "1"
    out = tmp_path_factory.mktemp("site")
    index = site.build_site(str(out), lessons=["0"])
    return out, index


def test_site_renders_the_tour_with_its_figure_and_claims(tour_site):
    out, index = tour_site
    page = (out / "00_tour.html").read_text()
    assert re.search(r'<img[^>]+src="data:image/png;base64,', page), "no figure in the rendered lesson"
    assert re.search(r'<img[^>]+alt="[^"]*0\.1\.early-match', page), "the figure has no text alternative"
    assert "Traceback" not in page
    text = open(index).read()
    assert 'href="00_tour.html"' in text
    for cid in ("0.1.early-match", "0.1.fast-first", "0.1.kernel-moves", "0.1.held-out"):
        assert cid in text, f"the index does not list claim {cid}"
    from course_lib import links

    addr = links.declared()
    assert links.binder_url(addr["repository"], addr["branch"], "lessons/00_tour.ipynb").replace("&", "&amp;") in text
    assert links.colab_url(addr["repository"], addr["branch"], "lessons/00_tour.ipynb") in text
    assert not re.search(r"https?:[^\"' ]*mathjax", page, re.I) and 'src="mathjax/MathJax.js' in page
    assert (out / "mathjax" / "MathJax.js").exists()


@pytest.mark.browser
def test_site_math_renders_without_a_network(tour_site):
    """Opened from disk with every request outside file:// refused, the formulas are typeset: no raw $...$."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI", "").lower() == "true":
            raise RuntimeError(f"Chromium not found at {CHROMIUM}")
        pytest.skip("Chromium not installed")
    playwright = pytest.importorskip("playwright.sync_api")
    out, _ = tour_site
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        ctx = b.new_context()
        blocked = []
        ctx.route("**/*", lambda r: r.continue_() if r.request.url.startswith(("file://", "data:", "blob:"))
                  else (blocked.append(r.request.url), r.abort()))
        page = ctx.new_page()
        page.goto("file://" + str(out / "00_tour.html"))
        page.wait_for_function("window.MathJax && MathJax.Hub && MathJax.Hub.queue.pending === 0 && "
                               "document.querySelectorAll('.MathJax, .MathJax_Display, .MathJax_SVG').length > 0",
                               timeout=60_000)
        text = page.evaluate("document.querySelector('main, body').innerText")
        rendered = page.evaluate("document.querySelectorAll('.MathJax, .MathJax_Display').length")
        b.close()
    raw = re.findall(r"\$[^$\n]{1,40}\$", text)
    assert rendered > 10, f"only {rendered} formulas typeset"
    assert not raw, f"raw TeX left on the page: {raw[:5]}"
