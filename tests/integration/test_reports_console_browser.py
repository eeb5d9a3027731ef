"""The 报告 and 督查 pages in a real headless Chromium against a real web server with a built nightly report.

The known day of tests/server/report_fixtures.py is stored and its reports built twice (the nightly build,
then a rebuild for late data), so each report has two revisions. Its per-venue figures are copied to the
two days before, so the review has a three-day trend and rules that recur on three days. A county admin
browses the archive (files, older revisions, the English files, filters) and sorts the township ranking;
a township's duty officer sees their own township only, on both pages. Screenshots of both pages are taken
(into docs/screenshots/ with VW_SCREENSHOTS=docs/screenshots).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from server.rules import RULES
from server.store import venue_days
from tests.server.duty_fixtures import PASSWORD, Clock, DutyServer, start_duty_server, stop_duty_server
from tests.server.report_fixtures import DAY, TZ, VENUES, generate, store

pytestmark = pytest.mark.integration

SCREENSHOTS = Path(os.environ["VW_SCREENSHOTS"]).resolve() if os.environ.get("VW_SCREENSHOTS") else None
D = DAY.isoformat()
EARLIER = [(DAY - timedelta(days=n)).isoformat() for n in (1, 2)]


@pytest.fixture(scope="module")
def reports_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DutyServer, str]]:
    """A web server (on a port, for the browser) whose clock stands two days after DAY; nothing here writes,
    so the tests of this file share it."""
    clock = Clock(datetime.combine(DAY + timedelta(days=1), time(0, 40), tzinfo=TZ).astimezone(UTC))
    duty = start_duty_server(tmp_path_factory.mktemp("reports-console"), VENUES, clock)
    try:
        store(duty.server.engine, generate())
        clock.advance(days=1)  # as tests/server/test_reports.py does: after the late journal arrived
        duty.server.reports.build(DAY, "nightly")
        duty.server.reports.build(DAY, "late_data")
        with duty.server.engine.begin() as conn:
            rows = [dict(r._mapping) for r in conn.execute(select(venue_days).where(venue_days.c.day == D))]
            assert rows, "the build kept no per-venue figures for the review"
            conn.execute(insert(venue_days), [{**r, "day": day} for day in EARLIER for r in rows])
        duty.server.start()
        yield duty, duty.server.url
    finally:
        duty.server.stop()
        stop_duty_server(duty)


def log_in(page, url: str, user: str, path: str) -> None:
    """Open a page, log in on the login page it sends us to, and land back on it."""
    page.goto(url + path)
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(url + path)


def api(duty: DutyServer, path: str, user: str = "admin") -> Any:
    response = duty.api("GET", path, user=user)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def fits_without_sideways_scrolling(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def shots_dir(tmp_path: Path) -> Path:
    shots = SCREENSHOTS or tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    return shots


def row_texts(page, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "rows => rows.map(r => r.textContent)")


def test_admin_browses_the_report_archive(reports_server, page, js_errors, tmp_path: Path):
    _duty, url = reports_server
    log_in(page, url, "admin", "/reports")
    assert page.get_attribute("nav a[href='/reports']", "aria-current") == "page"
    day = f"section.report-day[data-day='{D}']"
    page.wait_for_selector(f"{day} tr[data-scope=county]")
    assert D in page.text_content(f"{day} h2") and "周三" in page.text_content(f"{day} h2")
    rows = f"{day} tbody tr"
    assert page.eval_on_selector_all(rows, "rows => rows.map(r => r.dataset.scope)") == ["county", "t-one", "t-two"]
    assert [t.strip() for t in row_texts(page, f"{rows} .scope-name")] == ["测试县", "镇t-one", "镇t-two"]
    assert set(row_texts(page, f"{rows} .report-revision-label")) == {"第 2 版 · 迟到数据重建"}

    county = f"{day} tr[data-scope=county]"
    view = f"{county} a.report-html"
    assert page.get_attribute(view, "href") == f"/api/v1/reports/{D}/county.html"
    assert page.get_attribute(view, "target") == "_blank"
    pdf_href = page.get_attribute(f"{county} a.report-pdf", "href")
    assert pdf_href == f"/api/v1/reports/{D}/county.pdf"
    pdf = page.request.get(url + pdf_href)  # with the page's session cookie
    assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.body().startswith(b"%PDF")
    assert page.get_attribute(f"{county} a.report-csv", "href") == f"/api/v1/reports/{D}/county.csv"

    # 查看 opens the standalone HTML report in a new tab.
    with page.context.expect_page() as opened:
        page.click(view)
    report = opened.value
    report.wait_for_load_state()
    assert report.url == url + f"/api/v1/reports/{D}/county.html"
    assert "测试县" in report.text_content("body")
    report.close()

    # An older revision: the row's links follow the chosen one, and the server has it.
    page.select_option(f"{county} select.report-revision", "1")
    old = page.get_attribute(view, "href")
    assert old == f"/api/v1/reports/{D}/county.html?revision=1"
    assert page.request.get(url + old).status == 200
    assert page.request.get(url + page.get_attribute(f"{county} a.report-csv", "href")).headers[
        "content-disposition"].endswith('-r1.csv"')

    # The files in English.
    page.select_option("#filter-lang", "en")
    assert page.get_attribute(view, "href") == f"/api/v1/reports/{D}/county.html?revision=1&lang=en"
    assert page.get_attribute(f"{day} tr[data-scope=t-one] a.report-pdf", "href") == (
        f"/api/v1/reports/{D}/t-one.pdf?lang=en")

    # Filters: one township; another date (nothing); back to everything.
    scopes = page.eval_on_selector_all("#filter-scope option", "os => os.map(o => [o.value, o.textContent])")
    assert scopes == [["", "全部"], ["county", "测试县"], ["t-one", "镇t-one"], ["t-two", "镇t-two"]]
    page.select_option("#filter-scope", "t-two")
    assert page.eval_on_selector_all(rows, "rows => rows.map(r => r.dataset.scope)") == ["t-two"]
    page.select_option("#filter-scope", "")
    page.fill("#filter-day", EARLIER[0])
    page.wait_for_selector("#report-days .empty-state:has-text('暂无报告')")
    page.fill("#filter-day", D)
    page.wait_for_selector(f"{county}")
    assert len(page.query_selector_all(rows)) == 3

    assert fits_without_sideways_scrolling(page)
    page.screenshot(path=str(shots_dir(tmp_path) / "duty-reports.png"), full_page=True)
    page.set_viewport_size({"width": 768, "height": 1024})
    assert fits_without_sideways_scrolling(page)


def test_county_review_ranking_sorts_by_any_column(reports_server, page, js_errors, tmp_path: Path):
    duty, url = reports_server
    log_in(page, url, "admin", "/review")
    page.wait_for_selector("#ranking-rows tr[data-township] >> nth=1")
    data = api(duty, "/review?days=30")
    ranking = {r["id"]: r for r in data["ranking"]}
    assert set(ranking) == {"t-one", "t-two"}

    def order() -> list[str]:
        return page.eval_on_selector_all("#ranking-rows tr", "rows => rows.map(r => r.dataset.township)")

    def sorted_by(key: str, reverse: bool = False) -> list[str]:
        return [r["id"] for r in sorted(ranking.values(), key=lambda r: r[key], reverse=reverse)]

    assert page.get_attribute(".period-buttons button[data-days='30']", "aria-pressed") == "true"
    assert order() == sorted_by("rank")
    assert page.get_attribute("th[data-key=rank]", "aria-sort") == "ascending"
    headings = row_texts(page, "#ranking-head th")
    assert [h.strip() for h in headings] == ["排名", "乡镇", "综合得分", "设备可用率", "平均响应时间", "误报率",
                                             "开放率", "告警", "非开放时段开门", "场所数"]

    # 设备可用率: ascending on the first click, descending on the second.
    page.click("th[data-key=availability] button")
    assert page.get_attribute("th[data-key=availability]", "aria-sort") == "ascending"
    assert page.get_attribute("th[data-key=rank]", "aria-sort") == "none"
    assert order() == sorted_by("availability")
    page.click("th[data-key=availability] button")
    assert page.get_attribute("th[data-key=availability]", "aria-sort") == "descending"
    assert order() == sorted_by("availability", reverse=True)
    assert order() != sorted_by("availability")  # the two townships differ: the click did reorder
    # The keyboard works too: the header's button keeps the focus.
    page.keyboard.press("Enter")
    assert order() == sorted_by("availability")

    # Figures as the API gave them: percentages with one decimal, minutes, "—" for no value.
    one = ranking["t-one"]
    cells = row_texts(page, "#ranking-rows tr[data-township=t-one] td")
    assert cells[3] == f"{one['availability'] * 100:.1f}%"
    assert cells[4] == f"{one['mean_ack_s'] / 60:.1f} 分钟"
    assert cells[6] == f"{one['compliance'] * 100:.1f}%"
    assert ranking["t-two"]["compliance"] is None
    assert row_texts(page, "#ranking-rows tr[data-township=t-two] td")[6] == "—"
    kpi = page.text_content("[data-kpi=availability] dd")
    assert kpi == f"{data['summary']['availability'] * 100:.1f}%"

    # Days without data; a three-day trend; problems that recur on three days, named in Chinese.
    assert page.text_content("#missing-days").startswith(f"有 {len(data['missing_days'])} 天没有报告数据")
    assert len(data["missing_days"]) == 27
    assert len(page.query_selector_all("svg.trend-svg [data-series=availability] circle")) == 3
    assert page.get_attribute("svg.trend-svg [data-series=availability] path", "d").count("L") == 2
    assert len(page.query_selector_all("#worst-rows tr[data-venue]")) == len(data["worst_venues"])
    assert data["recurring"], "the copied days make rules recur"
    first = data["recurring"][0]
    recurring = row_texts(page, f"#recurring-rows tr[data-venue={first['venue']}][data-rule={first['rule']}] td")
    assert recurring == [first["venue_name"], first["township"], RULES[first["rule"]][1], f"{first['days']} 天"]
    assert row_texts(page, "#no-door li") == ["无"]
    assert len(page.query_selector_all("#never-seen li")) == len(data["coverage"]["never_seen"]) == 4

    # Exports: the ranking as CSV for the period shown; last month's review PDF (county users).
    assert "review.csv?days=30" in page.get_attribute("#review-csv", "href")
    monthly = page.get_attribute("#monthly-pdf", "href")
    assert monthly == "/api/v1/review/monthly/2026-10.pdf"  # the server's today is 2026-11-27
    assert page.is_visible("#monthly-pdf")
    assert fits_without_sideways_scrolling(page)
    page.screenshot(path=str(shots_dir(tmp_path) / "duty-review.png"), full_page=True)

    page.click(".period-buttons button[data-days='7']")
    page.wait_for_selector("#review-period:has-text('2026-11-20')")
    assert page.get_attribute(".period-buttons button[data-days='7']", "aria-pressed") == "true"
    csv_href = page.get_attribute("#review-csv", "href")
    assert "review.csv?days=7" in csv_href
    csv = page.request.get(url + csv_href)
    assert csv.status == 200 and csv.headers["content-type"].startswith("text/csv")
    assert order() == sorted_by("availability")  # the chosen order survives a change of period
    assert page.text_content("#missing-days").startswith("有 4 天没有报告数据")
    page.set_viewport_size({"width": 768, "height": 1024})
    assert fits_without_sideways_scrolling(page)


def test_township_duty_sees_only_its_township(reports_server, page, js_errors):
    duty, url = reports_server
    log_in(page, url, "duty-one", "/reports")
    page.wait_for_selector(f"section.report-day[data-day='{D}'] tr[data-scope]")
    assert page.eval_on_selector_all("#report-days tr[data-scope]", "rows => rows.map(r => r.dataset.scope)") == [
        "t-one"]
    assert [t.strip() for t in row_texts(page, "#report-days .scope-name")] == ["镇t-one"]
    assert "测试县" not in page.text_content("#report-days")
    assert page.request.get(url + f"/api/v1/reports/{D}/county.pdf").status == 403

    page.click("nav a[href='/review']")
    page.wait_for_selector("#ranking-rows tr[data-township]")
    assert [r["id"] for r in api(duty, "/review?days=30", user="duty-one")["ranking"]] == ["t-one"]
    assert page.eval_on_selector_all("#ranking-rows tr", "rows => rows.map(r => r.dataset.township)") == ["t-one"]
    page_text = page.text_content("main")
    assert "镇t-two" not in page_text and "场所v-c" not in page_text
    assert page.query_selector("#monthly-pdf") is None  # the monthly review is the county's
    assert page.request.get(url + "/api/v1/review/monthly/2026-10.pdf").status == 403
