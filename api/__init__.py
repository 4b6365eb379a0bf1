"""CRI v1 glue: stubs, enum and time conversions, request validation."""
