from tests.conftest import apply_schema

S = {
    "collections": {
        "t": {"fields": {"at": "datetime", "day": "date", "n": "number", "m": "json", "x": "text"}}
    }
}


async def test_probe(admin):
    await apply_schema(admin, S)
    for body in [
        {"at": "0001-01-01T00:00:00+01:00"},
        {"at": "9999-12-31T23:59:59-01:00"},
        {"at": "0001-01-01T00:00:00Z"},
        {"day": "0001-01-01"},
        {"n": 1e308},
        {"n": -1.7976931348623157e308},
        {"m": 1e308},
        {"m": {"a": 2**64}},
        {"m": 9223372036854775808},
        {"x": "\ud800"},
        {"at": "2026-01-31T12:00:00+23:59"},
    ]:
        try:
            r = await admin.post("/api/collections/t/records", json=body)
            print(body, r.status_code, r.text[:300])
        except Exception as e:
            print(body, "EXC", repr(e))
    r = await admin.post(
        "/api/collections/t/records",
        content=b'{"x": "\\ud800"}',
        headers={"content-type": "application/json"},
    )
    print(r.status_code, r.text)
    r = await admin.post(
        "/api/collections/t/records",
        content=b'{"x": "\xff"}',
        headers={"content-type": "application/json"},
    )
    print(r.status_code, r.text)
    r = await admin.get("/api/collections/t/records?sort=-at")
    print(r.status_code, r.text[:500])
