"""The Jobdeck desktop control panel (Qt); it reaches the engine only through the worker's control channel."""
