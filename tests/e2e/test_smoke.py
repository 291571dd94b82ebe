from __future__ import annotations

import httpx

from tests.e2e.conftest import bearer, register, uid


async def test_register_update_and_read_back(client: httpx.AsyncClient) -> None:
    user = uid()
    token = await register(client, user, region="EU")
    r = await client.post("/score/update", json={"score": 42}, headers=bearer(token))
    assert r.status_code == 200, r.text
    assert r.json()["score"] == 42
    r = await client.get(f"/rank/{user}", params={"region": "EU"})
    assert r.status_code == 200
    assert r.json()["user_id"] == user and r.json()["score"] == 42
