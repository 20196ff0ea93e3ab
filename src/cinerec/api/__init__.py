"""HTTP layer: FastAPI routes over :class:`cinerec.service.RecService`."""
