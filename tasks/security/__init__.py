"""The `security` section (seed 5): sessions.py (5.1), data.py (5.2), access.py (5.3), supplychain.py (5.4); the
section's model is target.py."""
