"""`gridpipe report`: a self-contained HTML file and trace.tsv from the job store of a real run with
failures; every text escaped; it works with no service."""

from __future__ import annotations

import csv
import json
import re
from html.parser import HTMLParser

from engine_helpers import make_analysis, wait_executor_gone

HOSTILE = "r<script>alert(1)<\\script> \"q' <img src=x onerror=alert(2)>"


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.links: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.links += [v or "" for k, v in attrs if k in ("src", "href")]

    def handle_data(self, data):
        self.text.append(data)


def test_report_of_a_run_with_failures(tmp_path, run_cli):
    folder = tmp_path / HOSTILE
    folder.mkdir()
    path = make_analysis(folder, {"gamma": 3, "proton": 2}, n_file_per_job=1)
    try:
        run = run_cli(
            "run",
            "-a",
            path,
            "--max-attempts",
            "2",
            "--poll-interval",
            "0.05",
            cwd=tmp_path,
            env={"FAIL_proton": "3"},
            timeout=180,
        )
        assert run.rc == 1, run.stdout + run.stderr  # proton jobs fail for good
    finally:
        wait_executor_gone(path)
    out = tmp_path / "out" / "report.html"
    made = run_cli("report", path, "-o", out, cwd=tmp_path)
    assert made.rc == 0, made.stderr
    html = out.read_text()
    parsed = _Tags()
    parsed.feed(html)
    assert "script" not in parsed.tags and "img" not in parsed.tags and "link" not in parsed.tags
    assert parsed.links == []  # nothing to fetch: it opens offline
    text = "".join(parsed.text)
    assert str(path) in text  # the hostile folder, verbatim
    status = json.loads(run_cli("status", "--json", "--no-refresh", "-a", path, cwd=tmp_path).stdout)
    assert status["stages"]["produce"] == {"gamma": {"done": 3}, "proton": {"failed": 2}}
    assert 'id="by-reason"' in html and 'id="by-site"' in html
    assert html.count('class="lane"') == 3 + 2 * 2  # every attempt drawn
    # throughput over the run: produce has 3 done, none left (the failed ones are not retried): done
    pace = re.search(r'<table id="pace">.*?</table>', html, re.S).group(0)
    (produce,) = re.findall(r"<tr><td>produce</td>(.*?)</tr>", pace)
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", produce)
    assert cells[:2] == ["3", "0"] and float(cells[2]) > 0 and cells[3] == "done", cells
    assert pace.count('title="3 done"') + pace.count('title="2 done"') + pace.count('title="1 done"') >= 1

    with (tmp_path / "out" / "trace.tsv").open() as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert len(rows) == 7
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 4 and {r["particle"] for r in failed} == {"proton"}
    assert {r["attempt"] for r in failed} == {"1", "2"}
    assert all(r["exit_code"] == "3" for r in failed)
    assert all(r["submitted"] and r["ended"] for r in rows)
    # every attempt ran: its start (the local queue's record) lies between its submission and its end
    assert all(r["submitted"] <= r["started"] <= r["ended"] for r in rows), [
        (r["submitted"], r["started"], r["ended"]) for r in rows
    ]
