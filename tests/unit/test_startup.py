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
