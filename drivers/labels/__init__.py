"""Label printers: ZPL."""
