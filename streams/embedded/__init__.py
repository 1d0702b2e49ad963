"""The embedded stack: a Tansu broker child, a chDB store served over HTTP, a supervisor."""
