"""Settings: secret length, REGIONS parsing, DSN building, bounds."""

from __future__ import annotations

import getpass

import pytest
from pydantic import ValidationError

from leaderboard.settings import GLOBAL, MAX_SCORE, Settings, StoreSettings


def test_max_score_is_largest_exact_double_integer() -> None:
    assert MAX_SCORE == 2**53 - 1
    assert float(MAX_SCORE) == MAX_SCORE and float(MAX_SCORE + 2) != MAX_SCORE + 2


# -- JWT_SECRET -----------------------------------------------------------------------------


def test_jwt_secret_required(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        Settings()  # type: ignore[call-arg]


@pytest.mark.parametrize("secret", ["", "x", "x" * 31, "é" * 15 + "x"])  # last one: 31 bytes
def test_short_jwt_secret_refused(make_settings, secret: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        make_settings(JWT_SECRET=secret)


@pytest.mark.parametrize("secret", ["x" * 32, "é" * 16, "k" * 100])  # "é"*16: 16 chars, 32 bytes
def test_jwt_secret_of_32_bytes_or_more_accepted(make_settings, secret: str) -> None:  # type: ignore[no-untyped-def]
    s = make_settings(JWT_SECRET=secret)
    assert s.jwt_secret.get_secret_value() == secret


def test_jwt_secret_never_shown(make_settings) -> None:  # type: ignore[no-untyped-def]
    s = make_settings(JWT_SECRET="super-secret-value-" + "z" * 20)
    assert "super-secret-value" not in repr(s)
    assert "super-secret-value" not in str(s.model_dump())


def test_secret_read_from_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("JWT_SECRET", "e" * 40)
    assert Settings().jwt_secret.get_secret_value() == "e" * 40  # type: ignore[call-arg]
    clean_env.setenv("JWT_SECRET", "e" * 10)
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        Settings()  # type: ignore[call-arg]


def test_settings_are_frozen(make_settings) -> None:  # type: ignore[no-untyped-def]
    s = make_settings()
    with pytest.raises(ValidationError):
        s.port = 1  # type: ignore[misc]


# -- REGIONS --------------------------------------------------------------------------------


def test_default_regions(make_settings) -> None:  # type: ignore[no-untyped-def]
    assert make_settings().region_list == ["GLOBAL", "ASIA", "EU", "NA"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("EU,NA", ["GLOBAL", "EU", "NA"]),
        (" eu , na ,", ["GLOBAL", "EU", "NA"]),
        ("", ["GLOBAL"]),
        (" , ,", ["GLOBAL"]),
        ("global", ["GLOBAL"]),
        ("GLOBAL,ASIA", ["GLOBAL", "ASIA"]),
        ("US_EAST_1,X9", ["GLOBAL", "US_EAST_1", "X9"]),
        ("A" + "B" * 49, ["GLOBAL", "A" + "B" * 49]),
    ],
)
def test_regions_normalised_and_global_present(make_settings, raw: str, expected: list[str]) -> None:  # type: ignore[no-untyped-def]
    s = make_settings(REGIONS=raw)
    assert s.region_list == expected
    assert s.regions == ",".join(expected)


def test_regions_from_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("JWT_SECRET", "e" * 40)
    clean_env.setenv("REGIONS", "sa,af")
    assert Settings().region_list == ["GLOBAL", "SA", "AF"]  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "raw",
    [
        "EU,9NA",  # starts with a digit
        "EU,N-A",  # hyphen
        "EU,N A",  # inner space
        "EU,_NA",  # starts with underscore
        "EU,É",  # non-ASCII
        "A" + "B" * 50,  # 51 characters
        "EU;NA",  # wrong separator
        "lb:x",  # key separator would corrupt Redis key names
    ],
)
def test_invalid_region_names_refused(make_settings, raw: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError, match="invalid names"):
        make_settings(REGIONS=raw)


@pytest.mark.parametrize("raw", ["EU,EU", "eu,EU", "GLOBAL,EU,global", "NA, na"])
def test_duplicate_regions_refused(make_settings, raw: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError, match="twice"):
        make_settings(REGIONS=raw)


def test_global_constant() -> None:
    assert GLOBAL == "GLOBAL"


def test_global_first_even_when_listed_later(make_settings) -> None:  # type: ignore[no-untyped-def]
    assert make_settings(REGIONS="EU,GLOBAL,NA").region_list[0] == GLOBAL


# -- other bounds ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {"JWT_TTL_SECONDS": 59},
        {"PASSWORD_SCRYPT_N": 1},
        {"BOARD": "Default"},
        {"BOARD": "a" * 33},
        {"BOARD": ""},
        {"BOARD": "a:b"},
        {"PORT": 0},
        {"PORT": 65536},
        {"WRITER_POOL_SIZE": 0},
        {"WRITER_POOL_SIZE": 65},
        {"WRITER_BATCH_SIZE": 0},
        {"WRITER_BATCH_SIZE": 10001},
        {"WRITER_BATCH_WAIT_MS": 0},
        {"WRITER_CLAIM_IDLE_MS": 99},
    ],
)
def test_out_of_bounds_knobs_refused(make_settings, kw: dict[str, object]) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError):
        make_settings(**kw)


def test_numeric_knobs_parsed_from_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("JWT_SECRET", "e" * 40)
    clean_env.setenv("PORT", "9001")
    clean_env.setenv("WRITER_BATCH_SIZE", "77")
    s = Settings()  # type: ignore[call-arg]
    assert (s.port, s.writer_batch_size) == (9001, 77)
    clean_env.setenv("PORT", "not-a-port")
    with pytest.raises(ValidationError):
        Settings()  # type: ignore[call-arg]


@pytest.mark.parametrize("n", [1000, 3, 16383])
def test_unusable_scrypt_n_refused(make_settings, n: int) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError):
        make_settings(PASSWORD_SCRYPT_N=n)


# -- Postgres DSN ---------------------------------------------------------------------------


def test_dsn_defaults(clean_env: pytest.MonkeyPatch) -> None:
    s = StoreSettings()
    assert s.dsn() == f"postgresql://{getpass.getuser()}@127.0.0.1:5432/leaderboard"
    assert s.database_name() == "leaderboard"
    assert s.redis_url == "redis://127.0.0.1:6379/0"


def test_dsn_from_pg_variables(clean_env: pytest.MonkeyPatch) -> None:
    for k, v in {"PGHOST": "db.internal", "PGPORT": "6543", "PGUSER": "svc",
                 "PGPASSWORD": "pw", "PGDATABASE": "lb_prod"}.items():
        clean_env.setenv(k, v)
    s = StoreSettings()
    assert s.dsn() == "postgresql://svc:pw@db.internal:6543/lb_prod"
    assert s.dsn("postgres") == "postgresql://svc:pw@db.internal:6543/postgres"
    assert s.database_name() == "lb_prod"


def test_dsn_escapes_user_and_password(clean_env: pytest.MonkeyPatch) -> None:
    s = StoreSettings(PGUSER="a b@c", PGPASSWORD="p@ss/w:rd#?%", PGHOST="h", PGDATABASE="d")
    assert s.dsn() == "postgresql://a%20b%40c:p%40ss%2Fw%3Ard%23%3F%25@h:5432/d"
    assert "p@ss" not in repr(s)


def test_dsn_without_password_has_no_colon(clean_env: pytest.MonkeyPatch) -> None:
    s = StoreSettings(PGUSER="u", PGHOST="h")
    assert s.dsn() == "postgresql://u@h:5432/leaderboard"


def test_empty_password_kept(clean_env: pytest.MonkeyPatch) -> None:
    s = StoreSettings(PGUSER="u", PGHOST="h", PGPASSWORD="")
    assert s.dsn() == "postgresql://u:@h:5432/leaderboard"


def test_database_url_wins_over_pg_variables(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("PGHOST", "ignored")
    clean_env.setenv("PGDATABASE", "ignored_db")
    clean_env.setenv("DATABASE_URL", "postgresql://u:p@h:5432/app")
    s = StoreSettings()
    assert s.dsn() == "postgresql://u:p@h:5432/app"
    assert s.dsn("postgres") == "postgresql://u:p@h:5432/postgres"
    assert s.database_name() == "app"


def test_database_name_strips_query(clean_env: pytest.MonkeyPatch) -> None:
    s = StoreSettings(DATABASE_URL="postgresql://u:p@h/app_db?sslmode=require")
    assert s.dsn() == "postgresql://u:p@h/app_db?sslmode=require"
    assert s.database_name() == "app_db"


def test_dsn_for_other_database_keeps_query(clean_env: pytest.MonkeyPatch) -> None:
    s = StoreSettings(DATABASE_URL="postgresql://u:p@h/app_db?sslmode=require")
    assert s.dsn("postgres") == "postgresql://u:p@h/postgres?sslmode=require"


def test_settings_inherit_store_dsn(make_settings) -> None:  # type: ignore[no-untyped-def]
    s = make_settings(PGUSER="u", PGHOST="h", PGDATABASE="d", PGPORT=1)
    assert s.dsn() == "postgresql://u@h:1/d"
    assert s.database_name() == "d"


def test_suite_environment_settings_do_not_point_at_production() -> None:
    # tests/conftest.py sets these defaults; unit tests must not depend on anything else.
    s = Settings()  # type: ignore[call-arg]
    assert s.database_name() != "leaderboard"
    assert not s.redis_url.endswith("/0")
