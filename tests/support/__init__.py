"""Reusable test helpers (a real ``qrt serve`` on loopback: ``support.serve``)."""
