"""The container driver: see driver.py."""
