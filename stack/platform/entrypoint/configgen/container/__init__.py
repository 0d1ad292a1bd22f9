"""What runs inside the MLflow image: its entrypoint and the compose stack's bucket job.

Standard library only (MLflow and the S3 SDK are the image's own), and from configgen only
`errors` and `envvars`: `configgen render` copies exactly these files into the image's build
context (configgen/mlflow_image.py), so the image needs neither configgen's dependencies nor
its source tree.
"""
