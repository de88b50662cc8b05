"""Grafana dashboards as code: one module per dashboard, generated JSON in ``json/``.

``kota dashboards build`` writes the JSON, ``kota dashboards push`` uploads it; provisioning
files for a Grafana container are in ``provisioning/``. docs/dashboards.md says what each
dashboard shows.
"""
