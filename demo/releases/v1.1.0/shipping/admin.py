# Nothing to register until shipping has models (v1.2.0).
