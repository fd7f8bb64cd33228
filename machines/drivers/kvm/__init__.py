"""The kvm driver: see driver.py."""
