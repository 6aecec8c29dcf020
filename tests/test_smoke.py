def test_health_and_auth(api, app):
    assert app.test_client().get("/healthz").get_json() == {"status": "ok"}
    r = app.test_client().get("/api/v1/meta/objects")
    assert r.status_code == 401
    assert r.get_json()["error"]["code"] == "unauthorized"
    assert api.get("/meta/objects").status_code == 200
