"""The line runtime (``codeline run``): wires drivers to the domain, serves the PLC."""
