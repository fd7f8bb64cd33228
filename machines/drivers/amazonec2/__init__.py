"""The amazonec2 driver: see driver.py."""
