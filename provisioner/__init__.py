"""Direct mode: a jupyter_server 2 notebook server starts kernel pods itself, no gateway.

The jupyter_client kernel provisioner ``kubeflow-provisioner`` (:mod:`.provisioner`, entry
point group ``jupyter_client.kernel_provisioners``) creates the same JupyterKernel through the
same code as the Enterprise Gateway plugin - its *core* modules (``gateway_plugin/``:
``kernel_resource`` + ``kernel_manifest`` (plan and manifest, the tenant rules),
``launcher`` (create/delete), ``kernel_watch`` (one watch), ``kernel_secret`` (the Secret and
the launch tokens), ``response_listener`` (the response address: bounded reads, payload
version 1, admission), ``comm_port`` (signed interrupts), ``launcher_cli`` (the seed's argv),
``session_record``, ``kube``, ``api_retry``, ``settings``), none of which imports Enterprise
Gateway or tornado at module level (``tests/test_layering.py``).

Modules: :mod:`.provisioner` (``KubeflowProvisioner``), :mod:`.server`
(``DirectMappingKernelManager``: detach at stop, adopt at start, sessions back),
:mod:`.runtime` (the process's settings, API client, watch and response address),
:mod:`.settings` (the ``EJ_*`` environment), :mod:`.sessions` (the session on the
JupyterKernel), :mod:`.launch_args` (argv and env, pure), :mod:`.kernelspecs` (the operator's
kernelspecs served live; direct-operator's module).

Every Kubernetes API call the provisioner makes - the notebook server's credentials need
exactly these, in each kernel namespace, and nothing cluster-wide (``docs/direct-mode.md``):

==========================================  ======  =========================================
resource (group)                            verb    when
==========================================  ======  =========================================
``jupyterkernels`` (kubeflow.tkestack.io)   create  each kernel start and restart
``jupyterkernels``                          get     a create whose answer was lost is looked
                                                    up by name (``api_retry.create_once``)
``jupyterkernels``                          list    the watch's (re)lists; adoption at start
``jupyterkernels``                          watch   one watch per kernel namespace
``jupyterkernels``                          patch   the session annotations (kernel session,
                                                    notebook session)
``jupyterkernels``                          delete  shutdown, culling, restart, failed start
``secrets`` (core)                          create  the kernel's Secret (launch token)
``secrets``                                 patch   the connection key merged into it
``secrets``                                 get     adoption reads the connection key
``jupyterkerneltemplates``                  get     a kernelspec naming a template
==========================================  ======  =========================================

The notebook pod's kernelspec ConfigMaps (get, list, watch in the notebook's namespace) are
:mod:`.kernelspecs`'.
"""
