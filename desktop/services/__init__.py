"""Non-visual services of the desktop app: the worker supervisor, the control-channel connection, settings I/O."""
