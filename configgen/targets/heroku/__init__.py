"""Heroku's container stack (Cedar): app.json for the Deploy button, heroku.yml for the build
and the release phase, and `configgen heroku check`, which checks both offline."""
