"""Thin faust wiring: each agent decodes, calls pure logic, writes, and only then acks."""
