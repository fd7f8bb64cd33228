"""Drivers that exist only for the tests."""
