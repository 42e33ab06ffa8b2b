"""The exposition, byte for byte: a populated registry, in the text format (both writers) and
OpenMetrics, equals the files recorded in ``tests/support/exposition/`` (first from the
hand-written definitions the table of specs replaced). A new metric adds its lines there: record
them with ``PYTHONPATH=tests/support python3 tests/support/exposition_fixture.py`` and check that
the diff only adds them."""

import pytest
from exposition_fixture import FORMATS, SCENARIOS, exposition, path, without_process
from prometheus_client import generate_latest


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_exposition_is_the_one_recorded(scenario: str, fmt: str):
    assert exposition(scenario, fmt) == path(scenario, fmt).read_text()


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_prometheus_clients_own_writer_gives_the_recorded_text_too(scenario: str):
    text = without_process(generate_latest(SCENARIOS[scenario]().registry).decode())
    assert text == path(scenario, "text").read_text()
