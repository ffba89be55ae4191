"""Device drivers: one module per device family (transport, codec, device kept apart)."""
