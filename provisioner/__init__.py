"""elastic-jupyter's jupyter_client kernel provisioner (direct mode)."""
