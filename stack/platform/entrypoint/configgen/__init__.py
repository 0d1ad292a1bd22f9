"""configgen: generate and run a secure, self-hosted MLflow tracking stack."""

__version__ = "0.1.0"
