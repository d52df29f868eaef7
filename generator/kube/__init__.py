"""The Kubernetes layer: one client (client.py), the cluster to act on (target.py), and the reads the
commands make (preflight, status, logs)."""
