"""The azure driver: see driver.py."""
