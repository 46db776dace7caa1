"""Reusable test helpers (a real ``qrt serve`` on loopback: ``tests.support.serve``)."""
