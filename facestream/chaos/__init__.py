"""Chaos at load: real landmark streams for many faces through the whole stack while a seeded
fault loop kills and restarts its parts, then a verdict from PostgreSQL and the topics.

``plan`` (which faults, when: pure), ``streams`` (real landmark streams), ``load`` (Mojo clients
and edge producers with their own accounting), ``parts`` (the processes and what is done to them),
``verdict`` (what survived), ``table`` (the report), ``run`` (all of it, in order).
"""
