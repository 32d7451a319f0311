"""The in-pod kernel launcher, ``kubeflow-kernel-launcher`` (``elastic_jupyter.kernel_launcher``).

Runs inside every kernel pod: picks ports, starts the real kernel, reports its connection info
to Jupyter Enterprise Gateway (payload version 1) and serves EG's communication port. Imports
nothing else of elastic-jupyter and nothing beyond the standard library except pycryptodomex
(lazily), so ``pip install 'elastic-jupyter[kernel]'`` makes any Python 3.9+ image a kernel
image. The environment contract is ``env.py``; the flow is ``launcher.py``.
"""
