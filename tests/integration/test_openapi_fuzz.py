"""Hostile HTTP input: schemathesis fuzzes every operation of the gateway's OpenAPI.

The schema is loaded from the live gateway of a system of the module's own, with
admission control off: its valid orders are never refused for capacity (a 503 the
API documents), so any 5xx is a defect. Each operation
gets schemathesis' coverage cases (boundary and invalid values, unexpected methods)
and generated cases, valid and invalid. Whatever comes in, the gateway answers
within a bounded time, never with a 5xx, and every 4xx names the problem. The run
is seeded and derandomized, so CI replays exactly the same cases.

(schemathesis' own pytest plugin for fixture-provided schemas,
``schemathesis.pytest.from_fixture``, does not run on pytest 9.2: it writes
``node._nodeid``, which pytest 9 removed. The tests therefore drive schemathesis'
Python API — ``get_all_operations``, ``iter_coverage_cases``, ``as_strategy`` —
under Hypothesis directly.)
"""

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.integration.system import System

pytestmark = pytest.mark.integration

SEED = 20_261_107
EXAMPLES_PER_MODE = 130  # generated cases per operation and mode (valid, invalid)
REQUEST_TIMEOUT = 10.0  # seconds; a hang fails the case instead of the run
MIN_TOTAL_CASES = 1_000

#: The gateway's operations that take input (path, query, header or body). Each gets
#: at least 2 x EXAMPLES_PER_MODE cases, so these alone make >= 1,000.
WITH_INPUT = (
    "POST /api/orders/execute",
    "GET /api/orders/{order_id}",
    "GET /api/orders/{order_id}/events",
    "GET /api/orders",
)
MIN_CASES_WITH_INPUT = 2 * EXAMPLES_PER_MODE
MIN_CASES_WITHOUT_INPUT = 5  # coverage cases: unexpected methods and the like
assert MIN_CASES_WITH_INPUT * len(WITH_INPUT) >= MIN_TOTAL_CASES

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "generation": {
            "mode": "all",
            "max-examples": EXAMPLES_PER_MODE,
            "deterministic": True,
            "database": "none",
        },
        "request-timeout": REQUEST_TIMEOUT,
    }
)
HYPOTHESIS = settings(
    max_examples=EXAMPLES_PER_MODE,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def gateway_schema(fuzz_system: System) -> Any:
    return schemathesis.openapi.from_url(
        f"{fuzz_system.base_url}/openapi.json", config=CONFIG, timeout=REQUEST_TIMEOUT
    )


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def problem_unnamed(response: schemathesis.Response) -> str | None:
    """Why a 4xx body fails to name the problem, or None when it names it."""
    try:
        body = response.json()
    except ValueError:  # JSONDecodeError included
        return f"body is not JSON: {response.text[:200]!r}"
    if not isinstance(body, dict) or "detail" not in body:
        return f"no 'detail' in {body!r}"
    detail = body["detail"]
    if response.status_code == 422:
        if not isinstance(detail, list) or not detail:
            return f"422 detail is not a non-empty list: {detail!r}"
        for error in detail:
            if not isinstance(error, dict) or not error.get("loc"):
                return f"422 error without a 'loc': {error!r}"
            if not isinstance(error.get("msg"), str) or not error["msg"].strip():
                return f"422 error without a 'msg': {error!r}"
        return None
    if isinstance(detail, str):
        return None if detail.strip() else "empty 'detail'"
    return None if detail else f"empty 'detail': {detail!r}"


def takes_input(operation: Any) -> bool:
    return bool(list(operation.iter_parameters())) or bool(list(operation.body))


def fuzz(
    schema: Any, operation: Any, base_url: str, http: requests.Session
) -> tuple[Counter[str], Counter[int]]:
    """Send coverage cases, then generated valid and invalid cases, checking each."""
    sent: Counter[str] = Counter()
    statuses: Counter[int] = Counter()

    def check(case: schemathesis.Case[Any], phase: str) -> None:
        sent[phase] += 1
        try:
            response = case.call(
                base_url=base_url, session=http, timeout=REQUEST_TIMEOUT
            )
        except requests.Timeout:
            pytest.fail(f"no answer in {REQUEST_TIMEOUT}s: {case.as_curl_command()}")
        statuses[response.status_code] += 1
        assert response.status_code < 500, (
            f"{response.status_code} {response.text[:500]!r}"
            f" for {case.as_curl_command()}"
        )
        if 400 <= response.status_code < 500:
            problem = problem_unnamed(response)
            assert problem is None, (
                f"{response.status_code} does not name the problem: {problem}"
                f" for {case.as_curl_command()}"
            )

    coverage = schema.iter_coverage_cases(
        operation,
        generation_modes=list(GenerationMode),
        generation_config=schema.config.generation_for(operation=operation),
    )
    for case in coverage:
        check(case, "coverage")

    def generated(mode: GenerationMode) -> None:
        @HYPOTHESIS
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: schemathesis.Case[Any]) -> None:
            check(case, mode.value)

        run()

    for mode in GenerationMode:
        try:
            generated(mode)
        except Unsatisfiable:
            # No invalid request exists for an operation that takes no input.
            assert mode is GenerationMode.NEGATIVE, operation.label
            assert not takes_input(operation), (
                f"{operation.label}: no {mode.value} case"
            )
    print(f"\n{operation.label}: {dict(sent)} -> {dict(statuses)}")  # noqa: T201
    return sent, statuses


def test_the_operations_with_input_are_published(gateway_schema: Any) -> None:
    """The operations fuzzed hardest are the ones the gateway publishes with input."""
    published = [r.ok() for r in gateway_schema.get_all_operations()]
    assert {op.label for op in published if takes_input(op)} == set(WITH_INPUT)


@pytest.mark.parametrize("label", WITH_INPUT)
def test_an_operation_with_input_answers_hostile_input_without_5xx(
    gateway_schema: Any, fuzz_system: System, http: requests.Session, label: str
) -> None:
    """Every generated request gets a prompt non-5xx answer; a 4xx names the problem."""
    operation = gateway_schema.find_operation_by_label(label)
    assert operation is not None, label
    sent, statuses = fuzz(gateway_schema, operation, fuzz_system.base_url, http)
    assert sum(sent.values()) >= MIN_CASES_WITH_INPUT, (dict(sent), dict(statuses))


def test_every_other_operation_answers_hostile_input_without_5xx(
    gateway_schema: Any, fuzz_system: System, http: requests.Session
) -> None:
    """The operations without input answer unexpected methods etc. without 5xx."""
    others = [
        r.ok()
        for r in gateway_schema.get_all_operations()
        if r.ok().label not in WITH_INPUT
    ]
    assert others
    for operation in others:
        sent, _ = fuzz(gateway_schema, operation, fuzz_system.base_url, http)
        assert sum(sent.values()) >= MIN_CASES_WITHOUT_INPUT, (operation.label, sent)
