"""The digitalocean driver: see driver.py."""
