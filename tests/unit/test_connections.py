"""Every connection to PostgreSQL notices a vanished peer and passes over a server
that refuses writes, unless told otherwise."""

from psycopg.conninfo import conninfo_to_dict

from shared.postgres.connections import to_live_primary


def test_a_url_gets_keepalives_and_a_user_timeout() -> None:
    settings = conninfo_to_dict(
        to_live_primary("postgresql://executor:pw@db:5432/orders")
    )

    assert settings["host"] == "db"
    assert settings["password"] == "pw"
    assert settings["keepalives"] == "1"
    assert settings["tcp_user_timeout"] == "30000"
    assert settings["connect_timeout"] == "5"


def test_what_the_url_sets_itself_is_kept() -> None:
    settings = conninfo_to_dict(
        to_live_primary("postgresql://db/orders?keepalives_idle=60")
    )

    assert settings["keepalives_idle"] == "60"
    assert settings["keepalives_interval"] == "5"


def test_a_setting_written_with_spaces_or_inside_a_password_is_read_as_libpq_does() -> (
    None
):
    """``keepalives = 0`` is the user's; a password that merely contains
    ``tcp_user_timeout=`` sets nothing."""
    settings = conninfo_to_dict(
        to_live_primary("host=db keepalives = 0 password='tcp_user_timeout=1'")
    )

    assert settings["keepalives"] == "0"
    assert settings["tcp_user_timeout"] == "30000"


def test_a_server_refusing_writes_is_passed_over_unless_the_url_says_otherwise() -> (
    None
):
    default = conninfo_to_dict(to_live_primary("postgresql://db/orders"))
    own = conninfo_to_dict(
        to_live_primary("postgresql://db/orders?target_session_attrs=any")
    )

    assert default["target_session_attrs"] == "read-write"
    assert own["target_session_attrs"] == "any"
