"""Job results: readable canonical JSON (``canonical``), what they hold (``summary``), the drift
between two runs (``drift``), a batch's sweep (``sweep``), ``qrt results`` (``report``) and its
plots (``plot``, matplotlib)."""
