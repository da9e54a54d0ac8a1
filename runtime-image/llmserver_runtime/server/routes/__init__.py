"""Thin route handlers: parse, check, hand to generation/backend, format."""
