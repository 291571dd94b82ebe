"""The shard map (REDIS_SHARDS), region splits (REGION_SPLITS) and the consistent-hash ring."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from leaderboard.shards import HashRing, Topology, redacted, split_names, stable_hash

OTHER = "redis://10.0.0.2:6380/1"


def test_default_is_one_instance_one_shard_per_region(make_settings) -> None:  # type: ignore[no-untyped-def]
    t = Topology.of(make_settings(REDIS_URL="redis://127.0.0.1:6379/3"))
    assert t.urls() == ["redis://127.0.0.1:6379/3"]
    assert t.all_shards() == ["GLOBAL", "ASIA", "EU", "NA"]
    assert t.shard_for("EU", "anyone") == "EU" and t.remote_shards() == []
    assert t.boards_on(t.global_url, "EU") == "gr" and t.boards_on(t.global_url, "GLOBAL") == "g"


def test_mapped_regions_live_on_their_instance(make_settings) -> None:  # type: ignore[no-untyped-def]
    s = make_settings(REDIS_SHARDS=f"eu={OTHER}, ASIA={OTHER}")
    t = Topology.of(s)
    assert s.shard_map() == {"EU": OTHER, "ASIA": OTHER}
    assert t.urls() == [s.redis_url, OTHER]
    assert t.shards_on(OTHER) == ["ASIA", "EU"] and t.shards_on(s.redis_url) == ["GLOBAL", "NA"]
    assert t.remote_shards() == ["ASIA", "EU"]
    # GLOBAL's instance keeps only GLOBAL (and copies of hashes) for remote regions
    assert t.boards_on(s.redis_url, "EU") == "g" and t.boards_on(OTHER, "EU") == "r"
    assert t.boards_on(OTHER, "NA") == "" and t.boards_on(s.redis_url, "NA") == "gr"


@pytest.mark.parametrize(("value", "message"), [
    ("XX=redis://h:1/0", "unknown region 'XX'"),
    (f"EU={OTHER},eu={OTHER}", "EU is listed twice"),
    (f"GLOBAL={OTHER}", "GLOBAL always lives on REDIS_URL"),
    ("EU", "is not REGION=value"),
    ("EU=", "is not REGION=value"),
    ("EU=http://h:1/0", "not a redis://"),
    ("EU=redis://h:notaport/0", "invalid port"),
    ("EU=redis://h:99999/0", "invalid port"),
    ("EU=redis:///0", "needs a host"),
    ("EU=redis://h:1/db", "numeric database"),
])
def test_bad_shard_maps_are_configuration_errors(make_settings, value: str, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError, match=message):
        make_settings(REDIS_SHARDS=value)


def test_bad_redis_url_is_refused(make_settings) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError, match="REDIS_URL"):
        make_settings(REDIS_URL="localhost:6379")


@pytest.mark.parametrize(("value", "message"), [
    ("EU=0", "1-64"), ("EU=65", "1-64"), ("EU=two", "1-64"), ("EU=-1", "1-64"),
    ("MARS=2", "unknown region"), ("EU=2,EU=3", "listed twice"),
])
def test_bad_splits_are_configuration_errors(make_settings, value: str, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError, match=message):
        make_settings(REGION_SPLITS=value)


def test_split_region_has_named_shards_on_its_instance(make_settings) -> None:  # type: ignore[no-untyped-def]
    t = Topology.of(make_settings(REDIS_SHARDS=f"EU={OTHER}", REGION_SPLITS="EU=3"))
    assert t.shards["EU"] == ["EU", "EU.1", "EU.2"]
    assert t.shards_on(OTHER) == ["EU", "EU.1", "EU.2"]
    assert {t.shard_for("EU", f"u{i}") for i in range(300)} == {"EU", "EU.1", "EU.2"}
    assert t.shard_for("NA", "u1") == "NA"



def test_stable_hash_is_blake2b_not_pythons_salted_hash() -> None:
    import hashlib

    digest = hashlib.blake2b(b"alice", digest_size=8).digest()
    assert stable_hash("alice") == int.from_bytes(digest, "big")


USERS = [f"user-{i}" for i in range(10_000)]


def moved(before: HashRing, after: HashRing) -> dict[str, tuple[str, str]]:
    out = {}
    for u in USERS:
        a, b = before.shard_for(u), after.shard_for(u)
        if a != b:
            out[u] = (a, b)
    return out


def test_adding_a_shard_moves_about_one_in_n_plus_one_users_all_to_the_new_shard() -> None:
    four, five = HashRing(split_names("EU", 4)), HashRing(split_names("EU", 5))
    changes = moved(four, five)
    share = len(changes) / len(USERS)
    assert 0.13 < share < 0.27, share  # ideal 1/5 = 0.20
    assert {new for _, new in changes.values()} == {"EU.4"}  # nobody moves between old shards
    # modulo hashing would move about 4/5 of the users
    modulo = sum(1 for u in USERS if stable_hash(u) % 4 != stable_hash(u) % 5) / len(USERS)
    assert modulo > 0.7 and share < modulo / 3


def test_ring_spreads_users_evenly_enough() -> None:
    ring = HashRing(split_names("EU", 4))
    counts: dict[str, int] = {}
    for u in USERS:
        counts[ring.shard_for(u)] = counts.get(ring.shard_for(u), 0) + 1
    assert len(counts) == 4
    assert all(0.6 * 2500 < c < 1.4 * 2500 for c in counts.values()), counts


def test_ring_is_deterministic_across_instances() -> None:
    a, b = HashRing(["X", "X.1", "X.2"]), HashRing(["X.2", "X", "X.1"])
    assert all(a.shard_for(u) == b.shard_for(u) for u in USERS[:2000])


def test_redacted_hides_credentials() -> None:
    assert redacted("redis://user:secret@host:6380/2") == "host:6380/2"
    assert redacted("redis://host") == "host:6379/0"
