"""The HTML report, opened in a real browser: headless Chromium renders it and the test
reads the resulting DOM. Without a browser these tests skip with one line saying so;
with one they pass only on a page that was rendered."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from browser import Tables, render
from flatscape.pipeline.claims import CHECKS, FAILS, HOLDS, NO_THESIS_VALUE, NOT_RUN
from workflow_helpers import snakemake


def test_the_browser_check_sees_the_dom_and_a_javascript_error(tmp_path):
    page = tmp_path / "page.html"
    page.write_text("<html><body><table class='t'><tr><td>a</td></tr></table>"
                    "<script>document.body.insertAdjacentHTML('beforeend', '<p id=added>by script</p>');"
                    "notAFunction();</script></body></html>")  # fmt: skip
    shown = render(page, tmp_path / "profile", budget_ms=1000)
    assert 'id="added"' in shown.dom  # the script ran before the DOM was read
    assert Tables(shown.dom).tables == [("t", [["a"]])]
    assert any("notAFunction" in line for line in shown.js_errors)


@pytest.mark.slow
def test_report_opens_on_the_claims_table_of_the_run(tiny_run, tmp_path):
    snakemake(tiny_run, "--configfile", "tiny.yaml", "--report", "report_browser.html")
    claims = pd.read_csv(tiny_run / "results/tiny/tables/claims.csv", keep_default_na=False)
    shown = render(tiny_run / "report_browser.html", tmp_path / "profile")
    assert shown.js_errors == []
    tables = Tables(shown.dom).tables
    assert tables, "the report rendered no table"
    css, rows = tables[0]  # the landing page's first table
    assert "claims" in css.split()
    header, body = rows[0], rows[1:]
    assert header == list(claims.columns)
    assert len(body) == len(claims) >= len(CHECKS)  # one row per claim, every check at least once
    assert [row[1] for row in body] == list(claims["claim"])
    assert {row[4] for row in body} <= {HOLDS, FAILS, NOT_RUN, NO_THESIS_VALUE}
    # tiny runs every chapter: the claims whose tables it builds are checked, not skipped
    checked = {row[5] for row in body if row[4] != NOT_RUN}
    assert {"table_3_7.csv", "table_3_euclidean_vs_riemannian.csv", "table_4_1.csv", "table_4_2.csv"} <= checked
    # the configuration dump comes after the claims, folded
    dom = re.sub(r"<script.*?</script>", "", shown.dom, flags=re.S)
    assert dom.index('class="claims') < dom.index(">Configuration</h") < dom.index('<details class="configuration"')
