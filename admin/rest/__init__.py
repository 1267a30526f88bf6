"""The admin REST resources under ``/api/v1`` (product.md §6): thin handlers over the Device2
service, one module per resource; ``setup(app)`` adds every route. ``admin.app.create_app``
calls it (the modules import ``admin.app`` for its helpers, so it is imported there late).

Conventions (docs/admin-api.md): JSON in and out; a create answers 201 with what was made, a
change 200 with the new value, a delete 200 ``{}``; errors are ``{status, code, message}``.
"""

from __future__ import annotations

from aiohttp import web

from admin.rest import connectors, identities, logs, murano, resources


def setup(app: web.Application) -> None:
    for module in (connectors, resources, identities, logs, murano):
        module.setup(app)
