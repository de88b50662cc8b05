"""The development stack: a private Mosquitto and InfluxDB on loopback (``devstack.localstack``)
and the whole city on one machine (``devstack.demo``, ``kota demo``), used by ``make demo``, the
tests and the benchmarks (``kota bench``). No service imports it. See README.md here.
"""
