"""Small reusable widgets and delegates (status badge, progress bar, worker badge, timeline chart)."""
