"""``python -m elastic_jupyter.kernel_launcher``: the same as ``kubeflow-kernel-launcher``."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
