"""``taskqueue``: the service's command line, a client of its HTTP and WebSocket API only.

It never talks to Redis nor imports the service's code, so it works against any deployment
(`--url`, with `--api-key` or `--token` when auth is on). Modules:

- :mod:`.main` — the command group, global options, exit statuses (§12 of the contract);
- :mod:`.tasks` and :mod:`.admin` — the commands, one per API operation;
- :mod:`.client` — HTTP (httpx) and ``/ws`` (websockets) with the credentials and error mapping;
- :mod:`.follow` — following tasks over ``/ws`` with ``last_event_id`` resume;
- :mod:`.render` — tables and bars on a terminal, plain lines when piped, the API's JSON.
"""
