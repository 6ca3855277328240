"""opsplay.ops.security_updates_apt's decision whether the upgrade steps run at all (one
include_tasks in roles/security_updates, skipped when there is nothing to do)."""

from __future__ import annotations

import pytest
from ansible_collections.opsplay.ops.plugins.modules import security_updates_apt as apt

NOTHING = {"upgrades": [], "restart": [], "reboot_required": False}


def planned(**over):
    return {**NOTHING, **over}


@pytest.mark.parametrize("restart_services", [False, True])
@pytest.mark.parametrize("reboot", [False, True])
def test_nothing_pending_means_no_upgrade_steps(restart_services, reboot):
    assert not apt.needs_action(planned(), restart_services, reboot)


def test_an_upgrade_is_work_whatever_the_policies():
    assert apt.needs_action(planned(upgrades=[{"name": "openssl"}]), False, False)


def test_a_service_on_replaced_libraries_is_work_only_when_restarts_are_allowed():
    outdated = planned(restart=["nginx.service"])
    assert apt.needs_action(outdated, True, False)
    assert not apt.needs_action(outdated, False, False)


def test_a_reboot_request_is_work_only_when_reboots_are_allowed():
    asked = planned(reboot_required=True)
    assert apt.needs_action(asked, False, True)
    assert not apt.needs_action(asked, False, False)
