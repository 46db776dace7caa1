"""Views of plans and results: text, JSON and markdown. The only code that prints."""
