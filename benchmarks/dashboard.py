"""Dashboard latency: the figures the dashboard issue asks for, against their targets.

    python benchmarks/dashboard.py                                   # checkpoints/ (else tiny fixtures)
    python benchmarks/dashboard.py --checkpoint DIR_calon --checkpoint DIR_caloff [--data DIR]
    python benchmarks/dashboard.py --no-browser                      # skip the Chromium measurements

Measured:

1. lab update: corrupt one sample (a different corruption/severity each run, so nothing is cached)
   and run the calibrated and uncalibrated models on clean + corrupted with their full reports
   (:func:`precal.dashboard.backend.lab.lab_update`), p50/p90 over ``--runs`` runs. Target p50 <= 50 ms.
2. cached projection load: the split's fused pre/post features, projection fitted once, then loaded
   from the on-disk cache with the in-memory LRU cleared (what a server restart pays), per method.
   Target <= 100 ms.
3. placing a new point (a corrupted sample's features) into a projection, per method.
   Target <= 300 ms.
4. app start to first complete page: from launching ``python -m precal dashboard`` to the start
   page (the demo) complete in headless Chromium: title, headline figures, the prepared example
   and, drawn last, the closing paragraph (its keyed container), no spinner.
   Target <= 3 s. ``--starts N`` times only this, N times with a fresh browser each (median);
   ``--then PAGE`` opens PAGE at once after each start and times its first load too.
5. every page's first load: in the same session, click each page in the navigation and wait until
   its title is shown and nothing is running (no spinner, no "Running…"). Target <= 2 s each.
6. browser round trip: in the lab, click a control (remove a modality) and wait until the updated
   prediction text and every chart are on screen; median over several clicks. Target <= 200 ms.
   Measured right after the first page, again once the background UMAP compile has started (it
   runs in the projection worker process for a minute or more) and in the steady state.
   ``--breakdown`` attributes it: the lab with only its controls and prediction text, then with
   each chart or table alone.

The servers keep compiled bytecode from one start to the next, as Python does by default: where the
environment turns that off (``PYTHONDONTWRITEBYTECODE``, set on the reference machine), every start
would compile precal's and the app's sources again (about 0.15 s of the start, which no user's
Python pays twice). The benchmark compiles it first, where Python keeps it (``__pycache__``, ignored by git).

Torch runs single-threaded, as in the dashboard (see precal.dashboard.ui.background.configure_torch).
On a shared machine, run it when the machine is otherwise idle: the numbers are latencies. The
load average is printed before and after, so a busy machine is visible in the output.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's precal (not another installed one) and the test fixtures

from precal.dashboard.backend.data import split_batches
from precal.dashboard.backend.embeddings import FUSED, pre_post_features, projection_key
from precal.dashboard.backend.lab import LabSetting, lab_update
from precal.dashboard.backend.pairs import ModelView, default_checkpoint_dirs, load_checkpoints, pair_checkpoints
from precal.dashboard.backend.running import predict_view
from precal.dashboard.backend import first_paint
from precal.dashboard.settings import UMAP_WARM_UP_DELAY_S, DashboardArgs
from precal.dashboard.ui.start_page import CLOSING_KEY
from precal.data.storage import load_dataset
from precal.evaluation import resolve_data_dir
from precal.models.model import CALIBRATED, UNCALIBRATED


PAGE_NAMES = ("overview", "explorer", "lab", "embeddings", "robustness", "training")
"""Every page but the start page (which is the first complete page), in the navigation's order."""
TARGETS_MS = {"lab update p50": 50.0, "cached projection load": 100.0, "place new point": 300.0,
              "start to first page": 3_000.0, "cold start to first page": 3_000.0,
              **{f"first load: {p}": 2_000.0 for p in PAGE_NAMES},
              "browser round trip": 200.0,
              "browser round trip (during UMAP compile)": 200.0,
              "start to first page (steady state)": 3_000.0, "browser round trip (steady state)": 200.0}


def pick_checkpoints(args) -> List[str]:
    if args.checkpoint:
        return list(args.checkpoint)
    shipped = [str(p) for p in default_checkpoint_dirs()]
    if shipped:
        ckpts, _ = load_checkpoints(shipped)
        pairs = [p for p in pair_checkpoints(ckpts) if p.calibrated is not None and p.uncalibrated is not None]
        if pairs:  # the pair the app opens on (the demo's)
            from precal.dashboard.backend.demo import demo_pair_key

            key = demo_pair_key(pairs)
            pair = next(p for p in pairs if p.key == key)
            return [str(pair.calibrated.path), str(pair.uncalibrated.path)]
    from tests.dashboard.fixtures import tiny_checkpoints

    print("no shipped checkpoint pair found: using the tiny test fixtures (numbers will be optimistic)")
    tiny = tiny_checkpoints()
    return [str(tiny["on"]), str(tiny["off"])]


def pct(values: List[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def bench_backend(paths: List[str], data_arg: Optional[str], split: str, runs: int, methods: List[str]) -> Dict[str, float]:
    from precal.projection import cached_projection, clear_memory_cache
    from precal.robustness.corruptions import corruptions_for

    ckpts, problems = load_checkpoints(paths)
    for p in problems:
        print(f"  skipped {p.path}: {p.message}")
    pair = pair_checkpoints(ckpts)[0]
    data = load_dataset(resolve_data_dir(pair.primary, data_arg, search=[ROOT / "sample_data"]))
    splits = split_batches(pair, data, split)
    views = pair.views()
    schema = pair.primary.schema
    print(f"pair {pair.label}; split {split} ({splits.size} samples); torch threads {torch.get_num_threads()}")
    results: Dict[str, float] = {}

    # 1. lab update
    options = [(m, c.name) for m in schema.modality_names for c in corruptions_for(schema.modality(m).kind)
               if c.name not in ("swap", "remove_absent")]
    rng = np.random.default_rng(0)
    lab_update(views, splits, int(splits.indices[0]), {})  # first call pays one-time costs
    times = []
    for k in range(runs):
        m, c = options[k % len(options)]
        index = int(splits.indices[rng.integers(splits.size)])
        settings = {m: LabSetting(c, int(rng.integers(1, 6)))}
        if k % 5 == 4:
            settings[schema.modality_names[-1]] = LabSetting(remove=True)
        t = time.perf_counter()
        lab_update(views, splits, index, settings, seed=k)
        times.append(1000 * (time.perf_counter() - t))
    results["lab update p50"] = pct(times, 50)
    print(f"lab update: p50 {pct(times, 50):.1f} ms, p90 {pct(times, 90):.1f} ms over {runs} runs")

    # 2 + 3. projections (UMAP's numba code compiled first, as the dashboard's warm-up does)
    if pair.calibrated is not None:
        worker = None
        if "umap" in methods:  # as in the dashboard: UMAP is fitted in the projection worker process
            from precal.dashboard.worker import ProjectionWorker

            worker = ProjectionWorker()
            t = time.perf_counter()
            worker.warm_up().join()
            print(f"UMAP warm-up (numba compile in the projection worker process, done in the background "
                  f"by the dashboard): {time.perf_counter() - t:.1f} s")
        on = predict_view(views[0], splits.batch_for(pair.calibrated))
        off = predict_view(ModelView(UNCALIBRATED, pair.calibrated, False, "off"),
                              splits.batch_for(pair.calibrated))
        pre, post = pre_post_features(FUSED, on, off)
        cache = Path(tempfile.mkdtemp(prefix="precal-bench-proj-"))
        res = lab_update(views, splits, int(splits.indices[0]), {schema.modality_names[0]: LabSetting("gaussian_noise", 5)})
        new_point = res.corrupted[CALIBRATED].fused[None, :]
        loads, places = [], []
        try:
            for method in methods:
                parts = projection_key(pair, split, FUSED)
                t = time.perf_counter()
                fitter = worker.fit if method == "umap" and worker is not None else None
                proj = cached_projection(cache, parts, pre, post, method, 0, fitter=fitter)
                fit = time.perf_counter() - t
                t = time.perf_counter()
                proj.place(new_point)
                place_live = 1000 * (time.perf_counter() - t)
                clear_memory_cache()
                t = time.perf_counter()
                loaded = cached_projection(cache, parts, pre, post, method, 0, fitter=fitter)
                load = 1000 * (time.perf_counter() - t)
                t = time.perf_counter()
                loaded.place(new_point)
                place_loaded = 1000 * (time.perf_counter() - t)
                t = time.perf_counter()
                loaded.place(new_point)
                place_again = 1000 * (time.perf_counter() - t)
                loads.append(load)
                places += [place_live, place_loaded]
                print(f"projection {method:5s}: fit {fit:6.2f} s; cached load (disk) {load:6.1f} ms; "
                      f"place new point: live {place_live:6.1f} ms, after reload {place_loaded:6.1f} ms "
                      f"(again {place_again:.1f} ms) [{loaded.placement}]")
        finally:
            shutil.rmtree(cache, ignore_errors=True)
            if worker is not None:
                worker.close()
        results["cached projection load"] = max(loads)
        results["place new point"] = max(places)
    return results


COMPLETE_JS = f"return document.querySelector('.st-key-{CLOSING_KEY}') !== null;"
"""The start page is complete: its closing paragraph, drawn after the prepared example, is on screen
(the headline figures alone come a second or more earlier, while the example is still looked for)."""

ROUND_TRIP_JS = """
const label = arguments[0], other = arguments[1], quietMs = arguments[2];
// The last modality's input mode: toggles between `label` and `other` (remove it, keep it).
const groups = [...document.querySelectorAll('[data-testid="stRadio"]')].filter(g => g.innerText.includes(label));
const options = [...groups[groups.length - 1].querySelectorAll('label')];
const option = text => options.find(o => o.innerText.trim() === text);
const target = option(label).querySelector('input').checked ? option(other) : option(label);
target.scrollIntoView({block: 'center'});
// The prediction text comes first in the lab; the "lab drawn in" caption is its last element,
// sent after every chart: both must have changed. A chart is drawn some time *after* its element
// has arrived (a canvas redraw, a Plotly SVG rebuild), so the round trip ends at the last change of
// the page, once the page has then stayed unchanged for quietMs (the quiet wait is not counted).
const status = () => [...document.querySelectorAll('[data-testid="stMarkdownContainer"]')]
    .map(e => e.innerText).filter(t => t.includes('update took') || t.includes('probability')).join(' | ');
const last = () => [...document.querySelectorAll('[data-testid="stCaptionContainer"]')]
    .map(e => e.innerText).filter(t => t.includes('lab drawn in')).join(' | ');
const busy = () => {
  const w = document.querySelector('[data-testid="stStatusWidget"]');
  return (w !== null && w.innerText.trim().length > 0) ||
         document.querySelector('[data-testid="stSpinner"], [data-testid="stSkeleton"]') !== null;
};
// Charts drawn on a canvas (the lab's Vega-Lite charts) change no DOM node when they redraw:
// every 2-D canvas drawing call is timestamped too (installed once per page).
if (!window.__precalCanvasHook) {
  window.__precalCanvasHook = true;
  window.__precalLastDraw = 0;
  const proto = CanvasRenderingContext2D.prototype;
  for (const name of ['fill', 'stroke', 'fillRect', 'strokeRect', 'fillText', 'drawImage', 'clearRect', 'putImageData']) {
    const original = proto[name];
    proto[name] = function (...args) { window.__precalLastDraw = performance.now(); return original.apply(this, args); };
  }
}
const before = status(), beforeLast = last();
const rt = {start: performance.now(), changed: null, idle: null, settled: null, lastMutation: null};
window.__precalRoundTrip = rt;
const observer = new MutationObserver(() => {
  const now = performance.now();
  rt.lastMutation = now;
  if (rt.changed === null && status() !== before && last() !== beforeLast) rt.changed = now;
});
observer.observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true});
const timer = setInterval(() => {
  const now = performance.now();
  if (rt.changed === null) return;
  if (rt.idle === null && !busy()) rt.idle = now;
  const lastChange = Math.max(rt.lastMutation, window.__precalLastDraw);
  if (rt.idle !== null && now - lastChange >= quietMs) {
    rt.settled = lastChange;
    observer.disconnect();
    clearInterval(timer);
  }
}, 10);
target.click();
"""
"""Toggle the last modality between "remove" and "as is" and time, in the page, until the lab's prediction text and its
closing caption have changed, Streamlit is idle (no running indicator, no spinner) and every chart
has been redrawn: the last change of the page (a DOM mutation or a canvas drawing call) before a
quiet period."""

QUIET_MS = 600
"""How long the page must stay unchanged after a click's last change for the round trip to end."""


def lab_round_trips(driver, port: int, clicks: int) -> List[float]:
    """Open the lab and time ``clicks`` round trips (ms). Timed inside the page (click and a
    MutationObserver in one script), so WebDriver's own round trips (tens of ms each on this
    machine) are not counted as the app's latency."""
    from tests.dashboard import test_browser as tb

    driver.get(f"http://127.0.0.1:{port}/lab")
    tb.wait_page_done(driver)
    rounds = []
    for _ in range(clicks):
        driver.execute_script(ROUND_TRIP_JS, "remove (mark missing)", "as is", QUIET_MS)  # the last modality
        tb.wait_until(lambda: driver.execute_script("return window.__precalRoundTrip.settled !== null"),
                      timeout=60, poll=0.05)
        timing = driver.execute_script("return window.__precalRoundTrip")
        rounds.append(timing["settled"] - timing["start"])
    return rounds


LAB_PARTS = ("probabilities", "cues", "tables", "inputs", "projection")
"""The lab's parts that dashboard/views/lab.py can leave out (PRECAL_LAB_PARTS)."""


def bench_breakdown(paths: List[str], clicks: int) -> None:
    """Attribute the round trip: the lab with none of its charts and tables (controls, prediction
    text, model update), then with each part alone, then complete. Steady state (no UMAP compile)."""
    from tests.dashboard import test_browser as tb

    reason = tb._skip_reason()
    if reason:
        print(f"breakdown skipped: {reason}")
        return
    print("round-trip breakdown (steady state; median over clicks):")
    base = None
    for parts in [(), *[(p,) for p in LAB_PARTS], LAB_PARTS]:
        os.environ["PRECAL_LAB_PARTS"] = ",".join(parts)
        port = tb.free_port()
        log = Path(tempfile.mkdtemp(prefix="precal-bench-")) / "server.log"
        driver = tb.make_driver()
        proc = tb.start_server([Path(p) for p in paths], port, log)
        try:
            tb.wait_healthy(port, proc)
            median = statistics.median(lab_round_trips(driver, port, clicks))
        finally:
            driver.quit()
            tb.stop_server(proc)
            os.environ.pop("PRECAL_LAB_PARTS", None)
        if not parts:
            base = median
            print(f"  controls + prediction text only: {median:6.0f} ms")
        else:
            label = "everything" if parts == LAB_PARTS else f"+ {parts[0]}"
            print(f"  {label:31s}: {median:6.0f} ms ({median - base:+.0f} ms)")


PAGE_DONE_JS = """
const title = document.querySelector('[data-testid="stMain"] h1');
const status = document.querySelector('[data-testid="stStatusWidget"]');
const busy = document.querySelector('[data-testid="stSpinner"], [data-testid="stSkeleton"]');
return title !== null && title.innerText.includes(arguments[0]) && busy === null &&
       !(status !== null && status.innerText.trim().length > 0);
"""


PAGE_TITLES = {"overview": "Overview", "explorer": "Sample explorer", "lab": "Corruption lab",
               "embeddings": "Embeddings", "robustness": "Robustness", "training": "Training dynamics"}


def page_first_loads(driver, pages: Sequence[str] = PAGE_NAMES) -> Dict[str, float]:
    """Each page's first load in one session: click its link in the navigation, time until its
    title is shown and nothing runs (ms). The first visit pays for the page's own work (its
    predictions over the split, its charts); nothing is warmed up before."""
    from selenium.webdriver.common.by import By

    from tests.dashboard import test_browser as tb

    out: Dict[str, float] = {}
    for page in pages:
        link = next(a for a in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stSidebarNav"] a')
                    if (a.get_attribute("href") or "").rstrip("/").endswith("/" + page))
        start = time.perf_counter()
        link.click()
        quiet = 0
        while time.perf_counter() - start < 120:
            quiet = quiet + 1 if driver.execute_script(PAGE_DONE_JS, PAGE_TITLES[page]) else 0
            if quiet >= 2:  # done on two polls in a row
                break
            time.sleep(0.05)
        out[f"first load: {page}"] = 1000 * (time.perf_counter() - start - 0.05)
        print(f"first load of {page}: {out[f'first load: {page}']:.0f} ms")
        tb.wait_page_done(driver)
    return out


def umap_compile_running() -> bool:
    """Whether a projection worker process is compiling: one of its threads runs at nice 19
    (precal.projection._at_lowest_priority). Linux /proc; elsewhere assumed."""
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for pid_dir in proc.iterdir():
        try:
            if not pid_dir.name.isdigit() or b"_serve_fd" not in (pid_dir / "cmdline").read_bytes():
                continue
            for task in (pid_dir / "task").iterdir():
                if os.getpriority(os.PRIO_PROCESS, int(task.name)) == 19:
                    return True
        except OSError:
            continue
    return False


def start_app(driver, paths: List[str], warm_up: bool, cold: bool = False):
    """Launch ``python -m precal dashboard`` on ``paths`` and wait, in ``driver``, for the start
    page to be complete (its headline figures, or its note that there are none, and nothing
    running). ``cold``: with an empty cache folder of its own, as a new user's first start (no first
    paint, no cached predictions). Returns the server process, its port, and the seconds from the
    launch to the server's first answer and to the complete page."""
    from tests.dashboard import test_browser as tb

    port = tb.free_port()
    scratch = Path(tempfile.mkdtemp(prefix="precal-bench-"))
    log = scratch / "server.log"
    cache = scratch / "cache" if cold else None
    if cold:
        print("app start: cold (an empty cache folder: no first paint, no cached predictions)")
    else:
        stored = first_paint.load(DashboardArgs(tuple(str(p) for p in paths), None, None, None)) is not None
        print(f"app start: {'a first paint is stored for these checkpoints' if stored else 'no first paint stored yet: the start page runs in full'}")
    t0 = time.perf_counter()
    proc = tb.start_server([Path(p) for p in paths], port, log, warm_up=warm_up, cache=cache)
    try:
        tb.wait_healthy(port, proc)
        health = time.perf_counter() - t0
        driver.get(f"http://127.0.0.1:{port}/")
        tb.wait_page_done(driver, quiet_polls=1)
        tb.wait_until(lambda: driver.execute_script(COMPLETE_JS), timeout=120, poll=0.05)
    except BaseException:
        tb.stop_server(proc)
        raise
    return proc, port, health, time.perf_counter() - t0


def bench_starts(paths: List[str], starts: int, then: Optional[str] = None, cold: bool = False) -> Dict[str, float]:
    """Only the app start, ``starts`` times, each with a fresh browser (an empty cache, as a new
    user's) and no UMAP warm-up: the median is what a noisy shared machine allows to compare.
    ``then``: a page opened at once after each start, its first load timed too (work the start page
    leaves undone shows there). ``cold``: every start with an empty cache folder of its own."""
    from tests.dashboard import test_browser as tb

    reason = tb._skip_reason()
    if reason:
        print(f"browser measurements skipped: {reason}")
        return {}
    healthy, first, following = [], [], []
    for _ in range(starts):
        driver = tb.make_driver()
        try:
            proc, _, h, f = start_app(driver, paths, warm_up=False, cold=cold)
            try:
                if then:
                    following.append(page_first_loads(driver, [then])[f"first load: {then}"] / 1000)
            finally:
                tb.stop_server(proc)
        finally:
            driver.quit()
        healthy.append(h)
        first.append(f)
        print(f"app start: server answers after {h:.2f} s, first complete page after {f:.2f} s")
    print(f"app start over {starts} starts: server answers after median {statistics.median(healthy):.2f} s; "
          f"first complete page median {statistics.median(first):.2f} s (min {min(first):.2f}, max {max(first):.2f})")
    if then:
        print(f"then {then} at once: first load median {statistics.median(following):.2f} s; start + {then} median "
              f"{statistics.median([a + b for a, b in zip(first, following)]):.2f} s")
    return {("cold start to first page" if cold else "start to first page"): 1000 * statistics.median(first)}


def bench_browser(paths: List[str], data_arg: Optional[str], clicks: int, warm_up: bool = True) -> Dict[str, float]:
    """Start the app and time the first page and the lab's round trip. With ``warm_up`` (what a
    user gets) UMAP's background compile runs during the measurements; without it, the numbers are
    those of the steady state once the compile has finished."""
    from tests.dashboard import test_browser as tb

    reason = tb._skip_reason()
    if reason:
        print(f"browser measurements skipped: {reason}")
        return {}
    results: Dict[str, float] = {}
    driver = tb.make_driver()  # started first: browser start-up is not the app's start time
    when = ("as a user gets it, UMAP compile scheduled after the first page" if warm_up
            else "steady state, no UMAP compile")
    try:
        proc, port, health, first = start_app(driver, paths, warm_up)
    except BaseException:
        driver.quit()
        raise
    shown = time.perf_counter()
    try:
        results["start to first page"] = 1000 * first
        print(f"app start ({when}): server healthy after {health:.1f} s; first complete page (start: the demo) "
              f"after {first:.1f} s")
        if warm_up:
            results.update(page_first_loads(driver))

        rounds = lab_round_trips(driver, port, clicks)
        results["browser round trip"] = statistics.median(rounds)
        print(f"browser round trip ({when}; lab control -> updated prediction + charts): median "
              f"{statistics.median(rounds):.0f} ms, min {min(rounds):.0f} ms, max {max(rounds):.0f} ms over {clicks}")
        if warm_up:  # again once the UMAP compile has started (it runs for a minute or more)
            time.sleep(max(0.0, UMAP_WARM_UP_DELAY_S + 3.0 - (time.perf_counter() - shown)))
            rounds = lab_round_trips(driver, port, clicks)
            if not umap_compile_running():
                print("  (the UMAP compile was no longer running at the end of these clicks)")
            results["browser round trip (during UMAP compile)"] = statistics.median(rounds)
            print(f"browser round trip (during the UMAP compile, {UMAP_WARM_UP_DELAY_S + 3:.0f} s after the first page): "
                  f"median {statistics.median(rounds):.0f} ms, min {min(rounds):.0f} ms, max {max(rounds):.0f} ms "
                  f"over {clicks}")
    finally:
        driver.quit()
        tb.stop_server(proc)
    return results


def bench_gc(repeats: int = 5) -> float:
    """A full garbage collection in a process that has imported what the dashboard's server holds
    (Streamlit, torch, plotly, pandas, scikit-learn, precal): what Streamlit runs after every script run unless
    ``runner.postScriptGC`` is off, with the GIL held. Median over ``repeats`` (ms)."""
    import gc

    import pandas  # noqa: F401
    import plotly.graph_objects  # noqa: F401
    import sklearn.neighbors  # noqa: F401
    import streamlit  # noqa: F401

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        gc.collect(2)
        times.append(1000 * (time.perf_counter() - start))
    tracked = len(gc.get_objects())
    gc.freeze()  # what dashboard/server.py does once its imports are done
    start = time.perf_counter()
    gc.collect(2)
    frozen = 1000 * (time.perf_counter() - start)
    gc.unfreeze()
    print(f"full gc.collect() with the dashboard's modules imported ({tracked} tracked objects): median "
          f"{statistics.median(times):.0f} ms over {repeats}; after gc.freeze(): {frozen:.1f} ms")
    return statistics.median(times)


def keep_bytecode() -> bool:
    """Let the servers use compiled bytecode as a user's Python does (see the module's notes):
    compile precal's and the app's sources (``__pycache__`` beside them, where Python keeps it by
    default; the checkout ignores it) and let the servers read and write it. Returns whether the
    environment had turned it off."""
    if not os.environ.get("PYTHONDONTWRITEBYTECODE"):
        return False
    import compileall

    import precal
    import precal.dashboard

    for package in (precal, precal.dashboard):
        compileall.compile_dir(str(Path(package.__file__).parent), quiet=1)
    os.environ["PYTHONDONTWRITEBYTECODE"] = ""  # empty: off for the servers started from here
    return True


def figure_line(name: str, value: float) -> str:
    """One row of the figures table: the measurement against its target."""
    target = TARGETS_MS[name]
    return f"{name:38s} {value:10.1f} ms {target:8.0f} ms  {'yes' if value <= target else 'NO'}"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", action="append", help="checkpoint folder (repeat for the pair)")
    parser.add_argument("--data", help="data folder (default: recorded in the checkpoint)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--clicks", type=int, default=8)
    parser.add_argument("--methods", nargs="+", default=["pca", "tsne", "umap"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the dashboard uses 1)")
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--breakdown", action="store_true",
                        help="only attribute the lab's round trip to its parts (several app starts)")
    parser.add_argument("--starts", type=int, default=0, metavar="N",
                        help="only time the app start to the first complete page, N times (median)")
    parser.add_argument("--then", choices=PAGE_NAMES, metavar="PAGE",
                        help="with --starts: open PAGE at once after each start and time its first load too")
    parser.add_argument("--cold", action="store_true",
                        help="with --starts: every start with an empty cache folder (a new user's first start)")
    parser.add_argument("--gc", action="store_true",
                        help="only time a full garbage collection with the dashboard's modules imported")
    args = parser.parse_args(argv)
    if args.starts < 0:
        parser.error("--starts must be 0 (the full benchmark) or a number of starts")
    torch.set_num_threads(args.threads)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"machine: {os.cpu_count()} cores; load average {load[0]:.2f} (1 min), {load[1]:.2f} (5 min) at the start")
    if args.gc:
        bench_gc()
        return 0
    if keep_bytecode():
        print("bytecode: compiled and kept for the servers (this environment sets PYTHONDONTWRITEBYTECODE)")
    paths = pick_checkpoints(args)
    # what `precal dashboard` opens: every shipped checkpoint (else the pair measured by the backend part)
    served = list(args.checkpoint or []) or ([str(ROOT / "checkpoints")] if default_checkpoint_dirs() else paths)
    if args.starts:
        for name, value in bench_starts(served, args.starts, args.then, args.cold).items():
            print(figure_line(name, value))
        return 0
    if args.breakdown:
        bench_breakdown(paths, args.clicks)
        return 0
    results = bench_backend(paths, args.data, args.split, args.runs, args.methods)
    if not args.no_browser:
        os.environ.pop("PRECAL_DASHBOARD_WARMUP", None)
        results.update(bench_browser(served, args.data, args.clicks))
        steady = bench_browser(served, args.data, args.clicks, warm_up=False)
        results.update({f"{k} (steady state)": v for k, v in steady.items()})
    print()
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"machine: {os.cpu_count()} cores; load average {load[0]:.2f} (1 min), {load[1]:.2f} (5 min) at the end"
          + (" — busy: other work shared the cores, so these latencies are pessimistic" if load[0] > 0.5 else ""))
    print(f"{'figure':38s} {'measured':>12s} {'target':>10s}  ok")
    for name, target in TARGETS_MS.items():
        print(figure_line(name, results[name]) if name in results
              else f"{name:38s} {'—':>12s} {target:8.0f} ms  (not measured)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
