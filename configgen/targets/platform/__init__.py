"""The platform image: one container for Heroku, AWS App Runner and the like (docs/platform.md)."""
