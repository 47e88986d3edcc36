async def test_apg(ctx):
    async with ctx.db.connection() as conn:
        for v in (1.5, 3.5, 2.9, 1e19, -0.5):
            try:
                print("PROBE", v, await conn.fetchval("SELECT $1::bigint", v))
            except Exception as e:
                print("PROBE", v, type(e).__mro__, e)
