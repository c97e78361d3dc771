"""The Prefect UI in a real browser: headless Chromium (Debian's ``chromium`` and ``chromium-driver``,
driven by Selenium through the system chromedriver; nothing is downloaded) opens the UI that
``scripts/serve.sh`` prints, finds the deployments, a completed sweep run and its artifacts, a run of
run-task triggered as a user would (its verdict, its transcript), the run-task form, and saves
screenshots (small PNGs) into ORCH_SCREENSHOTS_DIR, docs/screenshots/ to refresh the README's."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import free_port
from tests.deploy_helpers import PALINDROME, PrefectApi, clone_task, serve, serve_env

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SWEEP = "ui-test"
# The README's screenshots are refreshed with ORCH_SCREENSHOTS_DIR=docs/screenshots; a plain test run
# leaves the repository untouched.
SCREENSHOTS = Path(os.environ.get("ORCH_SCREENSHOTS_DIR") or tempfile.mkdtemp(prefix="orch-screenshots-"))


@dataclass
class CompletedSweep:
    ui: str
    nightly_id: str
    flow_run_id: str
    flow_run_name: str
    report_artifact_id: str
    run_task_id: str
    task_run_id: str
    task_run_name: str
    card_artifact_id: str


@pytest.fixture(scope="module")
def completed_sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CompletedSweep]:
    """What a user has after `scripts/serve.sh`: the server, deployments and a worker; then a sweep run
    through the API to completion. The UI address is the one the script prints."""
    work = tmp_path_factory.mktemp("ui")
    env = serve_env(
        work / "serve", PREFECT_HOME=str(work / "prefect-home"), ORCH_PREFECT_PORT=str(free_port()),
        ORCH_WORK_POOL="orch-ui", ORCH_WORKER_NAME="worker-ui",
    )
    env.pop("PREFECT_API_URL", None)
    try:
        started = serve("start", env=env)
        [ui] = re.findall(r"UI: (http://\S+)", started.stdout)
        api = PrefectApi(f"{ui}/api")
        nightly = api.deployment("sweep/nightly")
        api.pause_schedules(nightly)
        clone_task(work / "tasks", "ui-task")
        replay = work / "replay.jsonl"
        replay.write_text(json.dumps({"task_id": "ui-task", "content": PALINDROME}) + "\n")
        params = {
            "tasks": str(work / "tasks"), "workers": [{"provider": "replay", "model": str(replay)}],
            "sandbox": "local", "name": SWEEP, "traces_dir": str(work / "traces"), "executor": "local",
        }
        run_id = api.trigger("sweep/nightly", params)
        run = api.wait_final(run_id)
        assert run["state_type"] == "COMPLETED", run["state"]
        [report] = [a for a in api.artifacts(run_id) if a["key"] == f"sweep-{SWEEP}-report"]
        # what a user starts from the run-task deployment's form
        run_task = api.deployment("run-task/run-task")
        task_run_id = api.trigger(
            "run-task/run-task",
            {
                "task_dir": str(work / "tasks" / "ui-task"),
                "workers": [{"provider": "replay", "model": str(replay), "role": "solver"}],
                "sandbox": "local",
                "traces_dir": str(work / "traces"),
            },
        )
        task_run = api.wait_final(task_run_id)
        assert task_run["state_type"] == "COMPLETED", task_run["state"]
        [card] = [a for a in api.artifacts(task_run_id) if a["key"] == "run-ui-task"]
        yield CompletedSweep(
            ui, nightly["id"], run_id, run["name"], report["id"], run_task["id"], task_run_id, task_run["name"],
            card["id"],
        )
    finally:
        serve("stop", env=env, check=False)


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        pytest.fail(f"{missing} not installed: run scripts/install.sh (Debian chromium, chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    # An explicit driver path: Selenium Manager (which would download a driver) is never consulted.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _page_shows(driver: webdriver.Chrome, *texts: str, timeout_s: float = 60) -> str:
    """Wait (bounded) until the single-page app has rendered every text; returns the page's text."""
    def rendered(d: webdriver.Chrome) -> str | bool:
        body = d.find_element(By.TAG_NAME, "body").text
        return body if all(t in body for t in texts) else False

    try:
        return str(WebDriverWait(driver, timeout_s, poll_frequency=0.5).until(rendered))
    except TimeoutException:
        body = driver.find_element(By.TAG_NAME, "body").text
        raise AssertionError(f"{driver.current_url} never showed {texts}; it shows:\n{body[:2000]}") from None


def _shot(browser: webdriver.Chrome, name: str) -> Path:
    """A screenshot, kept small: 1000 px wide pages, PNG."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    browser.save_screenshot(str(path))
    assert path.stat().st_size > 10_000, name  # a rendered page, not a blank one
    return path


def test_ui_shows_deployments_the_completed_run_and_its_artifacts(
    completed_sweep: CompletedSweep, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()

    browser.get(f"{completed_sweep.ui}/deployments")
    _page_shows(browser, "nightly", "run-task", "At 02:00 AM every day")  # the schedule, in words
    browser.save_screenshot(str(shots / "deployments.png"))

    # Run ▸ Custom run: the sweep's pydantic parameters as a form.
    browser.get(f"{completed_sweep.ui}/deployments/deployment/{completed_sweep.nightly_id}/run")
    form = _page_shows(browser, "Parameters", "Tasks", "Concurrency", "Rounds at most", "Executor", "Submit")
    assert "max_rounds" not in form  # human labels, not the field names
    browser.save_screenshot(str(shots / "run-form.png"))

    # the deployment's Parameters tab lists each parameter by name, not one JSON line called params
    browser.get(f"{completed_sweep.ui}/deployments/deployment/{completed_sweep.nightly_id}")
    _page_shows(browser, "nightly", "Parameters")
    browser.find_element(By.XPATH, "//*[@role='tablist']//*[normalize-space()='Parameters']").click()
    tab = _page_shows(browser, "tasks", "concurrency", "executor", "run-task/run-task")
    assert "params" not in tab.split(), tab
    _shot(browser, "nightly-parameters.png")

    browser.get(f"{completed_sweep.ui}/runs/flow-run/{completed_sweep.flow_run_id}")
    _page_shows(browser, completed_sweep.flow_run_name, "Completed", "nightly", "Artifacts")
    browser.save_screenshot(str(shots / "flow-run.png"))

    browser.find_element(By.CSS_SELECTOR, "[role=tablist] #artifacts").click()  # the run's Artifacts tab
    _page_shows(browser, f"sweep-{SWEEP}-report", f"sweep-{SWEEP}-tasks", f"sweep-{SWEEP}-models")
    browser.save_screenshot(str(shots / "flow-run-artifacts.png"))

    browser.get(f"{completed_sweep.ui}/artifacts/artifact/{completed_sweep.report_artifact_id}")
    _page_shows(browser, f"Sweep {SWEEP}", "1 of 1 passed", "Compared with the previous sweep")
    browser.save_screenshot(str(shots / "sweep-report.png"))

    saved = sorted(p.name for p in shots.glob("*.png"))
    assert saved == ["deployments.png", "flow-run-artifacts.png", "flow-run.png", "run-form.png", "sweep-report.png"]
    assert all((shots / name).stat().st_size > 10_000 for name in saved)  # a rendered page, not a blank one


def test_triggered_run_task_shows_its_verdict_transcript_and_form(
    completed_sweep: CompletedSweep, browser: webdriver.Chrome
) -> None:
    ui = completed_sweep.ui
    # the run the user triggered is named after the task and carries the verdict itself
    assert completed_sweep.task_run_name == "ui-task"
    browser.get(f"{ui}/runs/flow-run/{completed_sweep.task_run_id}")
    _page_shows(browser, "ui-task", "Completed", "verdict: ui-task (coding) PASSED")
    _shot(browser, "run-task-run.png")

    browser.find_element(By.CSS_SELECTOR, "[role=tablist] #artifacts").click()
    _page_shows(browser, "run-ui-task", "transcript-run-ui-task")
    browser.get(f"{ui}/artifacts/artifact/{completed_sweep.card_artifact_id}")
    _page_shows(browser, "ui-task (coding): passed", "Transcript: each candidate's rounds")
    _shot(browser, "verdict-card.png")
    href = browser.find_element(By.PARTIAL_LINK_TEXT, "Transcript").get_attribute("href") or ""
    assert "/artifacts/artifact/" in href, href
    browser.get(href)  # the UI opens markdown links in a new tab; follow it in this one
    _page_shows(browser, "Transcript of ui-task", "Round 1, visible tests: passed", "Code:", "Test output:", "reply (replay:")
    _shot(browser, "transcript.png")

    # the run-task form: descriptions, choices for sandbox and router, the internal ids last
    browser.get(f"{ui}/deployments/deployment/{completed_sweep.run_task_id}/run")
    body = _page_shows(browser, "Task folder", "The task folder", "Where the tests run", "Sweep id (advanced)")
    assert "task_dir" not in body
    assert body.index("Advanced, set by a sweep") > body.index("Where the tests run")
    _shot(browser, "run-task-form.png")


def test_sweep_report_embeds_a_working_chart_and_one_token_total(
    completed_sweep: CompletedSweep, browser: webdriver.Chrome
) -> None:
    browser.get(f"{completed_sweep.ui}/artifacts/artifact/{completed_sweep.report_artifact_id}")
    body = _page_shows(browser, f"Sweep {SWEEP}", "History")
    assert "file://" not in browser.page_source and "$0.000000" not in body
    [chart] = browser.find_elements(By.CSS_SELECTOR, "img[alt='pass rate and cost per model']")
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", chart) > 100
    # the headline's token total is the models table's (one definition: every call counted)
    headline = re.findall(r"([\d,]+) tokens", body)[0]
    assert body.count(headline) >= 2, body  # the headline and the one model's row
    _shot(browser, "sweep-report.png")
