"""HTTP: the JSON API under /api/v1, server-rendered pages, authentication at the edge, i18n."""
