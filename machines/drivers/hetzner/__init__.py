"""The hetzner driver: see driver.py."""
