"""The none driver: see driver.py."""
