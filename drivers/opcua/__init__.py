"""OPC-UA devices: the client link they share, and our printer model."""
