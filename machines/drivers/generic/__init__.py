"""The generic driver: see driver.py."""
