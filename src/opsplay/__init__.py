"""opsplay: operations runbooks as tested, idempotent Ansible, behind a thin CLI."""

__version__ = "0.1.0"
