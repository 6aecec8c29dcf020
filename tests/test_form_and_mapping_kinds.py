"""Web forms and saved import mappings as metadata kinds: versioned and
rolled back like every kind, their state (a form's public key and count)
kept beside them, and saved mappings written by the people who import, not
only by admins."""
from __future__ import annotations

import pytest

from leadhub.platform import auth
from tests.conftest import Api, count_rows
from tests.test_webforms import FIELDS, GOOD, campaign, form, lead, public  # noqa: F401  (fixtures)

pytestmark = pytest.mark.plugins("lead")   # each test starts with the plugin installed


def test_a_form_is_an_item_whose_public_key_survives_edits_and_rollback(api, form, public, runtime):
    assert form["api_name"] == "form_1" and form["owner"] is not None and form["submissions"] == 0
    key = form["public_key"]
    assert api.patch(f"/meta/web-forms/{form['api_name']}", {"name": "官网咨询 2026"}).status_code == 200
    assert public.post(f"/forms/{key}", data=GOOD).status_code == 200
    got = api.get(f"/meta/web-forms/{form['id']}").get_json()
    assert got["public_key"] == key and got["submissions"] == 1 and got["name"] == "官网咨询 2026"
    diff = api.get("/meta/web-forms/form_1/diff?from=1&to=2").get_json()
    assert diff["changed"] == {"name": {"from": "官网咨询", "to": "官网咨询 2026"}}
    back = api.post("/meta/web-forms/form_1/rollback", {"version": 1}).get_json()
    assert back["name"] == "官网咨询" and back["public_key"] == key
    # sending the whole view back (with its key, snippet and counts) changes nothing and is accepted
    assert api.patch("/meta/web-forms/form_1", back).status_code == 200
    # the owner is kept by login, so a form moves between instances
    assert runtime.kinds.items("web_form")["form_1"].data["owner"] == "admin"


def test_deleting_a_form_takes_its_key_and_counts(api, form, public, runtime):
    assert api.delete(f"/meta/web-forms/{form['api_name']}").status_code == 204
    assert public.post(f"/forms/{form['public_key']}", data=GOOD).status_code == 404
    assert count_rows(runtime, "lh_web_form_keys") == 0 and count_rows(runtime, "lh_web_form_hits") == 0


def test_a_form_naming_an_unknown_owner_or_field_is_refused(api, lead):
    r = api.post("/meta/web-forms", {"name": "x", "fields": ["name", "mobile"], "owner": "nobody"})
    assert r.status_code == 400 and "owner" in r.get_json()["error"]["fields"]
    r = api.post("/meta/web-forms", {"name": "x", "fields": ["name", "nope"]})
    assert r.status_code == 400 and "fields.1" in r.get_json()["error"]["fields"]
    assert api.get("/meta/web-forms").get_json()["items"] == []


@pytest.fixture
def importers(app, api, lead, runtime):
    r = api.post("/roles", {"api_name": "importer", "label": "importer",
                            "objects": {"lead": {"create": True, "read": True, "import": True, "scope": "own"}}})
    assert r.status_code == 201, r.get_json()
    r = api.post("/roles", {"api_name": "no_import", "label": "no_import",
                            "objects": {"lead": {"create": True, "read": True, "scope": "own"}}})
    assert r.status_code == 201, r.get_json()
    out = {}
    for login, role in (("imp1", "importer"), ("imp2", "importer"), ("plain", "no_import")):
        r = api.post("/users", {"login": login, "name": login, "password": "leadhub-test-1", "roles": [role]})
        assert r.status_code == 201, r.get_json()
        out[login] = Api(app.test_client(), auth.create_token(runtime.db, login))
    return out


MAPPING = {"name": "展会名单", "object": "lead", "mapping": {"姓名": "name", "手机": "mobile"}}


def test_saved_mappings_are_written_by_importers_and_changed_by_their_author(api, importers, runtime):
    imp1, imp2, plain = importers["imp1"], importers["imp2"], importers["plain"]
    saved = imp1.post("/imports/mappings", MAPPING)
    assert saved.status_code == 201, saved.get_json()
    mid = saved.get_json()["id"]
    assert runtime.kinds.items("import_mapping")["lead.展会名单"].data["mapping"] == MAPPING["mapping"]
    # another importer uses it but may not change or delete it; one who may not import does not see it
    assert imp2.get(f"/imports/mappings/{mid}").status_code == 200
    assert imp2.patch("/meta/import-mappings/lead.展会名单", {"name": "改名"}).status_code == 403
    assert imp2.delete(f"/imports/mappings/{mid}").status_code == 403
    assert plain.get(f"/imports/mappings/{mid}").status_code == 404
    assert plain.get("/imports/mappings").get_json()["mappings"] == []
    assert plain.post("/imports/mappings", {**MAPPING, "name": "mine"}).status_code == 403
    # its author renames it (the history follows) and an admin may delete it
    r = imp1.patch("/meta/import-mappings/lead.展会名单", {"name": "2026 展会名单"})
    assert r.status_code == 200, r.get_json()
    versions = api.get("/meta/import-mappings/lead.2026 展会名单/versions").get_json()["versions"]
    assert [v["data"]["name"] for v in versions] == ["2026 展会名单", "展会名单"]
    assert api.delete(f"/imports/mappings/{mid}").status_code == 204
    assert count_rows(runtime, "lh_meta_items", "kind = 'import_mapping'") == 0


def test_a_mapping_naming_a_field_the_importer_may_not_write_is_refused(api, importers):
    r = api.patch("/roles/importer", {"objects": {"lead": {"create": True, "read": True, "import": True,
                                                           "scope": "own", "fields": {"title": "read"}}}})
    assert r.status_code == 200, r.get_json()
    r = importers["imp1"].post("/imports/mappings", {**MAPPING, "mapping": {"姓名": "name", "职务": "title"}})
    assert r.status_code == 400 and "mapping.职务" in r.get_json()["error"]["fields"]
