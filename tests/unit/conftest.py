"""Unit tests import opsplay.ops' host-side code as Ansible ships it to a host:
``ansible_collections.opsplay.ops.plugins.module_utils.NAME`` and ``...plugins.modules.NAME``.

collections/ansible_collections/opsplay/ops links the checkout as that package (a namespace
package, merged with the ``ansible`` package's collections).
"""

from __future__ import annotations

import sys
from pathlib import Path

COLLECTIONS = Path(__file__).resolve().parents[2] / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
