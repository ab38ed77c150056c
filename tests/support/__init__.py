"""Test support: real local servers and helpers shared by the test modules."""
