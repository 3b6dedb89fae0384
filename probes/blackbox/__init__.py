"""blackbox_exporter's probers (http, tcp, dns, icmp) and its ``blackbox.yml`` modules.

``probe serve --blackbox-config blackbox.yml`` answers ``/probe?module=NAME&target=...``
with the series blackbox_exporter answers for the same module: the same names, types and
label sets, measured the same way (a fresh connection per probe). docs/probe-serve.md.
"""
