"""Local fakes of services that cannot run here, speaking their documented wire formats."""
