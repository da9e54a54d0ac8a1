"""Suite-wide test configuration. Shared helpers live in tests/testkit (on pythonpath)."""
