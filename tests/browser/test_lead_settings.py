"""A short walk through the lead settings pages in Debian's Chromium: the
admin finds "Leads settings" in the designer, builds a combined duplicate
rule in the form, checks a draft and sees 纷扬科技 meet 北京纷扬科技有限公司,
makes a web form and copies its snippet, and starts a rescore whose progress
the page follows. Screenshots go to tests/artifacts/screenshots/lead-*."""
from __future__ import annotations

import pytest

from leadhub.platform import auth
from tests.browser.test_designer_and_rep import PW, browser, needs_chromium, server, shot, sign_in  # noqa: F401
from tests.conftest import Api, embedded_only

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = [needs_chromium, embedded_only]


def test_admin_sets_up_duplicate_checks_a_web_form_and_rescoring(server, browser, runtime, app):
    runtime.plugins.install("lead")
    admin_id = auth.user_id(runtime.db, "admin")
    runtime.org.update_user(auth.actor_for(runtime.db, runtime.cache, admin_id), admin_id,
                            {"password": PW, "language": "en"})
    api = Api(app.test_client(), auth.create_token(runtime.db, "admin"))
    original = api.post("/objects/lead/records", {"name": "王总", "company": "北京纷扬科技有限公司",
                                                  "province": "beijing", "city": "beijing"}).get_json()

    page = browser.new_page()
    sign_in(page, server, "admin")
    page.goto(f"{server}/admin/")
    page.click("text=Leads settings")
    page.wait_for_url(f"{server}/admin/leads/")
    shot(page, "lead-settings")

    # a combined rule: fuzzy company name (85) and the same city
    page.click(".lead-tabs >> text=Duplicate rules")
    page.click("text=New duplicate rule")
    page.fill("#r-name", "company_city")
    page.fill("#r-label", "Company and city")
    assert page.input_value("#c0-field") == "company" and page.input_value("#c0-th") == "85"
    assert page.input_value("#c1-field") == "city"
    shot(page, "lead-duplicate-rule")
    page.click("#rule-form button[type=submit]")
    page.wait_for_url(f"{server}/admin/leads/duplicate-rules/company_city")
    assert "Duplicate rule saved." in page.inner_text("main")

    page.click(".lead-tabs >> text=Duplicate rules")
    page.fill("#d-company", "纷扬科技")
    page.select_option("#d-province", "beijing")
    page.select_option("#d-city", "beijing")
    page.click(".draft-check button[type=submit]")
    page.wait_for_selector("#check-result")
    assert "1 possible duplicates found." in page.inner_text("#check-result")
    assert page.locator(f'#check a[href="/o/lead/{original["id"]}"]').count() == 1
    shot(page, "lead-draft-check")

    # a web form, its snippet copied
    page.click(".lead-tabs >> text=Web forms")
    page.click("text=New web form")
    page.fill("#w-name", "官网咨询")
    page.select_option("#w-source", "website")
    page.click(".stack button[type=submit].primary")
    page.wait_for_selector("#snippet")
    assert page.input_value("#snippet").startswith('<form id="lh-form-')
    copy = page.locator("[data-copy=snippet]")
    copy.click()
    page.wait_for_function("document.querySelector('[data-copy=snippet]').textContent === 'Copied'")
    shot(page, "lead-web-form")
    with page.expect_popup() as popup:
        page.click("#preview-link")
    live = popup.value
    live.wait_for_load_state()
    assert live.locator("form.lh-web-form").count() == 1

    # rescoring: the job runs inline here, so the page shows it finished
    page.click(".lead-tabs >> text=Scoring")
    page.click("#rescore button[type=submit]")
    page.wait_for_selector("#rescore-progress")
    assert "Done" in page.inner_text("#rescore-progress")
    shot(page, "lead-scoring")

    page.click(".lead-tabs >> text=Follow-up rules")
    page.fill("#h-new", "24")
    page.locator("#status-new button[type=submit]").click()
    page.wait_for_selector("text=Follow-up rule saved.")
    shot(page, "lead-follow-up")
