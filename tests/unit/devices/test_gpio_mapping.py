"""devices.gpio.mapping: the debounce / min-interval filter (fake clock) and event contents."""

from devices.gpio.mapping import (
    Emission,
    InputFilter,
    Reading,
    answer_content,
    board_content,
    decimal_text,
    describe,
    device_content,
    differs,
    edge_content,
    help_text,
    status_text,
)
from devices.gpio.settings import BoardSpec, DeviceSpec

ON = Reading(1.0, True)
OFF = Reading(0.0, False)


def run(filt: InputFilter, now: float) -> tuple[Emission | None, float | None]:
    return filt.step(now)


def test_first_reading_is_published_at_once() -> None:
    filt = InputFilter(bounce_time=0.05, min_interval=1.0)
    filt.feed(OFF, 1000, 0.0)
    emission, wake = filt.step(0.0)
    assert emission == Emission(OFF, 1000, changed=True, edges=0)
    assert wake is None


def test_plain_edges() -> None:
    filt = InputFilter()
    filt.feed(OFF, 0, 0.0)
    filt.step(0.0)
    filt.feed(ON, 10, 1.0)
    assert filt.step(1.0) == (Emission(ON, 10, True, 1), None)
    filt.feed(ON, 11, 1.5)  # the same value again (a poll): nothing
    assert filt.step(1.5) == (None, None)
    filt.feed(OFF, 20, 2.0)
    assert filt.step(2.0) == (Emission(OFF, 20, True, 1), None)


def test_debounce_drops_glitches_and_waits_for_settling() -> None:
    filt = InputFilter(bounce_time=0.05)
    filt.feed(OFF, 0, 0.0)
    filt.step(0.0)
    filt.feed(ON, 100, 1.0)
    assert filt.step(1.0) == (None, 1.05)
    filt.feed(OFF, 120, 1.02)  # bounced back before settling: a glitch
    assert filt.step(1.02) == (None, 1.07)
    assert filt.step(1.07) == (None, None)
    assert filt.published == OFF
    filt.feed(ON, 200, 2.0)
    filt.feed(ON, 210, 2.03)  # a poll seeing the same pending value keeps the wait
    assert filt.step(2.03) == (None, 2.05)
    assert filt.step(2.05) == (Emission(ON, 200, True, 1), None)


def test_min_interval_coalesces_but_keeps_the_final_state() -> None:
    filt = InputFilter(min_interval=1.0)
    filt.feed(OFF, 0, 0.0)
    filt.step(0.0)
    filt.feed(ON, 100, 0.1)
    assert filt.step(0.1) == (Emission(ON, 100, True, 1), None)
    filt.feed(OFF, 200, 0.2)
    assert filt.step(0.2) == (None, 1.1)
    filt.feed(ON, 300, 0.3)
    filt.feed(OFF, 400, 0.4)
    assert filt.step(0.4) == (None, 1.1)
    emission, wake = filt.step(1.1)
    assert emission == Emission(OFF, 400, True, 3)  # three flips folded into one event
    assert wake is None
    assert filt.published == OFF


def test_min_interval_reports_a_pulse_that_came_back() -> None:
    filt = InputFilter(min_interval=1.0)
    filt.feed(OFF, 0, 0.0)
    filt.step(0.0)
    filt.feed(ON, 100, 0.1)
    filt.step(0.1)
    filt.feed(OFF, 200, 1.2)
    filt.step(1.2)
    filt.feed(ON, 300, 1.5)  # a short press between two allowed emissions
    filt.feed(OFF, 350, 1.6)
    assert filt.step(1.6) == (None, 2.2)
    emission, _ = filt.step(2.2)
    assert emission == Emission(OFF, 350, changed=False, edges=2)


def test_analog_delta() -> None:
    filt = InputFilter(delta=0.5)
    filt.feed(Reading(45.0, False), 0, 0.0)
    filt.step(0.0)
    filt.feed(Reading(45.3, False), 1, 1.0)
    assert filt.step(1.0) == (None, None)
    filt.feed(Reading(45.6, False), 2, 2.0)
    emission, _ = filt.step(2.0)
    assert emission == Emission(Reading(45.6, False), 2, True, 0)
    filt.feed(Reading(45.7, True), 3, 3.0)  # crossing the threshold always counts
    emission, _ = filt.step(3.0)
    assert emission is not None and emission.edges == 1


def test_differs() -> None:
    assert differs(ON, None) and differs(None, ON) and not differs(None, None)
    assert not differs(Reading(0.3, False), Reading(0.305, False), 0.01)
    assert differs(Reading(0.3, False), Reading(0.31, False), 0.01)


LED = DeviceSpec("porch_light", "LED", pin="GPIO17")
FAN = DeviceSpec("fan", "PWMLED", pin="GPIO18")
BELL = DeviceSpec("doorbell", "Button", pin="GPIO2", pull_up=True, label="Front door")
LINE = DeviceSpec("track", "LineSensor", pin="GPIO5")
DIST = DeviceSpec("garage", "DistanceSensor", echo="GPIO24", trigger="GPIO23",
                  threshold_distance=0.3)
CPU = DeviceSpec("cpu", "CPUTemperature", threshold=80.0)
BOARD = BoardSpec("board", "mock", (LED, FAN, BELL, LINE, DIST, CPU))


def test_device_content() -> None:
    assert device_content(BELL, ON, 1234) == {
        "kind": "Button", "direction": "input", "value": "1", "active": True,
        "updated_ts": 1234, "pin": "GPIO2", "label": "Front door", "pressed": True}
    assert device_content(LED, OFF, 5, changed_by="@a:b") == {
        "kind": "LED", "direction": "output", "value": "0", "active": False, "updated_ts": 5,
        "pin": "GPIO17", "pwm": False, "changed_by": "@a:b"}
    fan = device_content(FAN, Reading(0.4, True), 1)
    assert (fan["value"], fan["percent"], fan["pwm"]) == ("0.4", 40, True)
    line = device_content(LINE, Reading(0.0, False), 1)
    assert line["line"] is True  # a LineSensor sees the line when gpiozero says inactive
    dist = device_content(DIST, Reading(0.12345, False), 1)
    assert dist["value"] == "0.123" and dist["unit"] == "m" and dist["in_range"] is True
    assert (dist["mm"], dist["max_distance_mm"], dist["threshold_mm"]) == (123, 1000, 300)
    assert dist["echo"] == "GPIO24" and dist["trigger"] == "GPIO23" and "pin" not in dist
    cpu = device_content(CPU, Reading(45.126, False), 1)
    assert cpu["value"] == "45.13" and cpu["unit"] == "°C"
    assert (cpu["millidegrees"], cpu["threshold_millidegrees"]) == (45126, 80000)


def test_no_floats_anywhere() -> None:
    """Canonical JSON (what Matrix signs) has integers only."""
    def walk(value: object) -> None:
        assert not isinstance(value, float), value
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        if isinstance(value, list):
            for item in value:
                walk(item)
    for spec in BOARD.devices:
        for reading in (Reading(0.0, False), Reading(0.333333, True), Reading(81.7, True)):
            walk(device_content(spec, reading, 1))
            walk(edge_content(spec, Emission(reading, 1, True, 1)))
    walk(board_content(BOARD))


def test_decimal_text() -> None:
    assert [decimal_text(v, 3) for v in (0.0, 1.0, 0.4, 0.33333, -0.0001, 12.0)] == [
        "0", "1", "0.4", "0.333", "0", "12"]


def test_edge_and_board_content() -> None:
    edge = edge_content(BELL, Emission(ON, 99, True, 1))
    assert edge == {"device": "doorbell", "kind": "Button", "edge": "activated",
                    "active": True, "value": "1", "edges": 1, "ts": 99}
    board = board_content(BOARD)
    assert board["board"] == "board" and board["pin_factory"] == "mock"
    assert board["devices"][4] == {"name": "garage", "kind": "DistanceSensor",
                                   "direction": "input", "pins": ["GPIO24", "GPIO23"]}


def test_describe_status_help() -> None:
    assert describe(LED, ON) == "on"
    assert describe(FAN, Reading(0.4, True)) == "40%"
    assert describe(FAN, Reading(0.0, False)) == "off"
    assert describe(BELL, ON) == "pressed"
    assert describe(CPU, Reading(81.0, True)) == "81.0 °C (over threshold)"
    assert describe(DIST, Reading(0.2, False)) == "0.20 m (in range)"
    assert describe(BELL, None) == "unknown"
    text = status_text(BOARD, {"porch_light": ON, "doorbell": OFF})
    assert "- porch_light (LED, GPIO17): on" in text
    assert "- doorbell (Button, GPIO2): released" in text
    assert "- cpu (CPUTemperature, internal): unknown" in text
    assert "power level 50" in help_text(BOARD, 50)
    assert "Outputs: porch_light, fan." in help_text(BOARD, 50)


def test_answer_content() -> None:
    assert answer_content("hi") == {"msgtype": "m.notice", "body": "hi"}
    content = answer_content("porch_light is on", in_reply_to="$e", state={"device": "x"})
    assert content["m.relates_to"] == {"m.in_reply_to": {"event_id": "$e"}}
    assert content["org.edgehs.gpio.state"] == {"device": "x"}
