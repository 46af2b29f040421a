"""Settings an operator gets wrong are refused at start, naming the variable."""

import pytest

from shared.settings import load_settings


@pytest.fixture(autouse=True)
def no_env_file(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.chdir(str(tmp_path))  # no .env of the checkout's


@pytest.mark.parametrize(
    ("variables", "said"),
    [
        # 0 is no prefetch limit to RabbitMQ: one process would take the queue
        ({"ROUTER_PREFETCH": "0"}, "ROUTER_PREFETCH=0: Input should be greater"),
        ({"SLOT_MS": "0"}, "SLOT_MS=0: Input should be greater"),
        ({"RELAY_PUBLISH_CONCURRENCY": "0"}, "RELAY_PUBLISH_CONCURRENCY=0"),
        ({"FAULT_NETWORK_RATE": "1.5"}, "FAULT_NETWORK_RATE=1.5"),
        ({"GATEWAY_PORT": "70000"}, "GATEWAY_PORT=70000"),
        ({"LOG_LEVEL": "verbose"}, "LOG_LEVEL=verbose"),
        (
            {"CONFIRM_MIN_MS": "5000", "CONFIRM_MAX_MS": "3000"},
            "CONFIRM_MIN_MS (5000) is above CONFIRM_MAX_MS (3000)",
        ),
    ],
)
def test_an_invalid_setting_exits_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variables: dict[str, str],
    said: str,
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(SystemExit) as exited:
        load_settings()

    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("invalid settings:")
    assert said in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("given", "taken"), [("debug", "DEBUG"), ("WARN", "WARNING"), ("warn", "WARNING")]
)
def test_a_log_level_is_taken_as_logging_takes_it(
    monkeypatch: pytest.MonkeyPatch, given: str, taken: str
) -> None:
    monkeypatch.setenv("LOG_LEVEL", given)

    assert load_settings().log_level == taken


def test_a_back_off_base_above_its_cap_is_a_constant_back_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The policy takes min(base x 2^n, max): a valid setting, not a mistake."""
    monkeypatch.setenv("BACKOFF_MAX_MS", "100")

    assert load_settings().backoff_max_ms == 100
