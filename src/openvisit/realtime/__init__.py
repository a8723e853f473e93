"""Live signalling: the event bus and the hub that owns the sockets of live visits and monitors."""
