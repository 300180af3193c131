"""The dashboard in a real browser: Debian's Chromium, headless, driven by Selenium through the system
chromedriver, on the service's loopback port with the token. It sees a real run's numbers change, filters
the job table, opens a job's log, shows hostile text verbatim (no markup injection), and a screenshot is
kept in the test's folder."""

from __future__ import annotations

import json
import time

import pytest
from chromium import missing_reason, start_chromium
from engine_helpers import make_analysis, slow_workflow
from service_helpers import running_service

HOSTILE = "ev<script>window.__pwned=1<\\script> \"q' <img src=x onerror=window.__pwned=2>"

pytestmark = pytest.mark.skipif(missing_reason() is not None, reason=str(missing_reason()))


@pytest.fixture
def browser(tmp_path):
    driver = start_chromium(tmp_path / "chromium-profile")
    try:
        yield driver
    finally:
        driver.quit()


def _wait(predicate, timeout=90.0, what="the page"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not show it in {timeout:.0f} s")
        time.sleep(0.1)


def _rows(driver, table: str) -> list[list[str]]:
    """The cells' text of a table's rows, read in one go (the page redraws its tables as it polls)."""
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0] + ' tbody tr')]"
        ".map(tr => [...tr.children].map(td => td.textContent))",
        table,
    )


def _done_count(driver) -> int:
    return sum(int(r[5]) for r in _rows(driver, "#stages") if r[0] == "produce")


def _pace(driver, stage: str) -> list[str] | None:
    """The stage's row of the throughput table: stage, done, left, jobs/hour, time to completion."""
    return next((r[:5] for r in _rows(driver, "#pace") if r[0] == stage), None)


def _estimating(row: list[str] | None) -> bool:
    """The row shows a rate and a time to completion still to go (e.g. `3 s`)."""
    return bool(row and row[3] and float(row[3]) > 0 and row[4] not in ("unknown", "done"))


def _click(driver, css: str) -> None:
    """Click the first element matching `css` like a user, again if the page redrew it meanwhile."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    for _ in range(50):
        try:
            driver.find_element(By.CSS_SELECTOR, css).click()
            return
        except StaleElementReferenceException:
            time.sleep(0.05)
    raise AssertionError(f"{css} kept being redrawn")


def test_dashboard_follows_a_run_filters_opens_a_log_and_escapes_text(tmp_path, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    folder = tmp_path / HOSTILE
    folder.mkdir()
    path = make_analysis(
        folder, {"gamma": 10, "proton": 2}, workflow=slow_workflow(tmp_path, 0.4), n_file_per_job=1
    )
    with running_service() as svc:
        svc.analyses.append(path)
        svc.start("--http", "127.0.0.1:0")
        info = svc.info()
        assert svc.cli("service", "add", path, "--max-active", "2", "--poll-interval", "0.05").returncode == 0
        browser.get(f"http://{info['http']}/?token={info['token']}&interval=300")
        assert "token=" not in browser.current_url  # the token is traded for a cookie at once

        _wait(lambda: _rows(browser, "#stages"), what="the stage table")
        first = _done_count(browser)
        assert first < 10
        # throughput and time to completion: a rate and an estimate while jobs are left
        during = _wait(lambda: (r := _pace(browser, "produce")) and _estimating(r) and r, what="an estimate")
        assert 0 < int(during[2]) <= 12 and int(during[1]) < 12
        _wait(lambda: _done_count(browser) > first, what="a change of the numbers")
        _wait(lambda: _rows(browser, "#analyses")[0][1] == "complete", what="completion")
        _wait(lambda: _done_count(browser) == 12, what="the final counts")
        # ... which changed with the run: everything done, nothing left, and the series holds every job
        end = _wait(
            lambda: (r := _pace(browser, "produce")) and r[4] == "done" and r, what="the estimate's end"
        )
        assert end[1:3] == ["12", "0"] and end != during
        titles = browser.execute_script(
            "return [...document.querySelectorAll('#pace tbody tr[data-stage=produce] .spark span')]"
            ".map(s => s.title)"
        )
        assert len(titles) == 30 and sum(int(t.split()[0]) for t in titles) == 12

        # hostile text (the analysis's folder) is shown verbatim and never runs
        assert _rows(browser, "#analyses")[0][3] == str(path)
        assert HOSTILE in browser.find_element(By.CSS_SELECTOR, "#analyses tbody").text
        assert browser.execute_script("return window.__pwned === undefined")
        assert browser.find_elements(By.CSS_SELECTOR, "img") == []
        assert browser.find_elements(By.CSS_SELECTOR, "main script") == []

        # filter: only proton jobs; then by status
        particle = browser.find_element(By.ID, "f-particle")
        particle.send_keys("proton")
        _wait(
            lambda: [r[2] for r in _rows(browser, "#jobs")] == ["proton", "proton"],
            what="the particle filter",
        )
        particle.clear()
        particle.send_keys(" ")  # an input event: the filter is read again (blank: every particle)
        Select(browser.find_element(By.ID, "f-status")).select_by_visible_text("failed")
        _wait(lambda: browser.find_element(By.ID, "page").text == "no job", what="the status filter")
        Select(browser.find_element(By.ID, "f-status")).select_by_visible_text("done")
        _wait(lambda: "of 13" in browser.find_element(By.ID, "page").text, what="13 done jobs")
        assert {r[3] for r in _rows(browser, "#jobs")} == {"done"}
        # sorted by the server: by name, then the latest update first
        Select(browser.find_element(By.ID, "f-sort")).select_by_visible_text("name")
        _wait(
            lambda: (names := [r[0] for r in _rows(browser, "#jobs")]) == sorted(names) and len(names) == 13,
            what="the jobs sorted by name",
        )
        Select(browser.find_element(By.ID, "f-sort")).select_by_visible_text("latest update")
        _wait(
            lambda: (
                (times := [r[7] for r in _rows(browser, "#jobs")]) == sorted(times, reverse=True)
                and len(times) == 13
            ),
            what="the latest update first",
        )
        Select(browser.find_element(By.ID, "f-sort")).select_by_visible_text("as planned")
        _wait(lambda: _rows(browser, "#jobs")[0][1] == "produce", what="the planned order")

        # open a job: its attempts and its log
        _click(browser, "#jobs tbody tr a.job")
        _wait(
            lambda: browser.execute_script(
                "const p = document.querySelector('#logs pre.log-stdout'); return p && p.textContent"
            ),
            what="the log",
        )
        log = browser.execute_script("return document.querySelector('#logs pre.log-stdout').textContent")
        assert log.startswith("$ ") and "time.sleep(0.4)" in log
        assert len(_rows(browser, "#attempts")) == 1

        # the queues panel lists every worker
        lanes = {r[0] for r in _rows(browser, "#queues")}
        assert lanes == {"submission", "monitoring", "transfers"}

        shot = tmp_path / "dashboard.png"
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000


def test_dashboard_without_the_token_is_refused(browser):
    with running_service() as svc:
        svc.start("--http", "127.0.0.1:0")
        browser.get(f"http://{svc.info()['http']}/")
        assert "missing or wrong token" in browser.page_source


def test_the_report_opens_offline_in_the_browser(tmp_path, browser, run_cli):
    from engine_helpers import wait_executor_gone

    path = make_analysis(tmp_path, {"gamma": 2, "proton": 1}, n_file_per_job=1)
    try:
        done = run_cli("run", "-a", path, "--poll-interval", "0.05", cwd=tmp_path, timeout=180)
        assert done.rc == 0, done.stderr
    finally:
        wait_executor_gone(path)
    report = tmp_path / "report.html"
    assert run_cli("report", path, "-o", report, cwd=tmp_path).rc == 0
    browser.get(report.as_uri())  # a file, no server
    rows = _rows_plain(browser, "#counts tr")
    assert ["produce", "gamma", "0", "0", "0", "2", "0", "0"] in rows
    assert len(browser.execute_script("return document.querySelectorAll('#timeline .lane span.done')")) == 4
    assert (
        browser.execute_script("return document.getElementById('no-failures').textContent")
        == "No attempt failed."
    )
    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot))


def _rows_plain(driver, css: str) -> list[list[str]]:
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(tr => [...tr.children].map(td => td.textContent))",
        css,
    )


def test_dashboard_groups_failures_and_pauses(tmp_path, browser):
    path = make_analysis(tmp_path, {"gamma": 2, "proton": 3}, n_file_per_job=1)
    with running_service() as svc:
        svc.extra_env["FAIL_proton"] = "3"  # proton jobs exit 3: they fail for good after 2 attempts
        svc.analyses.append(path)
        svc.start("--http", "127.0.0.1:0")
        info = svc.info()
        assert (
            svc.cli("service", "add", path, "--max-attempts", "2", "--poll-interval", "0.05").returncode == 0
        )
        browser.get(f"http://{info['http']}/?token={info['token']}&interval=300")
        _wait(
            lambda: (_rows(browser, "#analyses") or [["", ""]])[0][1] == "stalled", what="the stalled state"
        )
        _wait(lambda: _rows(browser, "#by-site") == [["localhost", "3"]], what="failures by site")
        (reason,) = _rows(browser, "#by-reason")
        assert reason[1] == "3" and "3" in reason[0]
        # pause from the page (a POST by cookie with the X-Gridpipe header)
        _click(browser, "#analyses tbody tr button")
        _wait(lambda: _rows(browser, "#analyses")[0][1] == "paused", what="the pause")
        with svc.client() as client:
            assert client.analysis(path)["paused"] is True
        assert browser.save_screenshot(str(tmp_path / "failures.png"))


def test_dashboard_warns_when_the_dirac_token_nears_its_end_and_clears_once_renewed(
    diracx, tmp_path, browser
):
    from datetime import timedelta

    from test_dirac_backend import dirac_analysis

    creds = tmp_path / "credentials.json"
    diracx.mint_credentials(creds, lifetime=timedelta(minutes=4))  # min_token_validity is 10 minutes
    path = dirac_analysis(tmp_path, diracx, "dxdash", 1, credentials_path=str(creds))
    with running_service() as svc:
        svc.start("--http", "127.0.0.1:0")
        info = svc.info()
        assert svc.cli("service", "add", path, "--poll-interval", "0.2").returncode == 0
        browser.get(f"http://{info['http']}/?token={info['token']}&interval=300")

        def warning() -> str:  # read in one go: the page redraws the table as it polls
            return browser.execute_script(
                "const w = document.querySelector('#analyses tbody .warning'); return w ? w.textContent : ''"
            )

        text = _wait(warning, what="the token warning")
        assert text.startswith("warning: submission paused:") and "dirac login" in text
        token = json.loads(creds.read_text())["access_token"]
        assert token not in browser.page_source  # the token itself is never shown
        assert browser.save_screenshot(str(tmp_path / "token-warning.png"))

        diracx.mint_credentials(creds, lifetime=timedelta(hours=1))  # the user renewed it
        _wait(lambda: not warning(), what="the warning's end")
        with svc.client() as client:
            texts = [e["text"] for e in client.analysis(path)["events"]]
        assert "submission resumed" in texts
        assert svc.cli("service", "remove", path).returncode == 0
