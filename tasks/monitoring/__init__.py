"""The `monitoring` section: Prometheus itself (prometheus.py, which holds the section's model), its alerting rules
(alerts.py) and the servers' node_exporter metrics per role (servers.py)."""
