from tests.conftest import apply_schema

POSTS = {"collections": {"posts": {"fields": {"title": {"type": "text", "required": True}}}}}


async def test_create_then_get(admin):
    await apply_schema(admin, POSTS)
    created = await admin.post("/api/collections/posts/records", json={"title": "hello"})
    assert created.status_code == 201, created.text
    record = created.json()
    got = await admin.get(f"/api/collections/posts/records/{record['id']}")
    assert got.json() == record
