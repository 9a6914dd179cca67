"""Output contracts written from the protocols' own specifications, which our answers are
checked against in the tests (never on the hot path)."""
