"""The re-drive command refuses a count that could only mean nothing."""

import pytest

from shared.messaging.redrive import main


@pytest.mark.parametrize("count", ["0", "-1"])
def test_a_max_below_one_is_a_usage_error_naming_it(
    count: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--max", count])

    assert exited.value.code == 2
    assert "--max: must be at least 1" in capsys.readouterr().err
