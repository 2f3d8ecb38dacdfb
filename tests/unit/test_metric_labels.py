"""Every label that could take a value from outside (a request, TikTok's answer) is bounded."""

from __future__ import annotations

from pixelrelay import metrics


def test_event_names_outside_the_vocabulary_are_other() -> None:
    assert metrics.event_label("CompletePayment") == "CompletePayment"
    assert metrics.event_label("Purchase") == "Purchase"
    assert metrics.event_label("InstallApp") == "InstallApp"  # TikTok's app list too
    assert metrics.event_label("signup ann@example.com") == "other"
    metrics.allow_labels((), {"Unit Test Incoming": "UnitTestOutgoing"}, ())
    assert metrics.event_label("Unit Test Incoming") == "Unit Test Incoming"
    assert metrics.event_label("UnitTestOutgoing") == "UnitTestOutgoing"


def test_count_all_bounds_the_event_label_of_every_event_counter() -> None:
    name = "made up by a unit test"
    metrics.count_all({(metrics.DUPLICATES, name): 1,
                       (metrics.GAVE_UP, "d", name, "expired"): 1})
    text = metrics.exposition([], 0.0).decode()
    assert name not in text
    assert 'pixelrelay_events_gave_up_total{destination="d",event="other",reason="expired"}' \
        in text


def test_codes_and_methods_are_bounded() -> None:
    assert metrics.code_label(40002, 200) == "40002"
    assert metrics.code_label(0, 200) == "0"
    assert metrics.code_label(98765, 200) == "other"
    assert metrics.code_label(None, 503) == "http_503"
    assert metrics.code_label(None, 999) == "http_other"
    assert metrics.code_label(None, None) == "network"
    assert metrics.method_label("POST") == "POST"
    assert metrics.method_label("PROPFIND") == "other"
