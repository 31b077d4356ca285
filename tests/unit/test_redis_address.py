"""REDIS_URL as text: redaction, the checks that give a clear error, and which credentials win."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from mimir_edge.rls.settings import parse_settings
from mimir_edge.store.address import check_url, redact_url
from mimir_edge.store.client import RedisConfig

AWKWARD = "p@ss/w:rd%40x"
ENCODED = quote(AWKWARD, safe="")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:s3cret@r:6379/0", "redis://:***@r:6379/0"),
        ("rediss://edge:s3cret@r:6380/2", "rediss://edge:***@r:6380/2"),
        ("redis://edge@r:6379", "redis://edge@r:6379"),  # a user alone is no secret
        (f"redis://:{ENCODED}@r:6379/0", "redis://:***@r:6379/0"),
        # Unencoded, as the charts used to splice it: urlsplit would show half of it as the host.
        (f"redis://:{AWKWARD}@r:6379/0", "redis://:***@r:6379/0"),
        ("redis://r:6379/0?password=s3cret&db=1", "redis://r:6379/0?password=***&db=1"),
        ("unix://:s3cret@/run/redis.sock?db=0", "unix://:***@/run/redis.sock?db=0"),
    ],
)
def test_redact_url_hides_every_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        (f"redis://:{AWKWARD}@r:6379/0", "w:rd"),  # the raw / ends the host part: the rest would be a path
        ("redis://:Zq9#Xv7@r:6379/0", "Zq9"),
        ("http://:Zq9@r:6379", "Zq9"),
        ("redis://:Zq9@r:port/0", "Zq9"),
        ("redis://r:6379/0?password=Zq9", "Zq9"),
    ],
)
def test_a_url_redis_would_misread_is_refused_without_showing_the_password(url: str, secret: str) -> None:
    with pytest.raises(ValueError) as caught:
        check_url(url)
    assert secret not in str(caught.value)


def test_redis_password_wins_over_the_url_and_never_shows_in_repr() -> None:
    config = RedisConfig(url=f"rediss://old:{quote('old-secret')}@r:6380/0", username="edge", password=AWKWARD)
    assert config.credentials == ("edge", AWKWARD)
    assert config.tls
    assert "old-secret" not in repr(config) and AWKWARD not in repr(config)
    assert RedisConfig(url=f"redis://:{ENCODED}@r:6379/0").credentials == (None, AWKWARD)


def test_rls_settings_read_redis_password_and_username_from_the_environment() -> None:
    settings = parse_settings(
        [], env={"REDIS_URL": "redis://r:6379/0", "REDIS_PASSWORD": AWKWARD, "REDIS_USERNAME": "edge"}
    )
    assert settings.redis.credentials == ("edge", AWKWARD)
    assert AWKWARD not in repr(settings)


def test_a_bad_redis_url_is_a_clear_error_that_hides_the_password(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_settings([], env={"REDIS_URL": f"redis://:{AWKWARD}@r:6379/0"})
    err = capsys.readouterr().err
    assert "REDIS_PASSWORD" in err and "--redis-url" in err
    assert AWKWARD not in err and "w:rd" not in err


def test_help_shows_redis_url_without_its_password() -> None:
    from mimir_edge.rls.settings import build_parser
    from mimir_edge.sync.main import build_parser as sync_parser

    env = {"REDIS_URL": f"redis://:{ENCODED}@r:6379/0", "REDIS_PASSWORD": AWKWARD}
    for parser in (build_parser(env), sync_parser(env)):
        text = parser.format_help()
        assert "redis://:***@r:6379/0" in text
        assert ENCODED not in text and AWKWARD not in text
