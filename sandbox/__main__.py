"""``python -m elastic_jupyter.sandbox up ...``: the same as ``elastic-jupyter-sandbox``."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
