"""The job ledger: tables, statuses, migrations and the repository that owns every state change."""
