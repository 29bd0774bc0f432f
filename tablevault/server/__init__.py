"""The Jupyter server extension: a REST API over the tablevault store.

``pip install tablevault`` enables it (a file in ``jupyter_server_config.d``); ``jupyter server
extension list`` shows it. It reads the same store as the kernels and scripts: the SQLite file
under ``TABLEVAULT_HOME``, or ArangoDB when ``TABLEVAULT_ARANGO_URL`` is set. Jupyter's config
files take precedence over the environment::

    c.TableVaultSettings.home = "/shared/tablevault"
    c.TableVaultSettings.arango_url = "http://db:8529"

The routes (``docs/openapi.yaml`` is the reference) live under ``{base_url}tablevault/api/``:

- ``GET processes`` (``?all=1`` to include ended ones), ``GET processes/{name}``;
- ``POST processes/{name}/pause|resume|stop``, body ``{"run_id": ...}`` optional.

Requests are stored, attributed to ``<user>@<host> (jupyter-server)``, and acted on by the
process at its next checkpoint; the server never signals a process. Every route needs
jupyter_server's authentication and the ``tablevault`` authorization resource; POSTs need the
XSRF token or a token header. Listing is not counted as user activity, so a panel that polls
does not keep an idle server from being culled; pause, resume and stop are.

Caveats
-------
- Store calls run on a pool of four threads. jupyter_server gives module-style extensions no
  shutdown hook, so the pool and its store connections end with the server process.
- ``GET processes?all=1`` returns every run the store holds; there is no paging yet.
- CPU use is measured between two looks at a process, so the first listing that sees a process
  reports its memory but ``cpu_percent: null``.
"""

from __future__ import annotations

from typing import Any

from ..config import TableVaultSettings
from ..errors import TableVaultError
from .handlers import SERVICE_SETTING, routes
from .service import ProcessService


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Create the service and add the routes to ``serverapp``'s web application."""
    settings = TableVaultSettings(config=serverapp.config)
    service = ProcessService(settings, log=serverapp.log)
    web_app = serverapp.web_app
    web_app.settings[SERVICE_SETTING] = service
    web_app.add_handlers(".*$", routes(web_app.settings["base_url"]))

    try:
        service.client()
    except TableVaultError as exc:
        # The routes answer 503 and try again on each call until the store opens.
        serverapp.log.warning(
            "tablevault | cannot open the store (%s): %s; retrying on each API call",
            service.describe_store(),
            exc,
        )
