"""`opsplay --help` stays fast: the CLI must not import Ansible, ansible-runner, rich or yaml."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("ansible", "ansible_runner", "rich", "yaml", "jinja2")


def test_help_imports_nothing_heavy():
    code = (
        "import sys\n"
        "from opsplay.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print('\\n' + __import__('json').dumps(sorted(m for m in sys.modules "
        f"if m.split('.')[0] in {HEAVY!r})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []


def test_help_imports_no_command_module():
    """Commands load lazily: `opsplay --help` imports none of opsplay.commands.*."""
    code = (
        "import sys\n"
        "from opsplay.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('\\n' + __import__('json').dumps(sorted(m for m in sys.modules "
        "if m.startswith('opsplay.commands.'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []


def test_every_command_is_registered_with_its_own_summary():
    """The summaries `opsplay --help` shows are the commands' own, and no command is left out."""
    import importlib
    import pkgutil

    import click

    import opsplay.commands
    from opsplay.cli import COMMANDS, cli

    modules = {m.name for m in pkgutil.iter_modules(opsplay.commands.__path__)}
    assert {module for module, _ in COMMANDS.values()} == modules
    ctx = click.Context(cli)
    for name, (module, summary) in COMMANDS.items():
        command = importlib.import_module(f"opsplay.commands.{module}").command
        assert command.name == name
        assert cli.get_command(ctx, name) is command
        expected = command.get_short_help_str(limit=10**6)
        assert click.utils.make_default_short_help(summary, 10**6) == expected, name
