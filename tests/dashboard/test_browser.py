"""End to end: `python -m precal dashboard` in a subprocess, driven by headless Chromium.

Visits every page, changes a lab control and checks that the shown prediction updates, and saves a
screenshot of each page to ``screenshots/`` (gitignored). The server always runs on 127.0.0.1 and is
always terminated (its whole process group). Marked ``browser``: run with ``pytest -m browser``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import pytest

from precal.dashboard.settings import ENV_CACHE

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "screenshots"
CHROMIUM = os.environ.get("PRECAL_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("PRECAL_CHROMEDRIVER", "/usr/bin/chromedriver")
CHROME_ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,1000")
PAGES = ["", "overview", "explorer", "lab", "embeddings", "robustness", "training"]
START_TIMEOUT = 120.0
PAGE_TIMEOUT = 180.0
TEST_CACHE = Path(tempfile.mkdtemp(prefix="precal-browser-cache-"))
"""The test servers' cache folder: tests never write into the checkout's own caches."""
atexit.register(shutil.rmtree, TEST_CACHE, True)

pytestmark = pytest.mark.browser


def _skip_reason() -> Optional[str]:
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        return f"chromium not found at {CHROMIUM} (set PRECAL_CHROMIUM)"
    if not Path(CHROMEDRIVER).exists():
        return f"chromedriver not found at {CHROMEDRIVER} (set PRECAL_CHROMEDRIVER)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(checkpoints: List[Path], port: int, log: Path, warm_up: bool = False,
                 cache: Optional[Path] = None) -> subprocess.Popen:
    """`python -m precal dashboard --headless` in its own process group (so all of it can be stopped).
    ``cache``: the server's cache folder (default: the dashboard's own, which the benchmark measures with)."""
    cmd = [sys.executable, "-m", "precal", "dashboard", "--headless", "--port", str(port), "--address", "127.0.0.1"]
    for c in checkpoints:
        cmd += ["--checkpoint", str(c)]
    env = dict(os.environ)
    if cache is not None:
        env[ENV_CACHE] = str(cache)
    if not warm_up:
        env["PRECAL_DASHBOARD_WARMUP"] = "0"
    return subprocess.Popen(cmd, cwd=str(ROOT), env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop_server(proc: subprocess.Popen) -> None:
    """Terminate the launcher and the Streamlit server under it (the whole process group)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    else:  # the launcher is gone; make sure nothing of its group survives
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


HEALTH_POLL_S = 0.02
"""Between two health checks of a starting server. Short, because the benchmark times a start from
the launch to the complete page, and a browser opened by Streamlit itself (``precal dashboard``
without ``--headless``) asks as soon as the server is up: polling every 0.3 s added up to 0.3 s that
no user waits (measured: the harness saw the server 0.16-0.24 s after it answered)."""


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = START_TIMEOUT) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"the dashboard exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(HEALTH_POLL_S)
    raise TimeoutError(f"the dashboard did not answer on port {port} within {timeout:.0f} s")


def make_driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in CHROME_ARGS:
        opts.add_argument(a)
    # A profile of its own: every driver is a fresh browser (no cookies, storage or session of another).
    profile = tempfile.mkdtemp(prefix="precal-chromium-")
    atexit.register(shutil.rmtree, profile, True)
    opts.add_argument(f"--user-data-dir={profile}")
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


BUSY_JS = """
const status = document.querySelector('[data-testid="stStatusWidget"]');
const title = document.querySelector('[data-testid="stMain"] h1');
const busy = document.querySelector('[data-testid="stSpinner"], [data-testid="stSkeleton"], [data-testid="stProgress"]');
return (status !== null && status.innerText.trim().length > 0) || title === null || busy !== null;
"""


def wait_page_done(driver, timeout: float = PAGE_TIMEOUT, quiet_polls: int = 3) -> None:
    """Until the page has a title, no spinner and no 'Running…' status for a few polls in a row."""
    end = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < end:
        quiet = 0 if driver.execute_script(BUSY_JS) else quiet + 1
        if quiet >= quiet_polls:
            return
        time.sleep(0.25)
    raise TimeoutError("the page did not finish rendering")


def wait_until(predicate: Callable[[], bool], timeout: float = 60.0, poll: float = 0.05) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(poll)
    raise TimeoutError("condition not met")


def page_errors(driver) -> List[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('[data-testid=\"stException\"]'))"
        ".map(e => e.innerText.slice(0, 400));")


def screenshot(driver, path: Path) -> None:
    """Full-length screenshot: grow the window to the page's height first."""
    height = driver.execute_script(
        "let h = 0; for (const e of document.querySelectorAll('[data-testid=\"stMain\"], "
        "[data-testid=\"stMainBlockContainer\"], section, main')) h = Math.max(h, e.scrollHeight); return h;")
    driver.set_window_size(1400, max(1000, min(int(height or 1000) + 120, 8000)))
    time.sleep(0.8)
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    driver.set_window_size(1400, 1000)


def lab_status(driver) -> str:
    """The lab's status line and prediction cards (what a user reads after changing a control)."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('[data-testid=\"stMarkdownContainer\"]'))"
        ".map(e => e.innerText).filter(t => t.includes('update took') || t.includes('probability'))"
        ".join(' | ');")


def click_radio_option(driver, option: str, nth: int) -> None:
    """Click the option labelled ``option`` of the ``nth`` radio group that has such an option."""
    from selenium.webdriver.common.by import By

    groups = [g for g in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stRadio"]') if option in g.text]
    target = next(lab for lab in groups[nth].find_elements(By.TAG_NAME, "label") if lab.text.strip() == option)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", target)
    target.click()


def serve_tiny(names: List[str], log: str) -> Iterator[int]:
    """A dashboard server on the named tiny checkpoints (skipped without Chromium); yields its port."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    from tests.dashboard.fixtures import tiny_checkpoints

    tiny = tiny_checkpoints()
    port = free_port()
    SHOTS.mkdir(exist_ok=True)
    proc = start_server([tiny[n] for n in names], port, SHOTS / log, cache=TEST_CACHE)
    try:
        wait_healthy(port, proc)
        yield port
    finally:
        stop_server(proc)


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    yield from serve_tiny(["on", "off"], "browser_server.log")


@pytest.fixture(scope="module")
def driver(server):
    drv = make_driver()
    try:
        yield drv
    finally:
        drv.quit()


VEGA_DRAWN_JS = """
return [...document.querySelectorAll('[data-testid="stVegaLiteChart"] canvas')].filter(c => {
  if (c.width === 0 || c.height === 0) return false;
  const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  for (let i = 0; i < px.length; i += 4) if (px[i + 3] > 0 && (px[i] < 200 || px[i + 1] < 200 || px[i + 2] < 200)) return true;
  return false;
}).length;
"""
"""How many Vega-Lite charts (drawn on canvases) show something darker than near-white."""

VEGA_CHARTS = {"overview": 3, "lab": 5}
"""Pages drawn with Vega-Lite and how many of their charts are visible without a click: the
overview (alpha violins, alpha per class, the first confusion matrix) and the lab (probabilities,
gates and cues, their change, the drawn input, projection)."""


def test_every_page_renders_in_chromium(server, driver):
    for page in PAGES:
        driver.get(f"http://127.0.0.1:{server}/{page}")
        wait_page_done(driver)
        assert not page_errors(driver), f"{page or 'start'}: {page_errors(driver)}"
        if page in VEGA_CHARTS:
            wait_until(lambda: driver.execute_script(VEGA_DRAWN_JS) >= VEGA_CHARTS[page], timeout=30)
        screenshot(driver, SHOTS / f"browser_{page or 'start'}.png")


def test_lab_control_updates_the_prediction(server, driver):
    driver.get(f"http://127.0.0.1:{server}/lab")
    wait_page_done(driver)
    before = lab_status(driver)
    assert "no corruption (clean)" in before
    click_radio_option(driver, "remove (mark missing)", 2)  # the third modality: depth
    wait_until(lambda: "depth: removed" in lab_status(driver), timeout=60)
    wait_page_done(driver)
    after = lab_status(driver)
    assert after != before
    assert not page_errors(driver)
    screenshot(driver, SHOTS / "browser_lab_removed.png")


def test_selecting_an_embedding_point_opens_the_explorer(server, driver):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    driver.get(f"http://127.0.0.1:{server}/embeddings")
    wait_page_done(driver)
    chart = driver.find_element(By.CSS_SELECTOR, '[data-testid="stPlotlyChart"]')
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", chart)
    time.sleep(0.5)
    points = chart.find_elements(By.CSS_SELECTOR, ".scatterlayer .trace:last-child .points path")
    assert points, "no points drawn"
    ActionChains(driver).move_to_element(points[0]).click().perform()
    wait_until(lambda: "/explorer" in driver.current_url, timeout=60, poll=0.1)
    wait_page_done(driver)
    assert "Sample explorer" in driver.find_element(By.CSS_SELECTOR, '[data-testid="stMain"] h1').text
    assert not page_errors(driver)
    # back on the embeddings page (same session, via the navigation) the old selection does not bounce us away
    link = next(a for a in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stSidebarNav"] a')
                if "Embeddings" in a.text)
    link.click()
    wait_until(lambda: "/embeddings" in driver.current_url, timeout=30, poll=0.1)
    wait_page_done(driver)
    time.sleep(1.0)
    assert "/embeddings" in driver.current_url


def test_server_is_local_only(server):
    """The dashboard listens on 127.0.0.1 only: the machine's other address is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            own = s.getsockname()[0]
        except OSError:
            own = "127.0.0.1"
    if own.startswith("127."):
        pytest.skip("no non-loopback address on this machine")
    with socket.socket() as s:
        s.settimeout(2)
        assert s.connect_ex((own, server)) != 0


def choose_in_selectbox(driver, label: str, option_text: str) -> None:
    """Open the selectbox labelled ``label`` and click the first option whose text contains ``option_text``."""
    from selenium.webdriver.common.by import By

    box = next(b for b in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stSelectbox"]') if label in b.text or "Data set" in b.text)
    opener = box.find_elements(By.CSS_SELECTOR, 'button[aria-haspopup="listbox"], [data-baseweb="select"]')
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", opener[0])
    opener[0].click()
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, '[role="option"]'), timeout=10)
    option = next(o for o in driver.find_elements(By.CSS_SELECTOR, '[role="option"]')
                  if option_text in o.text)
    option.click()


def selected_pair(driver) -> str:
    return driver.execute_script(
        "const b = [...document.querySelectorAll('[data-testid=\"stSelectbox\"]')]"
        ".find(b => b.innerText.includes('Model pair') || b.innerText.includes('Data set'));"
        "if (!b) return ''; const i = b.querySelector('input'); return i ? i.value : b.innerText;")


@pytest.fixture(scope="module")
def two_pair_server() -> Iterator[int]:
    yield from serve_tiny(["on", "off", "av_on", "av_off"], "browser_two_pairs.log")


def test_a_point_click_opens_the_sample_in_the_same_pair(two_pair_server):
    """Clicking a point of the Embeddings page opens that sample in the explorer of the pair that
    drew it, not of the default pair (whose data set would not even hold the sample)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    drv = make_driver()
    try:
        drv.get(f"http://127.0.0.1:{two_pair_server}/embeddings")
        wait_page_done(drv)
        other = "utd-mhad" if "avletters" in selected_pair(drv) else "avletters"
        choose_in_selectbox(drv, "Model pair", other)
        wait_until(lambda: other in selected_pair(drv), timeout=60)
        wait_page_done(drv)
        chart = drv.find_element(By.CSS_SELECTOR, '[data-testid="stPlotlyChart"]')
        drv.execute_script("arguments[0].scrollIntoView({block: 'center'});", chart)
        time.sleep(0.5)
        points = chart.find_elements(By.CSS_SELECTOR, ".scatterlayer .trace:last-child .points path")
        assert points, "no points drawn"
        ActionChains(drv).move_to_element(points[0]).click().perform()
        wait_until(lambda: "/explorer" in drv.current_url, timeout=60, poll=0.1)
        wait_page_done(drv)
        assert not page_errors(drv)
        assert other in selected_pair(drv), selected_pair(drv)
        screenshot(drv, SHOTS / "browser_point_click_keeps_pair.png")
    finally:
        drv.quit()


def predictions_shown(driver) -> List[str]:
    """The lab's prediction cards as read on screen (model, predicted class, probability)."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('[data-testid=\"stMarkdownContainer\"]'))"
        ".map(e => e.innerText).filter(t => t.includes('prediction on the corrupted input'))"
        ".map(t => t.replace(/\\s+/g, ' ').trim());")


def test_a_shared_lab_url_opens_the_same_view_in_a_fresh_browser(server, driver):
    """Change the lab, copy the address bar, open it in another browser (own profile, own session):
    the same sample, controls and predictions."""
    from urllib.parse import parse_qs, urlparse

    driver.get(f"http://127.0.0.1:{server}/lab")
    wait_page_done(driver)
    click_radio_option(driver, "remove (mark missing)", 2)  # depth removed
    wait_until(lambda: "depth: removed" in lab_status(driver), timeout=60)
    click_radio_option(driver, "swap with another sample", 1)  # skeleton swapped
    wait_until(lambda: "skeleton: swapped" in lab_status(driver), timeout=60)
    wait_page_done(driver)
    wait_until(lambda: "in.skeleton=swap" in driver.current_url, timeout=30)
    url = driver.current_url
    query = parse_qs(urlparse(url).query)
    assert urlparse(url).path == "/lab" and query["in.depth"] == ["remove"] and "sample" in query
    shown = predictions_shown(driver)
    status = lab_status(driver).split(" · update took")[0]
    assert len(shown) == 2

    other = make_driver()
    try:
        other.get(url)
        wait_page_done(other)
        wait_until(lambda: len(predictions_shown(other)) == 2, timeout=60)
        assert not page_errors(other)
        assert predictions_shown(other) == shown
        assert lab_status(other).split(" · update took")[0] == status
        screenshot(other, SHOTS / "browser_shared_lab_url.png")
    finally:
        other.quit()
