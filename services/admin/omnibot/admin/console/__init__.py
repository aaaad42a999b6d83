"""The web console: the admin service's pages at `/`, next to the JSON API (see `app.mount_console`)."""
