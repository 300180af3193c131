"""The HTTP edge of the background service: the FastAPI app, its security guard, the daemon process and
the dashboard. Only this package imports FastAPI, Starlette and uvicorn."""
