"""Local fakes of cloud providers' REST APIs whose VMs are real test-fleet hosts."""
