"""The production compose stack on one Docker host (compose/production.yml, nginx/)."""
