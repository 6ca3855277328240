"""What the display keeps from ansible-runner's events: the roles' set_stats reports."""

from __future__ import annotations

from opsplay.display import Progress, report_summaries


def test_stats_event_keeps_the_roles_reports_for_the_summary():
    progress = Progress("t", live=False, quiet=True)
    report = {"summary": "upgraded 1: a 1.0 -> 1.1", "upgraded": [{"name": "a"}]}
    progress.handle(
        {
            "event": "playbook_on_stats",
            "event_data": {
                "ok": {"h1": 3},
                "artifact_data": {"security_updates": {"h1": report}},
            },
        }
    )
    assert progress.data == {"security_updates": {"h1": report}}
    assert progress.host_results()["h1"]["ok"] == 3


def test_report_summaries_lists_per_host_summaries_and_skips_the_rest():
    data = {
        "security_updates": {"h2": {"summary": "upgraded 0"}, "h1": {"summary": "upgraded 2"}},
        "counter": 3,  # a plain stat: no per-host reports
        "other": {"h1": {"no_summary": True}},
    }
    assert report_summaries(data) == [
        ("security_updates", "h1", "upgraded 2"),
        ("security_updates", "h2", "upgraded 0"),
    ]
