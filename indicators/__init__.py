"""Indicator service: green-city and trantibumlinmas indicators computed from the streams."""
