"""``qrt serve``: the HTTP app (routes, auth, wire shapes), its server DB and its CLI.

Jobs, programs and their execution live in ``qrt_apply.engine``; this package only speaks HTTP
over it. Import the submodules you need; this package imports nothing heavy on its own.
"""

__all__: list[str] = []
