"""Every kopf handler of the operator, registered by importing their modules.

``elastic-jupyter-operator`` (and ``kopf run -m elastic_jupyter.operator.handlers`` or
``KopfRunner`` in tests) imports this module; kopf registers each decorated function at import.
Adding a resource kind is one line below (``from … import x as x`` re-exports the module, so the
import counts as used, and each stays on its own line). Importing registers handlers only:
credentials and clients are created by the startup handlers in :mod:`lifecycle` when kopf runs.
"""

from __future__ import annotations

from elastic_jupyter.operator import direct_notebooks as direct_notebooks
from elastic_jupyter.operator import gateways as gateways
from elastic_jupyter.operator import kernel_templates as kernel_templates
from elastic_jupyter.operator import kernels as kernels
from elastic_jupyter.operator import kernelspecs as kernelspecs
from elastic_jupyter.operator import lifecycle as lifecycle
from elastic_jupyter.operator import notebooks as notebooks
from elastic_jupyter.operator import warm_pools as warm_pools
