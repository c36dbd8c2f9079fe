"""``jpki serve``: the verification service relying parties call (needs ``jpki[serve]``).

:func:`create_app` builds the ASGI app from a :class:`ServiceConfig`; docs/service.md has
the API, the audit record and deployment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jpki.service.app import ServiceConfig, create_app

__all__ = ["ServiceConfig", "create_app"]


def __getattr__(name: str) -> Any:
    # FastAPI loads only when the app is wanted (``jpki audit`` needs the database alone).
    if name in __all__:
        from jpki.service import app

        return getattr(app, name)
    raise AttributeError(name)
