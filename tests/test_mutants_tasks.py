"""Tests written from mutmut survivors: see docs/testing.md (mutation testing)."""
