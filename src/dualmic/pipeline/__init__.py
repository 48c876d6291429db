"""One module per DVC stage: what ``stages/<stage>.py`` runs, callable from Python and tests."""
