"""Every lesson driven in a real browser: JupyterLab + Debian Chromium + Playwright.

For each lesson: open it, run all cells, assert no cell shows an error and every widget rendered,
move the first slider, assert the figure changes, record the latency, press Play on the first time control
and assert its frames change, save screenshots under
``artifacts/browser/`` (or ``$COURSE_ARTIFACTS``). Skipped when Chromium is absent, except in CI
(``CI=true``), where its absence is a failure. Recipe: shared/BROWSER_TESTING.md.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHROMIUM = os.environ.get("COURSE_CHROMIUM", "/usr/bin/chromium")
LESSONS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "lessons", "*.ipynb")))
ARTIFACTS = os.environ.get("COURSE_ARTIFACTS", os.path.join(ROOT, "artifacts", "browser"))
RUN_ALL_TIMEOUT = 240  # s; a lesson's budget is 60 s headless, the browser adds rendering
CHANGE_TIMEOUT = 60

pytestmark = pytest.mark.browser

if not os.path.exists(CHROMIUM):
    if os.environ.get("CI", "").lower() == "true":
        raise RuntimeError(f"Chromium not found at {CHROMIUM}: .ci/run must install it (apt-get install chromium)")
    pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium); browser tests skipped",
                allow_module_level=True)
playwright = pytest.importorskip("playwright.sync_api")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a copy of the lessons, isolated config, shut down at the end."""
    tmp = tmp_path_factory.mktemp("lab")
    course = tmp / "course"
    shutil.copytree(os.path.join(ROOT, "lessons"), course / "lessons")
    env = dict(os.environ, COURSE_FAST="0")  # the learner's default settings, not CI's shortened runs
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTERLAB_SETTINGS_DIR",
                "JUPYTERLAB_WORKSPACES_DIR"):
        env[var] = str(tmp / var.lower())
        os.makedirs(env[var], exist_ok=True)
    settings = tmp / "jupyterlab_settings_dir" / "@jupyterlab"
    for plugin, value in {"docmanager-extension/plugin": {"autosave": False},
                          "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False}}.items():
        path = settings / (plugin + ".jupyterlab-settings")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    token, port = "course-browser-test", _free_port()
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={course}", "--ServerApp.terminals_enabled=False",
           "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.expose_app_in_browser=True"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited: see {tmp / 'server.log'}")
            time.sleep(0.5)
    else:
        raise RuntimeError("JupyterLab did not answer within 60 s")
    yield base, token
    try:
        urllib.request.urlopen(urllib.request.Request(f"{base}/api/shutdown?token={token}", method="POST"), timeout=10)
        proc.wait(timeout=30)
    except Exception:  # noqa: BLE001 - make sure nothing outlives the tests
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


def _wait_idle(page, timeout: float) -> None:
    end = time.time() + timeout
    while time.time() < end:
        busy = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-InputArea-prompt:has-text('[*]')").count()
        idle = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator[data-status='idle']").count()
        if busy == 0 and idle:
            return
        time.sleep(0.5)
    raise AssertionError(f"the notebook was still running after {timeout} s")


def _errors(page) -> list[str]:
    # textContent, not innerText: JupyterLab does not render cells outside the viewport
    panel = ".jp-NotebookPanel:not(.lm-mod-hidden) "
    found = [t for t in page.locator(panel + ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_text_contents()
             if "Error" in t or "Traceback" in t]
    found += [t for t in page.locator(panel + ".widget-html").all_text_contents() if t.strip().startswith("Error:")]
    found += [t for t in page.locator(panel + ".jp-OutputArea-output").all_text_contents() if "Error displaying widget" in t]
    return found


@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_runs_and_reacts_in_the_browser(lab, browser, lesson):
    base, token = lab
    os.makedirs(ARTIFACTS, exist_ok=True)
    stem = lesson[: -len(".ipynb")]
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    # hermetic: nothing but the local server
    context.route("**/*", lambda r: r.continue_() if r.request.url.startswith(("http://127.0.0.1", "http://localhost", "ws://", "data:", "blob:")) else r.abort())
    page = context.new_page()
    try:
        page.goto(f"{base}/lab/tree/lessons/{lesson}?reset&token={token}")
        page.wait_for_selector(".jp-NotebookPanel:not(.lm-mod-hidden)", timeout=90_000)
        page.wait_for_selector("#jp-main-statusbar >> text=Idle", timeout=90_000)
        t0 = time.time()
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        page.wait_for_selector(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator[data-status='busy']", timeout=30_000)
        _wait_idle(page, RUN_ALL_TIMEOUT)
        run_all_s = time.time() - t0
        panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
        prompts = panel.locator(".jp-CodeCell .jp-InputArea-prompt").all_text_contents()  # off-screen cells have no inner text
        assert prompts and all(p.strip() not in ("[ ]:", "[*]:", "") for p in prompts), f"cells not all executed: {prompts}"
        assert not _errors(page), _errors(page)
        # every dashboard rendered as a widget (a front-end/kernel mismatch shows text or an error instead)
        assert panel.locator(".jupyter-widgets.widget-vbox").count() >= 1, "no widget rendered"
        assert not panel.locator(".jp-OutputArea-output:has-text('VBox(children=')").count(), "widget shown as text"
        page.screenshot(path=os.path.join(ARTIFACTS, f"{stem}-after-run.png"))

        # move the first slider and time the redraw of the figure in the same output area
        cell = panel.locator(".jp-CodeCell", has=page.locator(".widget-slider [role=slider]")).first
        slider = cell.locator(".widget-slider [role=slider]").first
        slider.scroll_into_view_if_needed()
        images = cell.locator(".jp-OutputArea-output img")
        assert images.count() >= 1, "the dashboard shows no figure"
        before = [images.nth(i).get_attribute("src") for i in range(images.count())]
        now, top = slider.get_attribute("aria-valuenow"), slider.get_attribute("aria-valuemax")
        key = "ArrowLeft" if now == top else "ArrowRight"
        for _ in range(3):  # a key press can be lost while the page is still settling: press again until it moves
            slider.focus()
            t1 = time.time()
            page.keyboard.press(key)
            deadline = time.time() + 5
            while slider.get_attribute("aria-valuenow") == now and time.time() < deadline:
                time.sleep(0.05)
            if slider.get_attribute("aria-valuenow") != now:
                break
        assert slider.get_attribute("aria-valuenow") != now, "the slider did not move on a key press"
        latency = None
        while time.time() - t1 < CHANGE_TIMEOUT:
            after = [images.nth(i).get_attribute("src") for i in range(images.count())]
            if after != before:
                latency = time.time() - t1
                break
            time.sleep(0.05)
        if latency is None:  # keep what the page showed, for whoever reads the CI artifacts
            cell.screenshot(path=os.path.join(ARTIFACTS, f"{stem}-no-change.png"))
        assert latency is not None, f"the figure did not change within {CHANGE_TIMEOUT} s of moving the slider"
        _wait_idle(page, CHANGE_TIMEOUT)
        time.sleep(0.5)
        assert not _errors(page), _errors(page)
        cell.screenshot(path=os.path.join(ARTIFACTS, f"{stem}-after-change.png"))

        # the time control: press Play and watch the state panel and the cursor move (frames change)
        frames_seen = None
        play_cell = panel.locator(".jp-CodeCell", has=page.locator(".widget-play")).first
        if panel.locator(".widget-play").count():
            play_cell.scroll_into_view_if_needed()
            imgs = play_cell.locator(".jp-OutputArea-output img")
            seen = {tuple(imgs.nth(i).get_attribute("src") for i in range(imgs.count()))}
            play_cell.locator(".widget-play button").first.click()
            t2 = time.time()
            while time.time() - t2 < 20 and len(seen) < 4:
                seen.add(tuple(imgs.nth(i).get_attribute("src") for i in range(imgs.count())))
                time.sleep(0.1)
            frames_seen = len(seen) - 1
            assert frames_seen >= 3, f"pressing Play changed the figures {frames_seen} times in 20 s (expected >= 3)"
            play_cell.locator(".widget-play button").nth(1).click()  # pause
            _wait_idle(page, CHANGE_TIMEOUT)
            assert not _errors(page), _errors(page)
            play_cell.screenshot(path=os.path.join(ARTIFACTS, f"{stem}-after-play.png"))
        with open(os.path.join(ARTIFACTS, f"{stem}.json"), "w") as f:
            json.dump({"lesson": lesson, "run_all_s": round(run_all_s, 1), "change_to_figure_s": round(latency, 2),
                       "play_frames_seen": frames_seen}, f)
        print(f"{lesson}: run all {run_all_s:.1f} s, slider -> new figure {latency:.2f} s, play frames {frames_seen}")
    finally:
        context.close()
