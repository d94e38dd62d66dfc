"""HTTP plumbing shared by every endpoint: error rendering, middleware, request helpers."""
