from __future__ import annotations

import pytest

from opsplay import strategy
from opsplay.errors import OpsplayError


def test_mitogen_by_default_when_installed():
    chosen = strategy.choose("auto")
    assert chosen.name == "mitogen_linear"
    assert chosen.plugin_dir and chosen.plugin_dir.endswith("ansible_mitogen/plugins/strategy")


def test_linear_on_request():
    assert strategy.choose("linear") == strategy.Strategy(
        "linear", None, "stock linear strategy (requested)"
    )


def test_falls_back_when_ansible_core_is_unknown_to_mitogen(monkeypatch):
    monkeypatch.setattr(strategy, "MITOGEN_CORE_RANGE", ((2, 10), (2, 18)))
    chosen = strategy.choose("auto")
    assert chosen.name == "linear" and chosen.plugin_dir is None
    assert "not known to support ansible-core 2.19" in chosen.reason
    with pytest.raises(OpsplayError):
        strategy.choose("mitogen")


def test_falls_back_when_mitogen_is_missing(monkeypatch):
    real = strategy.util.find_spec
    monkeypatch.setattr(
        strategy.util, "find_spec", lambda name: None if name == "ansible_mitogen" else real(name)
    )
    assert strategy.choose("auto").reason == "stock linear strategy: mitogen is not installed"
