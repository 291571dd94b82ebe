"""Locust load test: players (sign up, write scores, read boards) and game servers (batches).

Run with `scripts/loadtest` (headless, bounded, reports under reports/). 429 answers are expected
under rate limits: they count as successes and are also reported apart, as request type "429".
Set LOADTEST_SERVER_TOKEN (a role=server token) to include game servers posting batches.
"""

from __future__ import annotations

import os
import random
import uuid
from typing import Any

from locust import FastHttpUser, between, events, task

REGIONS = ["GLOBAL", "ASIA", "EU", "NA"]
PLAYERS: list[str] = []  # ids signed up by this Locust process, for reads and server batches


def expected(resp: Any, endpoint: str) -> None:
    """2xx is a success; 429 is an expected answer, counted apart; anything else fails."""
    if resp.status_code == 429:
        resp.success()
        events.request.fire(request_type="429", name=endpoint, response_time=0,
                            response_length=0, exception=None, context={})
    elif 200 <= resp.status_code < 300:
        resp.success()
    else:
        resp.failure(f"HTTP {resp.status_code}: {resp.text[:120]}")


class Player(FastHttpUser):
    """Signs up, then mostly writes its score and reads top-N, its rank and around-me."""

    weight = 10
    wait_time = between(0.05, 0.5)

    def on_start(self) -> None:
        self.user_id = f"lt-{uuid.uuid4().hex[:12]}"
        self.region = random.choice(REGIONS)
        self.score = 0
        body = {"user_id": self.user_id, "name": f"Player {self.user_id[-4:]}",
                "region": self.region, "password": "load-test-password", "initialScore": 0}
        with self.client.post("/auth/register", json=body, catch_response=True,
                              name="POST /auth/register") as resp:
            expected(resp, "POST /auth/register")
            self.token = resp.json().get("token", "") if resp.status_code == 201 else ""
        if self.token:
            PLAYERS.append(self.user_id)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @task(3)
    def update(self) -> None:
        if not self.token:
            return
        self.score += random.randint(1, 50)
        with self.client.post("/score/update", json={"score": self.score}, headers=self.headers(),
                              catch_response=True, name="POST /score/update") as resp:
            expected(resp, "POST /score/update")

    @task(2)
    def add(self) -> None:
        if not self.token:
            return
        key = uuid.uuid4().hex
        with self.client.post("/score/add", json={"delta": random.randint(1, 10)},
                              headers={**self.headers(), "Idempotency-Key": key},
                              catch_response=True, name="POST /score/add") as resp:
            expected(resp, "POST /score/add")

    @task(3)
    def top(self) -> None:
        region = random.choice(REGIONS)
        with self.client.get(f"/top?region={region}&limit=100", catch_response=True,
                             name="GET /top?limit=100") as resp:
            expected(resp, "GET /top?limit=100")

    @task(2)
    def rank(self) -> None:
        with self.client.get(f"/rank/{self.user_id}?region={self.region}", catch_response=True,
                             name="GET /rank/{id}") as resp:
            if resp.status_code == 404:  # not on the board yet: a valid answer
                resp.success()
            else:
                expected(resp, "GET /rank/{id}")

    @task(2)
    def around(self) -> None:
        with self.client.get(f"/around/{self.user_id}?region={self.region}&range=10",
                             catch_response=True, name="GET /around/{id}") as resp:
            if resp.status_code == 404:
                resp.success()
            else:
                expected(resp, "GET /around/{id}")


class GameServer(FastHttpUser):
    """Posts batches of 100 score updates for players already signed up."""

    weight = 1
    wait_time = between(0.5, 1.0)

    def on_start(self) -> None:
        self.token = os.environ.get("LOADTEST_SERVER_TOKEN", "")

    @task
    def batch(self) -> None:
        if not self.token or not PLAYERS:
            return
        items = [{"user_id": random.choice(PLAYERS), "delta": random.randint(1, 5)}
                 for _ in range(100)]
        with self.client.post("/scores/batch", json={"items": items},
                              headers={"Authorization": f"Bearer {self.token}"},
                              catch_response=True, name="POST /scores/batch (100)") as resp:
            expected(resp, "POST /scores/batch (100)")
