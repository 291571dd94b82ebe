"""The design's ZSET encoding of both orders, on the real Redis, against the boards model.

docs/boards.md: the ZSET score is the sort key (score on desc boards, -score on asc), the
member is ``member_for(user, reached)``, and reads walk it with ZREVRANGE / ZREVRANK. This
checks that this gives the model's order (ties: first to reach ranks higher) for both orders,
at the ends of the score range too, before any script relies on it.
"""

from __future__ import annotations

import redis as redis_sync
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leaderboard.boards import Board
from leaderboard.keys import member_for, user_of
from leaderboard.settings import MAX_SCORE, Settings
from tests.boards_model import BoardModel

KEY = "lb:test-board-order:board:GLOBAL"
USERS = ["a", "a.b", "b", "B-2", "zed", "z"]
WRITES = st.lists(
    st.tuples(st.sampled_from(USERS),
              st.one_of(st.integers(-3, 3), st.sampled_from([MAX_SCORE, -MAX_SCORE])),
              st.integers(0, 2)),  # clock step: 0 gives equal versions (two instances)
    min_size=1, max_size=25)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.sampled_from(["desc", "asc"]), writes=WRITES)
def test_zrevrange_of_the_sort_key_is_the_model_order(
    settings: Settings, order: str, writes: list[tuple[str, int, int]]
) -> None:
    board = Board("o", "o", order, "set", None, 0)  # type: ignore[arg-type]
    model = BoardModel(board)
    r = redis_sync.Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        r.delete(KEY)
        t = 1
        members: dict[str, str] = {}
        for user, score, step in writes:
            t += step
            entry = model.write(t, user, user, "EU", "score", score).entry
            if user in members:
                r.zrem(KEY, members[user])
            members[user] = member_for(user, entry.reached)
            r.zadd(KEY, {members[user]: board.sort_key(entry.score)})
        got = [user_of(str(m)) for m in r.zrevrange(KEY, 0, -1)]
        assert got == [e.user_id for e in model.standings(1)]
        for i, e in enumerate(model.standings(1)):
            assert r.zrevrank(KEY, members[e.user_id]) == i
            assert int(float(r.zscore(KEY, members[e.user_id]) or 0)) == board.sort_key(e.score)
    finally:
        r.delete(KEY)
        r.close()
