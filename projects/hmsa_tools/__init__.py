"""The library behind the repository's tools: the users' workflow (demo,
study), per-scale evaluation and tables, the benchmark, export, and the
command-line plumbing the tools share.

No config imports this package; it imports the plugin, :mod:`projects.hmsa`,
never the other way round.
"""
