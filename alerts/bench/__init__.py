"""``kota bench alerts``: publish → alert committed → delivered to a local webhook, under a
background load of readings, beside a floor (a bare subscriber that POSTs at once)."""
