"""The stock-server conformance environment (issue #11): Debian's own server packages with their stock configuration."""
