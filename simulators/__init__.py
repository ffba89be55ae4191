"""Fake devices that speak the real wire protocols, for tests, benchmarks and the demo."""
