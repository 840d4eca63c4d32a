# Shipping has no models yet; its first models arrive in v1.2.0.
