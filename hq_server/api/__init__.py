"""HQ's HTTP API (FastAPI): agent endpoints, user endpoints, health; mounted by hq_server.app."""
