"""fake-ssh: a driver added the way the README says, to show the seam holds."""
