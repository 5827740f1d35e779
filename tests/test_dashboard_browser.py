"""The dashboard in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright.

The server runs in a thread on a free loopback port; skipped where Chromium or Playwright is missing.
"""

from __future__ import annotations

import hashlib
import shutil

import optuna
import pytest
from optuna.trial import TrialState

from autopeft.search_spaces import families
from autopeft.store import load_study, pareto_trials
from benchmarks.dashboard_screenshots import CHROMIUM, CHROMIUM_ARGS, serve
from benchmarks.dashboard_synthetic import build_study
from tests.models import TINY_CONFIGS

sync_api = pytest.importorskip("playwright.sync_api")
if shutil.which(CHROMIUM) is None:
    pytest.skip("Chromium is not installed (make system-deps installs it)", allow_module_level=True)

EVIL = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tmp = tmp_path_factory.mktemp("dash-browser")
    model = tmp / "tiny-bert"
    TINY_CONFIGS["bert"]().save_pretrained(model)
    path = tmp / "studies.db"
    storage = optuna.storages.RDBStorage(f"sqlite:///{path}")
    build_study(storage, "tiny-lora", str(model), n_trials=30, running=1, failed_fraction=0.15, seed=7, bulk=True)
    build_study(storage, EVIL, str(model), n_trials=3, failed_fraction=0.0, seed=8, bulk=True)
    with serve(f"sqlite:///{path}", poll_seconds=0.5) as base:
        yield base, path, storage


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    p.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    p.on("dialog", lambda dialog: (errors.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    yield p
    context.close()
    assert errors == []  # no script error, no CSP violation, no alert()


def points_per_trace(page) -> list[int]:
    return page.eval_on_selector_all(
        "#pareto-plot .scatterlayer .trace", "traces => traces.map(t => t.querySelectorAll('.points path').length)")


def test_study_page_plots_every_point_and_a_click_opens_the_trial(site, page):
    base, _, storage = site
    study = load_study(storage, "tiny-lora")
    trials = study.get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    front = pareto_trials(study)
    page.goto(f"{base}/studies/1")
    page.wait_for_selector("body[data-ready='1']")
    dominated_n, failed_n, front_n = points_per_trace(page)
    assert front_n == len(front)
    assert dominated_n == len(complete) - len(front)
    assert failed_n == len(failed)
    assert page.locator("#trials tbody tr").count() == min(25, len(trials))
    options = page.locator("select[aria-label='family'] option").all_inner_texts()
    assert options == ["any family", *families.NAMES]  # the filter offers the registry's families
    # click a Pareto point: its trial page opens
    k = len(front) // 2
    point = page.locator("#pareto-plot .scatterlayer .trace").nth(2).locator(".points path").nth(k)
    box = point.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_url(f"{base}/studies/1/trials/{front[k].number}")
    page.wait_for_selector("body[data-ready='1']")
    assert f"Trial {front[k].number}" in page.locator("h1").inner_text()
    assert "Pareto-optimal" in page.locator("h1").inner_text()


def test_export_button_downloads_a_config_peft_loads(site, page, tmp_path):
    from peft import PeftConfig

    base, _, storage = site
    number = pareto_trials(load_study(storage, "tiny-lora"))[-1].number
    page.goto(f"{base}/studies/1/trials/{number}")
    page.wait_for_selector("body[data-ready='1']")
    with page.expect_download() as info:
        page.click("button[data-format='peft']")
    download = info.value
    assert download.suggested_filename == "adapter_config.json"
    download.save_as(tmp_path / "adapter_config.json")
    config = PeftConfig.from_pretrained(str(tmp_path))
    assert config.peft_type.value == "LORA"
    assert config.base_model_name_or_path.endswith("tiny-bert")


def test_names_render_as_text(site, page):
    base, _, _ = site
    page.goto(f"{base}/")
    page.wait_for_selector("table.table tbody tr")
    assert EVIL in page.locator("table.table").inner_text()
    assert page.locator("table.table script").count() == 0
    page.goto(f"{base}/studies/2")
    page.wait_for_selector("body[data-ready='1']")
    assert page.locator("h1").inner_text() == EVIL
    assert page.title() == f"{EVIL} · autopeft"


def test_new_trials_appear_without_reload(site, page):
    base, path, storage = site
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    page.goto(f"{base}/studies/1")
    page.wait_for_selector("body[data-ready='1']")
    total = page.locator(".stat .value").first.inner_text()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before  # browsing wrote nothing
    study = load_study(storage, "tiny-lora")
    done = next(t for t in study.get_trials() if t.state == TrialState.COMPLETE)
    study.add_trial(optuna.trial.create_trial(values=[0.99, done.values[1]], params=done.params,
                                              distributions=done.distributions, user_attrs=done.user_attrs))
    expected = str(int(total) + 1)
    sync_api.expect(page.locator(".stat .value").first).to_have_text(expected, timeout=10_000)
    assert points_per_trace(page)[2] >= 1
