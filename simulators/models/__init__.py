"""Signal models, one module per kind of signal: pure functions of (simulated time, device state,
a seeded random generator). No I/O, no MQTT: the generator composes them into messages."""
