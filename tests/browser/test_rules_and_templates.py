"""A walk through "Rules and settings" and "Templates" in Debian's Chromium,
in Chinese: the admin opens a duplicate rule from the generic editor, changes
its window, compares the two versions and brings the first back; then
installs the education template from its file, sees the plan, installs, and
exports a template of his own. No page scrolls sideways on a phone.
Screenshots go to tests/artifacts/screenshots/kinds-* and bundles-*."""
from __future__ import annotations

from pathlib import Path

import pytest

from leadhub.metadata import bundles
from leadhub.platform import auth
from tests.browser.test_designer_and_rep import PW, browser, needs_chromium, server, shot, sign_in  # noqa: F401
from tests.conftest import Api, embedded_only

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = [needs_chromium, embedded_only]
EXAMPLES = Path(__file__).resolve().parents[2] / "bundles"


def no_sideways_scroll(page) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    width = page.evaluate("document.documentElement.scrollWidth")
    page.set_viewport_size({"width": 1280, "height": 900})
    assert width <= 392, f"{page.url} is {width}px wide on a 390px phone"


def test_admin_changes_a_rule_compares_versions_and_installs_a_template(server, browser, runtime, app, tmp_path):
    runtime.plugins.install("lead")
    admin_id = auth.user_id(runtime.db, "admin")
    runtime.org.update_user(auth.actor_for(runtime.db, runtime.cache, admin_id), admin_id,
                            {"password": PW, "language": "zh_CN"})
    api = Api(app.test_client(), auth.create_token(runtime.db, "admin"))
    assert api.post("/meta/duplicate-rules", {"name": "by_mobile", "label": "同手机",
                                              "conditions": [{"field": "mobile", "normaliser": "e164"}]}
                    ).status_code == 201

    page = browser.new_page()
    sign_in(page, server, "admin")
    page.goto(f"{server}/admin/")
    page.click("text=规则与设置")
    page.wait_for_url(f"{server}/admin/meta")
    assert "查重规则" in page.inner_text("main")
    shot(page, "kinds-index")
    no_sideways_scroll(page)

    page.click("text=查重规则")
    page.click("text=同手机")
    page.wait_for_url(f"{server}/admin/meta/duplicate-rules/by_mobile")
    assert page.locator("#k-action option:checked").inner_text() == "标记为重复"
    page.fill("#k-window_months", "6")
    page.fill("#k-note", "半年内算重复")
    page.click("form.stack button:has-text('保存')")
    page.wait_for_selector("text=已保存。")
    assert "半年内算重复" in page.inner_text("#history")
    shot(page, "kinds-item")
    no_sideways_scroll(page)

    page.click("#history button:has-text('比较')")
    page.wait_for_selector("table.diff")
    assert "时间窗口（月）" in page.inner_text("table.diff")
    shot(page, "kinds-diff")
    no_sideways_scroll(page)
    page.go_back()
    page.click("#history button:has-text('恢复到此版本')")
    page.wait_for_selector("text=版本 1 已恢复为当前定义。")
    assert runtime.kinds.items("duplicate_rule")["by_mobile"].data["window_months"] is None

    # the education template from its file: the plan, then install
    archive = tmp_path / "edu_training-1.0.0.zip"
    archive.write_bytes(bundles.write(bundles.read_path(EXAMPLES / "edu_training" / "1.0.0")))
    page.click("nav.tabs >> text=模板")
    page.wait_for_url(f"{server}/admin/bundles")
    shot(page, "bundles-index")
    no_sideways_scroll(page)
    page.set_input_files("#b-file", str(archive))
    page.click("text=查看将做的变更")
    page.wait_for_selector("text=尚未在此安装。")
    assert "course_intent" in page.inner_text("main")
    shot(page, "bundles-plan")
    no_sideways_scroll(page)
    page.click("form.stack button:has-text('安装')")
    page.wait_for_selector("text=edu_training 1.0.0 已安装")
    assert "教育培训行业模板" in page.inner_text("main")
    assert "course_intent" in runtime.cache.current().objects

    # a template of his own: what goes in is shown before the download
    page.click("text=导出模板…")
    page.fill("#x-name", "my_visits")
    page.check("input[value='course_intent']")
    page.click("text=查看将包含的内容")
    page.wait_for_selector("#preview")
    assert "lead.grade_level" not in page.inner_text("#preview")    # not chosen, not needed by the object
    shot(page, "bundles-export")
    no_sideways_scroll(page)
    with page.expect_download() as download:
        page.click("text=下载模板")
    assert download.value.suggested_filename == "my_visits-1.0.0.zip"
    made = bundles.read(Path(download.value.path()).read_bytes())
    assert "object/course_intent" in made.entries
