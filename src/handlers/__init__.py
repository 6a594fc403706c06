"""Thin Lambda entry points. Each parses its event and calls one domain function."""
