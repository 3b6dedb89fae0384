"""`readygate stack`: real Prometheus, Alertmanager and sink around the user's running service."""
