"""Never-raise is a tested property: the parsers at the edge take anything and give a value or their one error.

Hypothesis draws JSON-like values with NaN, ±Inf, huge numbers and strings, deep nesting and
wrong types; the mutation runs (tests/support/mutations.py) break real answers. Bounded: a few
thousand inputs in all (benchmarks/fuzz_exporter.py runs 100,000 against a live exporter).
"""

from __future__ import annotations

import json
import math
import random

import pytest
import yaml
from helpers import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mutations import mutate

from exporter.bybit import messages as msg
from exporter.bybit.models import parse_dcp_info, parse_envelope, parse_order_page, parse_server_time
from exporter.bybit.sanity import LATEST_TIMESTAMP, load_json
from exporter.config import ConfigError, load_config
from exporter.monitor.triggers import TriggerTracker

NOW = 1_700_000_000.0
FUZZ = settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])

leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=50),
    st.sampled_from(["inf", "NaN", "1e400", "1675418560633", "1675418560633000", "CancelByDCP", "Cancelled", "ON"]),
)
values = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30,
)
keys = st.sampled_from(
    ["op", "args", "topic", "data", "success", "ret_msg", "req_id", "retCode", "result", "dcpInfos", "list", "time"]
)
shaped = st.recursive(
    leaves, lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=6), max_leaves=25
)


def dumps(value) -> str:
    return json.dumps(value, allow_nan=True, default=str)


@FUZZ
@given(st.one_of(values, shaped))
def test_parse_frame_never_raises_on_any_json(value):
    assert isinstance(msg.parse_frame(dumps(value)), msg.Frame.__args__)  # type: ignore[attr-defined]


@FUZZ
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_parse_frame_never_raises_on_any_bytes_or_text(data):
    msg.parse_frame(data)


@pytest.mark.parametrize("text", ["[" * 100_000, '{"a":' * 50_000, "9" * 5000, '{"op":"pong","args":[1e400]}'])
def test_parse_frame_never_raises_on_extremes(text):
    assert isinstance(msg.parse_frame(text), msg.Invalid)


@FUZZ
@given(st.one_of(values, shaped))
def test_rest_parsers_raise_only_value_error(value):
    for parse in (parse_envelope, parse_server_time, parse_dcp_info, lambda v: parse_order_page(v, "linear")):
        try:
            parse(value)
        except ValueError:
            pass


@FUZZ
@given(st.one_of(values, shaped))
def test_what_the_rest_parsers_accept_is_sane(value):
    try:
        settings_ = parse_dcp_info(value)
    except ValueError:
        return
    assert all(3 <= s.window <= 300 for s in settings_.values())


@FUZZ
@given(
    st.lists(
        st.one_of(
            values,
            st.fixed_dictionaries(
                {"cancelType": st.just("CancelByDCP")},
                optional={
                    "orderId": st.one_of(st.text(max_size=5), leaves),
                    "category": st.sampled_from(["linear", "spot", "x", 1]),
                    "orderStatus": st.one_of(st.sampled_from(["Cancelled", "New", "Deactivated"]), leaves),
                    "updatedTime": leaves,
                },
            ),
        ),
        max_size=10,
    )
)
def test_the_trigger_tracker_never_raises_and_never_dates_beyond_now(orders):
    observation = TriggerTracker().take(orders, NOW)
    for at in observation.last_trigger.values():
        assert math.isfinite(at) and at <= NOW + 300


@FUZZ
@given(st.one_of(values, shaped, st.dictionaries(st.sampled_from(["accounts", "x"]), st.lists(values, max_size=3))))
def test_the_config_loader_raises_only_config_error(tmp_path_factory, value):
    path = tmp_path_factory.mktemp("cfg") / "c.yml"
    path.write_text(yaml.safe_dump(value, allow_unicode=True) if _yaml_safe(value) else dumps(value))
    try:
        load_config(str(path), {"S": "secret"})
    except ConfigError:
        pass


def _yaml_safe(value) -> bool:
    try:
        yaml.safe_dump(value)
        return True
    except (yaml.YAMLError, RecursionError):
        return False


@pytest.mark.parametrize("text", ["accounts: [" * 2000, "\xff\xfe", "a: !!python/object:os.system x", "- " * 5000])
def test_the_config_loader_raises_only_config_error_on_extreme_files(tmp_path, text):
    path = tmp_path / "c.yml"
    path.write_text(text, errors="surrogateescape")
    with pytest.raises(ConfigError):
        load_config(str(path), {})


def test_three_thousand_mutated_answers_never_raise_and_never_leak_an_insane_value():
    rng = random.Random(10)
    tracker = TriggerTracker()
    for _ in range(3000):
        data = mutate(rng, int(NOW * 1000))
        frame = msg.parse_frame(data)
        if isinstance(frame, msg.Pong) and frame.server_ms is not None:
            assert frame.server_ms / 1000 <= LATEST_TIMESTAMP
        if isinstance(frame, msg.OrderPush):
            for at in tracker.take(frame.orders, NOW).last_trigger.values():
                assert at <= NOW + 300
        try:
            envelope = parse_envelope(load_json(data))
        except ValueError:
            continue
        for parse in (parse_server_time, parse_dcp_info, lambda v: parse_order_page(v, "linear")):
            try:
                parse(envelope.result)
            except ValueError:
                pass
