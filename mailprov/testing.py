"""What test rigs import: pytest fixtures for mailprov's local relay (a pytest11 plugin).

Importing this module must stay cheap: pytest loads it in every test session of
a project that has mailprov installed.
"""
