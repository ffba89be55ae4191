"""Coding printers: CIJ (WSI), queued TIJ/TTO (CLARiTY)."""
