"""The elastic-jupyter operator (kopf): JupyterKernel → Pod, JupyterKernelSpec → ConfigMap, ...

Entry point: ``elastic-jupyter-operator`` (:mod:`.main`). :mod:`.handlers` imports every handler
module; the pure builders (:mod:`.kernel_pod`, :mod:`.kernel_status`,
:mod:`.kernelspec_configmap`, :mod:`.kernel_templates`'s ``validate``) do no I/O and are what the
unit tests exercise. Importing this package has no side effects.
"""
