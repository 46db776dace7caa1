"""The commands of the qrt CLI, grouped by what they touch."""
