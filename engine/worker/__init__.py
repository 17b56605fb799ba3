"""The worker process: executes jobs, keeps leases fresh, recovers after crashes, serves events."""
