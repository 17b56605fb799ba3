"""Live status events and the control channel: a loopback websocket, token-protected."""
