"""Network clients shared by the check modules (HTTP with the gate's trust and deadlines, Prometheus's API)."""
