"""Image cameras, symbol decoders and print-quality grading."""
